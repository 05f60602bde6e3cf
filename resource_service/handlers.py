"""The Resource Service's service layer: what it does, apart from HTTP and AMQP plumbing.

It speaks in our own types (rows, `StorageLocation`, `StoredObject`), never FastAPI's or boto3's.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, TypeVar

import structlog
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from resource_service import repository
from resource_service.clients import SongClient
from resource_service.errors import CommitOutcomeUnknown, ObjectLost, ObjectMissing, UploadExpired
from resource_service.models import PERMANENT, STAGING, Resource
from resource_service.object_store import ObjectStore, StoredObject
from resource_service.outbox import OutboxRelay
from resource_service.storage_lookup import StorageLookup
from resource_service.upload_body import UploadPace
from service_kit.db import Database, DatabaseTimeout
from service_kit.messaging import DeadLetter, ResourceEvent
from service_kit.resilience.bulkhead import Bulkhead
from service_kit.s3 import new_file_name, object_key

log = structlog.get_logger(__name__)

T = TypeVar("T")
P = ParamSpec("P")


@dataclass
class Dependencies:
    """Everything the handlers use, built once per process by `bootstrap`."""

    database: Database
    objects: ObjectStore
    storage: StorageLookup
    songs: SongClient
    relay: OutboxRelay
    uploads: Bulkhead
    max_upload_bytes: int
    upload_pace: UploadPace
    upload_max_seconds: float
    upload_intent_seconds: float

    async def run_in_session(
        self, operation: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await self.database.run(operation, *args, **kwargs)


@dataclass(frozen=True)
class Reservation:
    resource_id: int
    bucket: str
    key: str


async def _reserve(deps: Dependencies) -> Reservation:
    """Where the upload goes (the Storage lookup), and its id and intent, recorded."""
    location = await deps.storage.location(STAGING)
    key = object_key(location.path, new_file_name())
    resource_id = await deps.run_in_session(
        repository.reserve_upload, location.bucket, key, deps.upload_intent_seconds
    )
    return Reservation(resource_id, location.bucket, key)


async def upload_resource(deps: Dependencies, body: AsyncIterator[bytes]) -> int:
    """Reserve the id, store the bytes, then commit the row: a crash between the last two
    leaves an intent that the relay expires into a delete (`repository.expire_upload_intents`).

    The reservation runs while the body arrives: the object store awaits it only before its
    first write, so the Storage lookup and the intent's commit overlap the body instead of
    coming before it.
    """
    reserving = asyncio.ensure_future(_reserve(deps))

    async def destination() -> tuple[str, str]:
        reservation = await reserving
        return reservation.bucket, reservation.key

    try:
        size = await deps.objects.upload(body, destination)
        reservation = reserving.result()
        if not await _commit_row(deps, reservation):
            raise UploadExpired(reservation.resource_id)
    except BaseException:
        await _undo_upload(deps, reserving)
        raise
    deps.relay.nudge()
    log.info(
        "resource_uploaded",
        resource_id=reservation.resource_id,
        bucket=reservation.bucket,
        key=reservation.key,
        size=size,
    )
    return reservation.resource_id


async def _commit_row(deps: Dependencies, reservation: Reservation) -> bool:
    """Commit the row and its event; False when the intent had expired. A commit whose outcome
    is unknown (the connection dropped after COMMIT was sent) is settled by reading the row
    back: found, the upload stands; not found, it failed. Unreadable, or a commit past its
    deadline (it may still land), the object stays: the intent, which exists only if the
    commit did not land, expires into its deletion."""
    add = repository.add_resource
    try:
        return await deps.run_in_session(
            add, reservation.resource_id, reservation.bucket, reservation.key
        )
    except DatabaseTimeout:
        # The commit may still be running in its thread: reading back cannot settle it.
        log.warning("upload_commit_outcome_unknown", resource_id=reservation.resource_id)
        raise CommitOutcomeUnknown(reservation.resource_id) from None
    except OperationalError:
        try:
            committed = await find_resource(deps, reservation.resource_id) is not None
        except OperationalError:
            log.warning("upload_commit_outcome_unknown", resource_id=reservation.resource_id)
            raise CommitOutcomeUnknown(reservation.resource_id) from None
        if not committed:
            raise
        log.warning("upload_commit_confirmed_after_error", resource_id=reservation.resource_id)
        return True


async def _undo_upload(deps: Dependencies, reserving: asyncio.Future[Reservation]) -> None:
    """No row, no event: the object must not outlive the failed request either. An intent
    that was recorded stays, and expires into a delete of nothing."""
    if not reserving.done():
        reserving.cancel()
        return
    if reserving.cancelled() or reserving.exception() is not None:
        return
    error = sys.exc_info()[1]
    if isinstance(error, CommitOutcomeUnknown):
        return  # the intent decides: it expires into the object's deletion if there is no row
    reservation = reserving.result()
    await asyncio.shield(deps.objects.delete(reservation.bucket, reservation.key))


async def find_resource(deps: Dependencies, resource_id: int) -> Resource | None:
    return await deps.run_in_session(repository.get_resource, resource_id)


async def open_resource(
    deps: Dependencies, resource_id: int, byte_range: str | None
) -> StoredObject | None:
    """The resource's bytes (or a range of them), or None when it does not exist; ObjectLost
    when its row exists and S3 has no object for it.

    A move may delete the STAGING object between our read of the row and of the object (or of
    its size, for a range it cannot satisfy): then the row, read again, points at the copy.
    """
    for _ in range(2):
        resource = await find_resource(deps, resource_id)
        if resource is None:
            return None
        try:
            return await deps.objects.open(resource.bucket, resource.key, byte_range)
        except ObjectMissing:
            continue
    log.error("resource_object_missing", resource_id=resource_id)
    raise ObjectLost(resource_id)


async def delete_resources(deps: Dependencies, ids: list[int]) -> list[int]:
    """The rows go now; their objects and song metadata go with their `resource.deleted`
    events (`remove_deleted`), retried like any event, so an outage of S3 or of the Song
    Service only delays the cleanup."""
    deleted = await deps.run_in_session(repository.delete_resources, ids)
    if deleted:
        deps.relay.nudge()
    log.info("resources_deleted", resource_ids=deleted)
    return deleted


async def remove_deleted(deps: Dependencies, event: ResourceEvent) -> None:
    """Handle `resource.deleted`: remove the objects and the song metadata; safe to repeat."""
    for bucket, key in event.objects:
        await deps.objects.delete(bucket, key)
    await deps.songs.delete_songs([event.resource_id])
    log.info("resource_removed", objects=len(event.objects))


async def _forget_deleted(deps: Dependencies, resource_id: int) -> None:
    """A `resource.processed` for a resource deleted while it was processed (or moved): the
    delete removed its objects; the worker may have saved its song after the delete, and a
    move may have copied it to PERMANENT after the delete and failed to remove the copy. The
    copy's key is the PERMANENT path and the file name, which the delete's event still names
    (the outbox keeps it for `OUTBOX_RETENTION_HOURS`, longer than any retry)."""
    file_name = await deps.run_in_session(repository.deleted_file_name, resource_id)
    if file_name is not None:
        location = await deps.storage.location(PERMANENT)
        await deps.objects.delete(location.bucket, object_key(location.path, file_name))
    await deps.songs.delete_songs([resource_id])
    log.warning("processed_event_for_unknown_resource", resource_id=resource_id)


async def move_to_permanent(deps: Dependencies, event: ResourceEvent) -> None:
    """copy -> update the row -> delete the STAGING object; every step safe to repeat.

    The PERMANENT key reuses the STAGING file name, so a repeated copy overwrites, never adds.
    """
    resource_id = event.resource_id
    resource = await find_resource(deps, resource_id)
    if resource is None:
        await _forget_deleted(deps, resource_id)
        return
    if resource.state == PERMANENT:
        # Already moved; a crash may have come before the STAGING object was deleted.
        await deps.objects.delete(resource.staging_bucket, resource.staging_key)
        log.info("resource_already_permanent", resource_id=resource_id)
        return
    location = await deps.storage.location(PERMANENT)
    key = object_key(location.path, resource.staging_key.rsplit("/", 1)[-1])
    try:
        await deps.objects.copy(resource.bucket, resource.key, location.bucket, key)
    except ObjectMissing as exc:
        if await find_resource(deps, resource_id) is None:  # deleted during the move
            await _forget_deleted(deps, resource_id)
            return
        raise DeadLetter(f"resource {resource_id} has no object to move") from exc
    if await deps.run_in_session(repository.mark_permanent, resource_id, location.bucket, key):
        await deps.objects.delete(resource.staging_bucket, resource.staging_key)
        log.info("resource_moved", resource_id=resource_id, bucket=location.bucket, key=key)
        return
    # The row vanished (deleted meanwhile) or was moved by a concurrent redelivery.
    current = await find_resource(deps, resource_id)
    if current is None or current.key != key:
        await deps.objects.delete(location.bucket, key)

from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import CursorResult, case, delete, func, select, update
from sqlalchemy.orm import Session

from resource_service.models import PERMANENT, STAGING, OutboxEvent, Resource, UploadIntent
from service_kit.db import delete_by_ids
from service_kit.messaging import RESOURCE_DELETED, RESOURCE_UPLOADED, ResourceEvent


def reserve_upload(session: Session, bucket: str, key: str, expires_in: float) -> int:
    """Reserve a resource id for an upload about to be stored at (bucket, key)."""
    resource_id: int = session.execute(select(func.nextval("resources_id_seq"))).scalar_one()
    expires_at = func.now() + timedelta(seconds=expires_in)
    session.add(
        UploadIntent(resource_id=resource_id, bucket=bucket, key=key, expires_at=expires_at)
    )
    session.commit()
    return resource_id


def add_resource(session: Session, resource_id: int, bucket: str, key: str) -> bool:
    """The row and its `resource.uploaded` event commit together (the outbox), and the upload's
    intent goes with them. False when the intent had expired: its object is being removed."""
    claimed = session.execute(delete(UploadIntent).where(UploadIntent.resource_id == resource_id))
    if cast(CursorResult[Any], claimed).rowcount != 1:
        session.rollback()
        return False
    session.add(
        Resource(
            id=resource_id,
            state=STAGING,
            bucket=bucket,
            key=key,
            staging_bucket=bucket,
            staging_key=key,
        )
    )
    session.add(OutboxEvent(queue=RESOURCE_UPLOADED, resource_id=resource_id))
    session.commit()
    return True


def reprocess_if_staging(session: Session, resource_id: int) -> bool:
    """Queue a fresh `resource.uploaded` for a resource still in STAGING (every step after it
    is idempotent); False when the row is gone or already PERMANENT. The row is locked, so a
    move or a delete cannot slip between the check and the event."""
    staging = session.execute(
        select(Resource.id)
        .where(Resource.id == resource_id, Resource.state == STAGING)
        .with_for_update()
    ).scalar_one_or_none()
    if staging is None:
        session.rollback()
        return False
    session.add(OutboxEvent(queue=RESOURCE_UPLOADED, resource_id=resource_id))
    session.commit()
    return True


def expire_upload_intents(session: Session, limit: int) -> list[int]:
    """Turn intents past their time into `resource.deleted` events for their objects.

    The row locks make this and `add_resource` exclusive: an intent is either committed as a
    resource or expired, never both.
    """
    expired = (
        select(UploadIntent.resource_id)
        .where(UploadIntent.expires_at < func.now())
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = session.execute(
        delete(UploadIntent)
        .where(UploadIntent.resource_id.in_(expired.scalar_subquery()))
        .returning(UploadIntent.resource_id, UploadIntent.bucket, UploadIntent.key)
    ).all()
    for row in rows:
        session.add(_deleted_event(row.resource_id, {(row.bucket, row.key)}))
    session.commit()
    return [row.resource_id for row in rows]


def get_resource(session: Session, resource_id: int) -> Resource | None:
    return session.get(Resource, resource_id)


def mark_permanent(session: Session, resource_id: int, bucket: str, key: str) -> bool:
    """Move the row to PERMANENT; False when it was not in STAGING (gone or already moved)."""
    result = session.execute(
        update(Resource)
        .where(Resource.id == resource_id, Resource.state == STAGING)
        .values(state=PERMANENT, bucket=bucket, key=key)
    )
    session.commit()
    return cast(CursorResult[Any], result).rowcount == 1


def delete_resources(session: Session, ids: list[int]) -> list[int]:
    """Delete the rows and, in the same transaction, queue a `resource.deleted` event for each
    with the objects to remove (both locations: a move may be half done). Their unpublished
    `resource.uploaded` events go too: nothing is left to process."""
    deleted: list[Resource] = delete_by_ids(session, Resource, ids, commit=False)
    gone = [r.id for r in deleted]
    session.execute(
        delete(OutboxEvent).where(
            OutboxEvent.resource_id.in_(gone),
            OutboxEvent.queue == RESOURCE_UPLOADED,
            OutboxEvent.published_at.is_(None),
        )
    )
    for resource in deleted:
        objects = {(resource.bucket, resource.key), (resource.staging_bucket, resource.staging_key)}
        session.add(_deleted_event(resource.id, objects))
    session.commit()
    return gone


def deleted_file_name(session: Session, resource_id: int) -> str | None:
    """The file name of a deleted resource, from its `resource.deleted` event (every key of a
    resource ends in the same file name); None when no such event is kept."""
    payload = session.execute(
        select(OutboxEvent.payload)
        .where(OutboxEvent.resource_id == resource_id, OutboxEvent.queue == RESOURCE_DELETED)
        .order_by(OutboxEvent.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    objects = (payload or {}).get("objects") or []
    return objects[0]["key"].rsplit("/", 1)[-1] if objects else None


def _deleted_event(resource_id: int, objects: set[tuple[str, str]]) -> OutboxEvent:
    payload = {"objects": [{"bucket": b, "key": k} for b, k in sorted(objects)]}
    return OutboxEvent(queue=RESOURCE_DELETED, resource_id=resource_id, payload=payload)


class ClaimedEvent(NamedTuple):
    id: int
    queue: str
    event: ResourceEvent
    trace_context: str | None  # the `traceparent` of the request that wrote it


def claim_outbox_batch(session: Session, limit: int, claim_seconds: float) -> list[ClaimedEvent]:
    """Claim unpublished events so that no other replica publishes them meanwhile.

    A claim expires: events of a relay that died mid-batch are published again by another.
    """
    claimable = (
        select(OutboxEvent.id)
        .where(
            OutboxEvent.published_at.is_(None),
            OutboxEvent.parked_at.is_(None),
            (OutboxEvent.claimed_until.is_(None)) | (OutboxEvent.claimed_until < func.now()),
            (OutboxEvent.next_attempt_at.is_(None)) | (OutboxEvent.next_attempt_at <= func.now()),
        )
        .order_by(OutboxEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_(claimable.scalar_subquery()))
        .values(claimed_until=func.now() + timedelta(seconds=claim_seconds))
        .returning(
            OutboxEvent.id,
            OutboxEvent.queue,
            OutboxEvent.resource_id,
            OutboxEvent.payload,
            OutboxEvent.trace_context,
        )
    ).all()
    session.commit()
    claimed = [
        ClaimedEvent(r.id, r.queue, _event(r.resource_id, r.payload), r.trace_context) for r in rows
    ]
    return sorted(claimed, key=lambda c: c.id)


def _event(resource_id: int, payload: dict[str, Any] | None) -> ResourceEvent:
    objects = (payload or {}).get("objects", [])
    return ResourceEvent(resource_id, tuple((o["bucket"], o["key"]) for o in objects))


def finish_outbox_claim(
    session: Session,
    published: list[int],
    failed: dict[int, str],
    unpublished: list[int],
    horizon_seconds: float,
) -> list[int]:
    """Mark what went out; back off each event that failed on its own (1, 2, 4 ... 30 s), or
    park it once it is older than the horizon; release the rest at once. Returns the parked."""
    if published:
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_(published))
            .values(published_at=func.now(), claimed_until=None)
        )
    parked: list[int] = []
    for event_id, error in failed.items():
        parked += _back_off_or_park(session, event_id, error, horizon_seconds)
    if unpublished:  # released at once, not when the claim expires
        session.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(unpublished)).values(claimed_until=None)
        )
    session.commit()
    return parked


def _back_off_or_park(
    session: Session, event_id: int, error: str, horizon_seconds: float
) -> list[int]:
    past_horizon = OutboxEvent.created_at < func.now() - timedelta(seconds=horizon_seconds)
    delay = func.make_interval(
        0, 0, 0, 0, 0, 0, func.least(30, func.power(2, OutboxEvent.attempts))
    )
    row = session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id == event_id)
        .values(
            attempts=OutboxEvent.attempts + 1,
            next_attempt_at=func.now() + delay,
            last_error=error,
            claimed_until=None,
            parked_at=case((past_horizon, func.now()), else_=None),
        )
        .returning(OutboxEvent.parked_at)
    ).one()
    return [event_id] if row.parked_at is not None else []


def purge_published(session: Session, retention_hours: float, limit: int) -> int:
    """Delete up to `limit` events published longer ago than the retention time."""
    old = (
        select(OutboxEvent.id)
        .where(OutboxEvent.published_at < func.now() - timedelta(hours=retention_hours))
        .limit(limit)
    )
    result = session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(old.scalar_subquery())))
    session.commit()
    return cast(CursorResult[Any], result).rowcount


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Resource.state, func.count()).group_by(Resource.state)).all()
    return {STAGING: 0, PERMANENT: 0, **{state: count for state, count in rows}}


def count_pending_outbox(session: Session) -> int:
    pending = (
        select(func.count())
        .select_from(OutboxEvent)
        .where(OutboxEvent.published_at.is_(None), OutboxEvent.parked_at.is_(None))
    )
    return session.execute(pending).scalar_one()


def count_parked_outbox(session: Session) -> int:
    parked = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.parked_at.isnot(None))
    return session.execute(parked).scalar_one()

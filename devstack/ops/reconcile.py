"""`make reconcile`: compare what the stores hold with what the rows say; `--fix` repairs it.

    python -m devstack.ops.reconcile [--fix] [--grace-seconds 3600] [--stuck-seconds 3600]

It reports (as JSON, and one line per finding on stderr):
- objects under the storage rows' paths that no resource row or upload in flight accounts for,
  older than the grace period (a leftover of a crash, or of a cleanup that failed);
- songs whose resource does not exist, older than the same grace period;
- resources whose row exists and whose object does not (`missing_objects`: an S3 server that
  forgot, such as a restarted LocalStack); a person's call, never fixed here;
- resources still in STAGING past the threshold;
- messages parked in a dead-letter queue, each with its resource and reason (a song id taken
  by someone else, say).

With `--fix` it is safe on a live platform. Each deletion re-checks its condition just before it
acts; it touches only keys under the storage rows' paths; and it acts through the owning
services, never by writing their tables: songs go through the Song Service's `DELETE /songs`,
stuck resources through the Resource Service's `POST /admin/resources/{id}/reprocess` (which
re-checks STAGING under a row lock). Only orphan objects are deleted in S3 directly. Parked
messages are a person's call (`make replay-dlq`), so it only lists them. The stores are `make
run`'s unless `RUN_*` says otherwise (devstack.runner.services); it reads the databases,
never writes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import httpx2
from botocore.exceptions import ClientError
from sqlalchemy import Engine, create_engine, text

from devstack.runner.services import RunSettings, admin_token, database_name
from devstack.testing.stack import Stack
from service_kit.config import S3Settings
from service_kit.messaging import (
    PARK_REASON,
    RESOURCE_DELETED,
    RESOURCE_PROCESSED,
    RESOURCE_UPLOADED,
    PoisonMessage,
    ResourceEvent,
    dead_letter_queue,
)
from service_kit.s3 import S3Client, make_s3_client, object_exists

ROWS = "SELECT id, bucket, key, state, staging_bucket, staging_key FROM resources"


@dataclass
class Findings:
    orphan_objects: list[dict[str, str]] = field(default_factory=list)
    orphan_songs: list[int] = field(default_factory=list)
    missing_objects: list[dict[str, Any]] = field(default_factory=list)
    stuck_resources: list[int] = field(default_factory=list)
    parked: dict[str, int] = field(default_factory=dict)
    # Each parked message's resource and reason (the first PARKED_LISTED of each queue).
    parked_messages: list[dict[str, Any]] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Stores:
    resource_db: Engine
    song_db: Engine
    storage_db: Engine
    s3: S3Client
    rabbitmq_url: str
    prefix: str  # only objects under this key prefix (a test's own folder); "" for all
    resource_url: str  # the owning services, through which --fix acts
    song_url: str
    admin_token: str


def file_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Accounted:
    """What the rows and the uploads in flight account for, read at one moment. Every key of
    a resource ends in its one file name (a UUID): a move's copy is accounted for before its
    row says PERMANENT. A STAGING object of a row already PERMANENT is a leftover."""

    names: frozenset[str]
    leftovers: frozenset[tuple[str, str]]

    def accounts_for(self, bucket: str, key: str) -> bool:
        return file_name(key) in self.names and (bucket, key) not in self.leftovers


def accounted(stores: Stores) -> Accounted:
    with stores.resource_db.connect() as conn:
        rows = conn.execute(text(ROWS)).all()
        intents = conn.execute(text("SELECT key FROM upload_intents")).all()
    names = {file_name(r.key) for r in rows} | {file_name(r.staging_key) for r in rows}
    leftovers = {(r.staging_bucket, r.staging_key) for r in rows if r.state == "PERMANENT"}
    names |= {file_name(i.key) for i in intents}
    return Accounted(frozenset(names), frozenset(leftovers))


def find(stores: Stores, grace: timedelta, stuck_after: timedelta) -> Findings:
    findings = Findings()
    old_enough = datetime.now(UTC) - grace
    with stores.resource_db.connect() as conn:
        rows = {r.id: (r.bucket, r.key) for r in conn.execute(text(ROWS))}
        findings.stuck_resources = sorted(
            r.id
            for r in conn.execute(
                text("SELECT id FROM resources WHERE state = 'STAGING' AND created_at < :before"),
                {"before": datetime.now(UTC) - stuck_after},
            )
        )
    known = accounted(stores)
    stored = set()
    for bucket, prefix in _scanned(stores):
        for item in _objects(stores.s3, bucket, prefix):
            stored.add((bucket, item["Key"]))
            if not known.accounts_for(bucket, item["Key"]) and item["LastModified"] < old_enough:
                findings.orphan_objects.append({"bucket": bucket, "key": item["Key"]})
    with stores.song_db.connect() as conn:
        songs = conn.execute(text("SELECT id FROM songs WHERE created_at < :t"), {"t": old_enough})
        findings.orphan_songs = sorted({r.id for r in songs} - set(rows))
    unlisted = [
        i for i, (b, k) in rows.items() if k.startswith(stores.prefix) and (b, k) not in stored
    ]
    findings.missing_objects = [m for i in sorted(unlisted) if (m := _still_missing(stores, i))]
    missing_ids = {m["resourceId"] for m in findings.missing_objects}
    findings.stuck_resources = [i for i in findings.stuck_resources if i not in missing_ids]
    findings.parked, findings.parked_messages = asyncio.run(_parked(stores.rabbitmq_url))
    return findings


def _scanned(stores: Stores) -> list[tuple[str, str]]:
    """(bucket, key prefix) of each storage row, narrowed to `stores.prefix`: nothing outside
    the platform's paths is ever listed, so nothing there is ever deleted."""
    with stores.storage_db.connect() as conn:
        locations = {
            (r.bucket, r.path) for r in conn.execute(text("SELECT bucket, path FROM storages"))
        }
    scanned = []
    for bucket, path in sorted(locations):
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        if stores.prefix.startswith(prefix):
            scanned.append((bucket, stores.prefix))
        elif prefix.startswith(stores.prefix):
            scanned.append((bucket, prefix))
    return scanned


def _still_missing(stores: Stores, resource_id: int) -> dict[str, Any] | None:
    """The row read again and its object looked up now: a move or a delete since the listing
    is not a missing object."""
    with stores.resource_db.connect() as conn:
        row = conn.execute(text(f"{ROWS} WHERE id = :id"), {"id": resource_id}).one_or_none()
    if row is None or object_exists(stores.s3, row.bucket, row.key):
        return None
    return {"resourceId": resource_id, "bucket": row.bucket, "key": row.key}


def _objects(s3: S3Client, bucket: str, prefix: str) -> list[dict[str, Any]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item for page in pages for item in page.get("Contents", [])]


PARKED_LISTED = 100


async def _parked(url: str) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Each DLQ's depth, and its first messages read without taking them: they are never
    acked, and closing the channel hands them all back in their order. A DLQ is a classic
    queue, which counts no deliveries (`service_kit.messaging`), so reading uses nothing up."""
    counts: dict[str, int] = {}
    listed: list[dict[str, Any]] = []
    async with await aio_pika.connect(url) as connection:
        for queue in (RESOURCE_UPLOADED, RESOURCE_PROCESSED, RESOURCE_DELETED):
            async with connection.channel() as channel:
                try:
                    dlq = await channel.declare_queue(dead_letter_queue(queue), passive=True)
                except aio_pika.exceptions.ChannelClosed:  # never declared: nothing parked
                    continue
                counts[dlq.name] = dlq.declaration_result.message_count or 0
                for _ in range(min(counts[dlq.name], PARKED_LISTED)):
                    message = await dlq.get(no_ack=False, fail=False)
                    if message is None:
                        break
                    listed.append(_parked_message(dlq.name, message))
    return counts, listed


def _parked_message(queue: str, message: aio_pika.abc.AbstractIncomingMessage) -> dict[str, Any]:
    try:
        resource_id: int | None = ResourceEvent.from_body(message.body).resource_id
    except PoisonMessage:
        resource_id = None
    reason = (message.headers or {}).get(PARK_REASON, "")
    return {"queue": queue, "resourceId": resource_id, "reason": str(reason)}


def fix(stores: Stores, findings: Findings, grace: timedelta) -> None:
    with httpx2.Client(timeout=10) as http:
        for orphan in findings.orphan_objects:
            if _still_orphan_object(stores, orphan["bucket"], orphan["key"], grace):
                stores.s3.delete_object(Bucket=orphan["bucket"], Key=orphan["key"])
                findings.fixed.append(f"deleted object {orphan['bucket']}/{orphan['key']}")
        for song_id in findings.orphan_songs:
            if _has_no_resource(stores, song_id):
                http.delete(f"{stores.song_url}/songs", params={"id": song_id}).raise_for_status()
                findings.fixed.append(f"deleted song {song_id}")
        headers = {"Authorization": f"Bearer {stores.admin_token}"}
        for resource_id in findings.stuck_resources:
            url = f"{stores.resource_url}/admin/resources/{resource_id}/reprocess"
            answer = http.post(url, headers=headers)
            if answer.status_code == 202:
                findings.fixed.append(f"published resource.uploaded again for {resource_id}")
            elif answer.status_code != 409:  # 409: moved or deleted meanwhile, nothing to do
                answer.raise_for_status()


def _still_orphan_object(stores: Stores, bucket: str, key: str, grace: timedelta) -> bool:
    """Unaccounted for now, and still older than the grace period (not written again)."""
    if accounted(stores).accounts_for(bucket, key):
        return False
    try:
        modified = stores.s3.head_object(Bucket=bucket, Key=key)["LastModified"]
    except ClientError:
        return False  # gone already
    return bool(modified < datetime.now(UTC) - grace)


def _has_no_resource(stores: Stores, resource_id: int) -> bool:
    with stores.resource_db.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM resources WHERE id = :id"), {"id": resource_id})
        return found.first() is None


def stores_of(settings: RunSettings, prefix: str) -> Stores:
    def database(name: str) -> Engine:
        url = f"{settings.postgres_url.rstrip('/')}/{database_name(settings, name)}"
        return create_engine(url)

    s3 = make_s3_client(S3Settings(s3_endpoint_url=f"http://127.0.0.1:{settings.s3_port}"))
    return Stores(
        database("resource"),
        database("song"),
        database("storage"),
        s3,
        settings.rabbitmq_url,
        prefix,
        f"http://127.0.0.1:{settings.resource_port}",
        f"http://127.0.0.1:{settings.song_port}",
        admin_token(settings),
    )


def stack_stores(stack: Stack, s3: S3Client, prefix: str = "") -> Stores:
    """What reconcile reads and acts through, for a stack of processes (tests, `make chaos`):
    its databases directly, its services by their own addresses."""
    return Stores(
        create_engine(stack.resource_database_url),
        create_engine(stack.song.env["DATABASE_URL"]),
        create_engine(stack.storage.env["DATABASE_URL"]),
        s3,
        stack.rabbitmq_url,
        prefix,
        stack.resource.url,
        stack.song.url,
        stack.admin_token,
    )


def report(findings: Findings) -> None:
    for orphan in findings.orphan_objects:
        print(f"orphan object {orphan['bucket']}/{orphan['key']}", file=sys.stderr)
    for song in findings.orphan_songs:
        print(f"song {song} has no resource", file=sys.stderr)
    for missing in findings.missing_objects:
        print(
            f"resource {missing['resourceId']}: its file {missing['bucket']}/{missing['key']}"
            " is missing from storage",
            file=sys.stderr,
        )
    for resource_id in findings.stuck_resources:
        print(f"resource {resource_id} stuck in STAGING", file=sys.stderr)
    for queue, depth in findings.parked.items():
        if depth:
            print(f"{depth} message(s) parked in {queue}", file=sys.stderr)
    for parked in findings.parked_messages:
        print(
            f"parked in {parked['queue']}: resource {parked['resourceId']}: {parked['reason']}",
            file=sys.stderr,
        )
    for line in findings.fixed:
        print(f"fixed: {line}", file=sys.stderr)
    print(json.dumps(asdict(findings), indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.ops.reconcile", description=__doc__)
    parser.add_argument("--fix", action="store_true", help="delete orphans, republish the stuck")
    parser.add_argument("--grace-seconds", type=float, default=3600.0)
    parser.add_argument("--stuck-seconds", type=float, default=3600.0)
    parser.add_argument("--prefix", default="", help="only objects whose key starts with this")
    args = parser.parse_args()
    stores = stores_of(RunSettings(), args.prefix)
    grace = timedelta(seconds=args.grace_seconds)
    findings = find(stores, grace, timedelta(seconds=args.stuck_seconds))
    if args.fix:
        fix(stores, findings, grace)
    report(findings)


if __name__ == "__main__":
    main()

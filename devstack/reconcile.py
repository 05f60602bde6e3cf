"""`make reconcile`: compare what the stores hold with what the rows say; `--fix` repairs it.

    python -m devstack.reconcile [--fix] [--grace-seconds 3600] [--stuck-seconds 3600]

It reports (as JSON, and one line per finding on stderr):
- objects in the storage locations' buckets that no resource row references, older than the
  grace period (a leftover of a crash, or of a cleanup that failed);
- songs whose resource does not exist;
- resources whose row exists and whose object does not (`missing_objects`: an S3 server that
  forgot, such as a restarted LocalStack); a person's call, never fixed here;
- resources still in STAGING past the threshold;
- messages parked in a dead-letter queue.
With `--fix` it deletes the orphans and publishes the stuck resources' events again (through
the outbox); parked messages are a person's call (`make replay-dlq`), so it only counts them.
The databases and the broker are `make run`'s unless `RUN_*` says otherwise (devstack.services).
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
from sqlalchemy import Engine, create_engine, text

from devstack.services import RunSettings, database_name
from service_kit.config import S3Settings
from service_kit.messaging import (
    RESOURCE_DELETED,
    RESOURCE_PROCESSED,
    RESOURCE_UPLOADED,
    dead_letter_queue,
)
from service_kit.s3 import S3Client, make_s3_client, object_exists


@dataclass
class Findings:
    orphan_objects: list[dict[str, str]] = field(default_factory=list)
    orphan_songs: list[int] = field(default_factory=list)
    missing_objects: list[dict[str, Any]] = field(default_factory=list)
    stuck_resources: list[int] = field(default_factory=list)
    parked: dict[str, int] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Stores:
    resource_db: Engine
    song_db: Engine
    storage_db: Engine
    s3: S3Client
    rabbitmq_url: str
    prefix: str  # only objects under this key prefix (a test's own folder); "" for all


def find(stores: Stores, grace: timedelta, stuck_after: timedelta) -> Findings:
    findings = Findings()
    with stores.resource_db.connect() as conn:
        rows = {r.id: (r.bucket, r.key) for r in conn.execute(text(ROWS))}
        referenced = set(rows.values())
        resource_ids = set(rows)
        findings.stuck_resources = sorted(
            r.id
            for r in conn.execute(
                text("SELECT id FROM resources WHERE state = 'STAGING' AND created_at < :before"),
                {"before": datetime.now(UTC) - stuck_after},
            )
        )
    with stores.storage_db.connect() as conn:
        buckets = sorted({r.bucket for r in conn.execute(text("SELECT bucket FROM storages"))})
    old_enough = datetime.now(UTC) - grace
    stored = set()
    for bucket in buckets:
        for item in _objects(stores.s3, bucket, stores.prefix):
            stored.add((bucket, item["Key"]))
            if (bucket, item["Key"]) not in referenced and item["LastModified"] < old_enough:
                findings.orphan_objects.append({"bucket": bucket, "key": item["Key"]})
    unlisted = [
        i for i, (b, k) in rows.items() if k.startswith(stores.prefix) and (b, k) not in stored
    ]
    findings.missing_objects = [m for i in sorted(unlisted) if (m := _still_missing(stores, i))]
    missing_ids = {m["resourceId"] for m in findings.missing_objects}
    findings.stuck_resources = [i for i in findings.stuck_resources if i not in missing_ids]
    with stores.song_db.connect() as conn:
        song_ids = {r.id for r in conn.execute(text("SELECT id FROM songs"))}
    findings.orphan_songs = sorted(song_ids - resource_ids)
    findings.parked = asyncio.run(_parked(stores.rabbitmq_url))
    return findings


ROWS = "SELECT id, bucket, key FROM resources"


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


async def _parked(url: str) -> dict[str, int]:
    counts = {}
    async with await aio_pika.connect(url) as connection:
        for queue in (RESOURCE_UPLOADED, RESOURCE_PROCESSED, RESOURCE_DELETED):
            async with connection.channel() as channel:
                try:
                    dlq = await channel.declare_queue(dead_letter_queue(queue), passive=True)
                except aio_pika.exceptions.ChannelClosed:  # never declared: nothing parked
                    continue
                counts[dead_letter_queue(queue)] = dlq.declaration_result.message_count or 0
    return counts


def fix(stores: Stores, findings: Findings) -> None:
    for orphan in findings.orphan_objects:
        stores.s3.delete_object(Bucket=orphan["bucket"], Key=orphan["key"])
        findings.fixed.append(f"deleted object {orphan['bucket']}/{orphan['key']}")
    if findings.orphan_songs:
        with stores.song_db.begin() as conn:
            conn.execute(
                text("DELETE FROM songs WHERE id = ANY(:ids)"), {"ids": findings.orphan_songs}
            )
        findings.fixed.append(f"deleted songs {findings.orphan_songs}")
    with stores.resource_db.begin() as conn:
        for resource_id in findings.stuck_resources:
            # A fresh `resource.uploaded` in the outbox: the relay publishes it, and every step
            # after it is idempotent.
            conn.execute(
                text("INSERT INTO outbox (queue, resource_id) VALUES (:queue, :id)"),
                {"queue": RESOURCE_UPLOADED, "id": resource_id},
            )
            findings.fixed.append(f"published resource.uploaded again for resource {resource_id}")


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
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.reconcile", description=__doc__)
    parser.add_argument("--fix", action="store_true", help="delete orphans, republish the stuck")
    parser.add_argument("--grace-seconds", type=float, default=3600.0)
    parser.add_argument("--stuck-seconds", type=float, default=3600.0)
    parser.add_argument("--prefix", default="", help="only objects whose key starts with this")
    args = parser.parse_args()
    stores = stores_of(RunSettings(), args.prefix)
    findings = find(
        stores, timedelta(seconds=args.grace_seconds), timedelta(seconds=args.stuck_seconds)
    )
    if args.fix:
        fix(stores, findings)
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
    for line in findings.fixed:
        print(f"fixed: {line}", file=sys.stderr)
    print(json.dumps(asdict(findings), indent=2))


if __name__ == "__main__":
    main()

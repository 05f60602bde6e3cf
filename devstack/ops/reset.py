"""`make reset`: clear the platform's data for a clean start.

    python -m devstack.ops.reset            (or: make reset)

LocalStack keeps objects in memory, so a restarted `make run` has every row and no file. This
drops the run's three databases, deletes the platform's queues in the run's vhost (parked
messages included), and, when an S3 server answers on the run's port, the objects in the
buckets the storage rows name. It refuses while `make run` is up: `make down` first. The next
`make run` seeds everything again. The databases and the broker are `make run`'s unless
`RUN_*` says otherwise (devstack.runner.services).
"""

from __future__ import annotations

import asyncio
import sys

import aio_pika
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from devstack.runner import servers, supervisor
from devstack.runner.services import DATABASES, RunSettings, database_name
from service_kit.config import S3Settings
from service_kit.messaging import RETRY_ORPHANS, queue_arguments
from service_kit.migrate_queues import WORK_QUEUES, holding_queue
from service_kit.s3 import make_s3_client


def storage_buckets(settings: RunSettings) -> list[str]:
    """The buckets the storage rows name; none when there is no storage database yet."""
    engine = create_engine(database_url(settings, "storage"))
    try:
        with engine.connect() as conn:
            return sorted({r.bucket for r in conn.execute(text("SELECT bucket FROM storages"))})
    except (OperationalError, ProgrammingError):
        return []
    finally:
        engine.dispose()


def recorded_resources(settings: RunSettings) -> int:
    """How many resources the run's database holds; 0 before its first start."""
    engine = create_engine(database_url(settings, "resource"))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM resources")).scalar_one())
    except (OperationalError, ProgrammingError):
        return 0
    finally:
        engine.dispose()


def database_url(settings: RunSettings, name: str) -> str:
    return f"{settings.postgres_url.rstrip('/')}/{database_name(settings, name)}"


def empty_buckets(settings: RunSettings, buckets: list[str]) -> int:
    s3 = make_s3_client(S3Settings(s3_endpoint_url=f"http://127.0.0.1:{settings.s3_port}"))
    deleted = 0
    for bucket in buckets:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
                deleted += len(keys)
    return deleted


def drop_databases(settings: RunSettings) -> None:
    engine = create_engine(
        f"{settings.postgres_url.rstrip('/')}/postgres", isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        for name in DATABASES:
            drop = f'DROP DATABASE IF EXISTS "{database_name(settings, name)}" WITH (FORCE)'
            conn.execute(text(drop))
    engine.dispose()


async def delete_queues(url: str) -> None:
    names = [q for work in WORK_QUEUES for q in queue_arguments(work)]
    async with await aio_pika.connect(url) as connection:
        for name in [*names, *map(holding_queue, names), RETRY_ORPHANS]:
            async with connection.channel() as channel:
                await channel.queue_delete(name)


def main() -> None:
    settings = RunSettings()
    if supervisor.answers(supervisor.RunPaths(settings.dir)):
        sys.exit("make run is up: `make down` first, then `make reset`.")
    # The run's own PostgreSQL and RabbitMQ stopped with it: they come up for the while.
    with servers.running(settings.postgres_url, settings.rabbitmq_url, settings.dir):
        buckets = storage_buckets(settings)
        try:
            objects = empty_buckets(settings, buckets)
            print(f"deleted {objects} object(s) in {', '.join(buckets) or 'no bucket'}")
        except Exception as exc:  # nothing answers on the S3 port: nothing is stored there
            name = type(exc).__name__
            print(f"S3 not reached on port {settings.s3_port} ({name}): no object deleted")
        drop_databases(settings)
        print(f"dropped the databases {', '.join(database_name(settings, n) for n in DATABASES)}")
        asyncio.run(delete_queues(settings.rabbitmq_url))
    print("deleted the platform's queues; the next make run starts from nothing")


if __name__ == "__main__":
    main()

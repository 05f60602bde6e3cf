"""How the Resource Service starts: replicas at once on an empty database, and with RabbitMQ
away (the outbox keeps the uploads' events until the broker is there)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import httpx2
import pytest
from sqlalchemy import create_engine, text

from devstack.testing.faultproxy import FaultProxy, Mode
from devstack.testing.mp3 import make_mp3
from devstack.testing.processes import ServiceProcess
from devstack.testing.stack import free_port, wait_until
from service_kit.messaging import RESOURCE_PROCESSED
from tests.fixture_types import DatabaseUrls, VhostFactory
from tests.infra import Infrastructure
from tests.replicas import started_at_once


@pytest.fixture
def resource_env(
    new_database_url: DatabaseUrls, new_rabbitmq_vhost: VhostFactory, infra: Infrastructure
) -> dict[str, str]:
    dead = f"http://127.0.0.1:{free_port()}"  # no Storage Service: the stub serves
    return {
        "DATABASE_URL": new_database_url("resource_start"),
        "RABBITMQ_URL": new_rabbitmq_vhost("resource_start").url,
        "S3_ENDPOINT_URL": infra.s3_endpoint_url,
        "STORAGE_SERVICE_URL": dead,
        "SONG_SERVICE_URL": dead,
    }


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    processes: list[ServiceProcess] = []
    yield processes
    for process in processes:
        process.stop()


def test_two_replicas_starting_at_once_migrate_one_database(
    resource_env: dict[str, str], tmp_path: Path
) -> None:
    with started_at_once("resource_service", resource_env, tmp_path) as replicas:
        engine = create_engine(resource_env["DATABASE_URL"])
        try:
            with engine.connect() as conn:
                versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        finally:
            engine.dispose()
        assert len(versions) == 1
        first, second = (replica.url for replica in replicas)
        uploaded = httpx2.post(
            f"{first}/resources", content=make_mp3(1), headers={"Content-Type": "audio/mpeg"}
        )
        assert uploaded.status_code == 200, uploaded.text
        assert httpx2.get(f"{second}/resources/{uploaded.json()['id']}").status_code == 200


def test_starts_and_takes_uploads_while_rabbitmq_is_down(
    resource_env: dict[str, str], started: list[ServiceProcess], tmp_path: Path
) -> None:
    broker = urlsplit(resource_env["RABBITMQ_URL"])
    assert broker.hostname
    proxy = FaultProxy(broker.port, broker.hostname).start()
    proxy.set_mode(Mode.CUT)  # RabbitMQ is away from the very start
    try:
        env = {**resource_env, "RABBITMQ_URL": proxy.via(resource_env["RABBITMQ_URL"])}
        service = ServiceProcess("resource_service", free_port(), env, tmp_path / "r.log")
        started.append(service)
        service.start().wait_healthy(timeout=60)
        uploaded = httpx2.post(
            f"{service.url}/resources", content=make_mp3(1), headers={"Content-Type": "audio/mpeg"}
        )
        assert uploaded.status_code == 200, uploaded.text
        broker_health = httpx2.get(f"{service.url}/health").json()["checks"]["broker"]
        assert (broker_health["status"], broker_health["pendingEvents"]) == ("DEGRADED", 1)
        assert broker_health["link"] == "connecting" and broker_health["downSeconds"] >= 0

        proxy.set_mode(Mode.PASS)  # it arrives: the link connects, the relay publishes
        wait_until(
            lambda: (
                httpx2.get(f"{service.url}/health").json()["checks"]["broker"]
                == {"status": "UP", "pendingEvents": 0, "parkedEvents": 0, "link": "connected"}
            ),
            30,
            lambda: (tmp_path / "r.log").read_text()[-3000:],
        )
    finally:
        proxy.close()


def test_the_stub_and_the_age_of_the_last_good_answer_come_from_the_environment(
    resource_env: dict[str, str],
    started: list[ServiceProcess],
    tmp_path: Path,
    new_database_url: DatabaseUrls,
    infra: Infrastructure,
) -> None:
    storage = ServiceProcess(
        "storage_service",
        free_port(),
        {"DATABASE_URL": new_database_url("env_storage"), "S3_ENDPOINT_URL": infra.s3_endpoint_url},
        tmp_path / "storage.log",
    )
    stub = [
        {"id": 1, "storageType": "STAGING", "bucket": "resources-staging", "path": "/from-env/"},
        {"id": 2, "storageType": "PERMANENT", "bucket": "resources-permanent", "path": "/env/"},
    ]
    env = {
        **resource_env,
        "STORAGE_SERVICE_URL": storage.url,
        "STORAGE_STUB_JSON": json.dumps(stub),
        "STORAGE_LAST_GOOD_MAX_AGE_SECONDS": "0",  # a last good answer never serves
    }
    resource = ServiceProcess("resource_service", free_port(), env, tmp_path / "resource.log")
    started.extend([resource, storage])
    storage.start().wait_healthy()
    resource.start().wait_healthy()

    assert staging_key_of(resource, env).startswith("staging/")  # live: the seed row
    storage.signal(signal.SIGKILL)
    storage.running.wait()
    assert staging_key_of(resource, env).startswith("from-env/")  # the stub, not the last good
    metrics = httpx2.get(f"{resource.url}/metrics").text
    assert 'storage_lookup_total{source="stub"} 1.0' in metrics
    assert 'storage_lookup_total{source="last_good"}' not in metrics
    log = (tmp_path / "resource.log").read_text().splitlines()
    fallbacks = [json.loads(line) for line in log if '"storage_lookup_fallback"' in line]
    assert [(f["source"], f["storage_type"]) for f in fallbacks] == [("stub", "STAGING")]


def staging_key_of(resource: ServiceProcess, env: dict[str, str]) -> str:
    """Upload one file; the key its row records."""
    uploaded = httpx2.post(
        f"{resource.url}/resources", content=make_mp3(1), headers={"Content-Type": "audio/mpeg"}
    )
    assert uploaded.status_code == 200, uploaded.text
    engine = create_engine(env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            key: str = conn.execute(
                text("SELECT key FROM resources WHERE id = :id"), {"id": uploaded.json()["id"]}
            ).scalar_one()
            return key
    finally:
        engine.dispose()


def test_a_queue_declared_with_other_arguments_is_retried_until_it_is_fixed(
    resource_env: dict[str, str],
    started: list[ServiceProcess],
    tmp_path: Path,
    infra: Infrastructure,
) -> None:
    url = resource_env["RABBITMQ_URL"]
    classic(url, RESOURCE_PROCESSED)  # someone declared it otherwise: every declare gets a 406
    service = ServiceProcess("resource_service", free_port(), resource_env, tmp_path / "r.log")
    started.append(service)
    service.start().wait_healthy(timeout=60)
    uploaded = httpx2.post(
        f"{service.url}/resources", content=make_mp3(1), headers={"Content-Type": "audio/mpeg"}
    )
    assert uploaded.status_code == 200, uploaded.text  # the outbox keeps its event

    def broker() -> dict[str, Any]:
        found: dict[str, Any] = httpx2.get(f"{service.url}/health").json()["checks"]["broker"]
        return found

    # The link is not dead: it keeps trying (and says so) while the declare is refused.
    wait_until(lambda: "PRECONDITION_FAILED" in (tmp_path / "r.log").read_text(), 15)
    assert broker()["status"] == "DEGRADED" and broker()["link"] == "connecting"
    # The fix docs/decisions.md gives: `make migrate-queues`, at this stack's broker.
    migrate = [sys.executable, "-m", "service_kit.migrate_queues", "--url", url]
    assert "migrated resource.processed" in subprocess.check_output(migrate, text=True)
    wait_until(
        lambda: (
            broker() == {"status": "UP", "pendingEvents": 0, "parkedEvents": 0, "link": "connected"}
        ),
        40,
    )


def classic(url: str, queue: str) -> None:
    async def go() -> None:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            await channel.declare_queue(queue, durable=True)

    asyncio.run(go())

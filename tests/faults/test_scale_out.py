"""Scale-out, as Kubernetes would run it, with processes: two Resource Service replicas and two
Storage replicas on one database, three processors on one vhost. Uploads go to both Resource
replicas; mid-run one replica of each is SIGKILLed. Every accepted upload ends PERMANENT exactly
once, every outbox event is published once, and each Resource replica falls back on its own."""

from __future__ import annotations

import itertools
import signal
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from devstack.testing.mp3 import make_mp3
from devstack.testing.processes import ServiceProcess
from devstack.testing.stack import Stack, free_port, wait_until
from service_kit.s3 import S3Client
from tests.fixture_types import RecordProperty, StackStarter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
UPLOADS = 60
KILL_AT = 20


@pytest.fixture(scope="module")
def cluster(start_module_stack: StackStarter) -> Iterator[tuple[Stack, ServiceProcess]]:
    # A replica SIGKILLed between an upload's PUT and its row's commit leaves the object and
    # its intent; the survivor's relay deletes it once the intent expires (2 + 1 + 3 s here,
    # half an hour by default), so the test's wait for no STAGING leftovers covers that too.
    expiry = {"UPLOAD_MAX_SECONDS": "2", "UPLOAD_IDLE_SECONDS": "1", "UPLOAD_COMMIT_SECONDS": "3"}
    stack = start_module_stack("scaleout", processors=3, resource_env=expiry)
    logs = stack.log_dir  # beside the first replicas' logs, so `stack.logged` reads them too
    storage_b = ServiceProcess("storage_service", free_port(), dict(stack.storage.env),
                               logs / "storage-b.log")  # fmt: skip
    resource_b = ServiceProcess(
        "resource_service",
        free_port(),
        {**stack.resource.env, "STORAGE_SERVICE_URL": storage_b.url},
        logs / "resource-b.log",
    )
    extras = [storage_b.start().wait_healthy(), resource_b.start().wait_healthy()]
    yield stack, resource_b
    for replica in extras:
        replica.stop()


def upload(stack: Stack, url: str, n: int) -> int | None:
    try:
        reply = stack.http.post(
            f"{url}/resources",
            content=make_mp3(1, title=f"replicated {n}"),
            headers={"Content-Type": "audio/mpeg"},
        )
    except Exception:  # the replica was killed under this request: not accepted
        return None
    return reply.json()["id"] if reply.status_code == 200 else None


def test_every_accepted_upload_is_permanent_once_after_a_replica_of_each_dies(
    cluster: tuple[Stack, ServiceProcess], s3: S3Client, record_property: RecordProperty
) -> None:
    stack, resource_b = cluster
    replicas = itertools.cycle([stack.resource.url, resource_b.url])
    accepted: list[int] = []
    lock = threading.Lock()
    killed = threading.Event()

    def client(numbers: Iterable[int]) -> None:
        for n in numbers:
            if n == KILL_AT and not killed.is_set():
                killed.set()
                resource_b.signal(signal.SIGKILL)  # the processors call the other replica
                stack.storage.signal(signal.SIGKILL)  # the surviving Resource replica's Storage
                stack.processors[0].signal(signal.SIGKILL)
            with lock:
                url = next(replicas)
            if (resource_id := upload(stack, url, n)) is not None:
                with lock:
                    accepted.append(resource_id)

    threads = [threading.Thread(target=client, args=(range(i, UPLOADS, 2),)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert killed.is_set() and len(accepted) > UPLOADS // 2

    for resource_id in accepted:
        stack.wait_permanent(resource_id, timeout=120)
    assert len(set(accepted)) == len(accepted)
    permanent = s3.list_objects_v2(Bucket="resources-permanent", Prefix=stack.permanent_prefix)
    assert len(permanent.get("Contents", [])) == len(accepted)  # each exactly once

    def staging_left() -> list[Any]:
        listed = s3.list_objects_v2(Bucket="resources-staging", Prefix=stack.staging_prefix)
        found: list[Any] = listed.get("Contents", [])
        return found

    wait_until(lambda: not staging_left(), 30, "STAGING leftovers")
    for resource_id in accepted:
        assert stack.song_of(resource_id).status_code == 200

    engine = create_engine(stack.resource_database_url)
    with engine.connect() as conn:
        events = conn.execute(
            text(
                "SELECT resource_id, count(*), bool_and(published_at IS NOT NULL) FROM outbox"
                " WHERE queue = 'resource.uploaded' GROUP BY resource_id"
            )
        ).all()
    engine.dispose()
    assert {row[0] for row in events} == set(accepted)
    assert all(count == 1 and published for _, count, published in events)
    # At least once on the wire: a relay killed between publish and mark publishes again, and
    # the consumers absorb it. How often that happened here:
    publishes = sum(
        stack.logged(log, "event_published", queue="resource.uploaded")
        for log in ("resource", "resource-b")
    )
    record_property("duplicate_publishes", publishes - len(events))

    # The surviving replica lost its Storage Service: it served what it had last seen.
    assert stack.logged("resource", "storage_lookup_fallback", source="last_good") >= 1

"""Two replicas of the Storage Service starting at once against an empty database."""

import httpx

from devstack.processes import ServiceProcess
from devstack.stack import free_port


def test_two_replicas_starting_at_once_seed_exactly_one_row_of_each_type(
    new_database_url, infra, tmp_path
):
    env = {"DATABASE_URL": new_database_url("replicas"), "S3_ENDPOINT_URL": infra.s3_endpoint_url}
    replicas = [
        ServiceProcess("storage_service", free_port(), env, tmp_path / f"replica{i}.log")
        for i in range(2)
    ]
    try:
        for replica in replicas:
            replica.start()  # both start before either is waited for
        for replica in replicas:
            replica.wait_healthy(timeout=60)
        for replica in replicas:
            rows = httpx.get(f"{replica.url}/storages").json()
            assert [(r["storageType"], r["bucket"], r["path"]) for r in rows] == [
                ("STAGING", "resources-staging", "/staging/"),
                ("PERMANENT", "resources-permanent", "/permanent/"),
            ]
    finally:
        for replica in replicas:
            replica.stop()

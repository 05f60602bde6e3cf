import pytest

from devstack.stack import start_stack

MAX_UPLOAD_BYTES = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def stack(infra, new_database_url, new_rabbitmq_vhost, tmp_path_factory):
    running = start_stack(
        new_database_url,
        new_rabbitmq_vhost("stack").url,
        infra.s3_endpoint_url,
        tmp_path_factory.mktemp("stack"),
        MAX_UPLOAD_BYTES=str(MAX_UPLOAD_BYTES),
    )
    yield running
    running.stop()

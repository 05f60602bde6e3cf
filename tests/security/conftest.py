"""One stack for the security suite: its Resource Service reaches S3 through a fault proxy, so a
test can make S3 hang (hold its requests) while it watches what else still answers."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from devstack.testing.faultproxy import FaultProxy
from devstack.testing.stack import Stack
from tests.fixture_types import StackStarter
from tests.infra import Infrastructure


@pytest.fixture(scope="module")
def s3_proxy(infra: Infrastructure) -> Iterator[FaultProxy]:
    proxy = FaultProxy(urlsplit(infra.s3_endpoint_url).port, http=True).start()
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def stack(infra: Infrastructure, start_module_stack: StackStarter, s3_proxy: FaultProxy) -> Stack:
    return start_module_stack(
        "security", resource_env={"S3_ENDPOINT_URL": s3_proxy.via(infra.s3_endpoint_url)}
    )


@pytest.fixture(autouse=True)
def s3_released(s3_proxy: FaultProxy) -> Iterator[None]:
    yield
    s3_proxy.hold(None)

import pytest

from devstack.testing.stack import Stack
from tests.fixture_types import StackStarter

MAX_UPLOAD_BYTES = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def stack(start_module_stack: StackStarter) -> Stack:
    return start_module_stack("e2e", resource_env={"MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)})

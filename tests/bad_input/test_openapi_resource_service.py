"""schemathesis over the Resource Service's OpenAPI, over HTTP against a whole stack (it needs
the Storage and Song Services and a broker): no 5xx, every response as documented, every 4xx in
the contract's error format."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from schemathesis import Case
from schemathesis.transport.serialization import serialize_binary

from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import Stack
from resource_service.app import create_app
from tests.bad_input.openapi_fuzz import FUZZ_SETTINGS, check_response, send
from tests.fixture_types import StackStarter

# The OpenAPI document needs no connection: create_app connects only in its lifespan.
schema = schemathesis.openapi.from_dict(create_app().openapi())
MP3 = make_mp3(1)


@schemathesis.serializer("audio/mpeg")
def audio_mpeg(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """A body that fits the schema is MP3 audio, so positive bodies start as an MP3 file does;
    negative ones are sent as generated."""
    data = serialize_binary(value)
    meta = ctx.case.meta
    if meta is not None and meta.generation.mode.is_positive:
        data = MP3 + data
    return data


@pytest.fixture(scope="module")
def stack(start_module_stack: StackStarter) -> Stack:
    return start_module_stack("fuzz", resource_env={"MAX_UPLOAD_BYTES": str(1024 * 1024)})


@schema.parametrize()
@FUZZ_SETTINGS
def test_resource_service_answers_any_input_as_documented(case: Case[Any], stack: Stack) -> None:
    check_response(case, send(stack.http, case, stack.resource.url))

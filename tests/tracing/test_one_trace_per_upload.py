"""One upload is one trace (issue "Follow one upload"): the four services, as processes, export
their spans over OTLP to a receiver of this test's own, and every span of an upload, from the
POST to the move to PERMANENT, carries the trace id of the `traceparent` the client sent; a log
line of each service carries it too. A delayed retry (the Song Service down) and a fallback to
the last good Storage answer (the Storage Service frozen) stay in the same trace.

W3C Trace Context (https://www.w3.org/TR/trace-context/): `traceparent` is
`00-<trace id, 32 hex>-<parent span id, 16 hex>-<flags>`; a server continues the trace and its
span's parent is the sender's span.
"""

from __future__ import annotations

import json
import secrets
import signal
from collections.abc import Iterator

import pytest

from devstack.testing.mp3 import make_mp3
from devstack.testing.otlp import ReceivedSpan, Receiver, otlp_receiver
from devstack.testing.stack import Stack, wait_until
from tests.fixture_types import StackStarter

SERVICES = {"storage_service", "song_service", "resource_service", "resource_processor"}
LOGS = {
    "storage_service": "storage.log",
    "song_service": "song.log",
    "resource_service": "resource.log",
    "resource_processor": "processor0.log",
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, Receiver]]:
    with otlp_receiver() as endpoint_and_receiver:
        yield endpoint_and_receiver


@pytest.fixture(scope="module")
def stack(start_module_stack: StackStarter, receiver: tuple[str, Receiver]) -> Stack:
    endpoint, _ = receiver
    exporting = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    # A frozen Storage Service costs one attempt's time limit before the fallback answers.
    quick = {"STORAGE_TIMELIMITER_TIMEOUT_DURATION": "0.5"}
    return start_module_stack("tracing", common_env=exporting, resource_env=quick)


def upload_with_traceparent(stack: Stack, title: str) -> tuple[int, str, str]:
    """(resource id, trace id, the client's span id) of an upload sent with a `traceparent`."""
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    answer = stack.http.post(
        f"{stack.resource.url}/resources",
        content=make_mp3(1, title=title),
        headers={"Content-Type": "audio/mpeg", "traceparent": f"00-{trace_id}-{client_span}-01"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["id"], trace_id, client_span


def spans_of_every_service(receiver: Receiver, trace_id: str, *names: str) -> list[ReceivedSpan]:
    """The trace's spans once every service and every named span has sent its part."""

    def complete() -> list[ReceivedSpan] | None:
        spans = receiver.of_trace(trace_id)
        seen = {span.name for span in spans}
        return spans if {s.service for s in spans} >= SERVICES and seen >= set(names) else None

    def seen() -> str:
        return f"spans of {trace_id}: {sorted({(s.service, s.name) for s in receiver.spans})}"

    return wait_until(complete, 20, seen)


def logged_trace_ids(stack: Stack, service: str) -> set[str]:
    lines = (stack.log_dir / LOGS[service]).read_text(errors="replace").splitlines()
    return {json.loads(line).get("trace_id") for line in lines if line.startswith("{")}


def test_one_upload_is_one_trace_from_the_post_to_permanent(
    stack: Stack, receiver: tuple[str, Receiver]
) -> None:
    _, received = receiver
    resource_id, trace_id, client_span = upload_with_traceparent(stack, "traced")
    stack.wait_permanent(resource_id, timeout=30)
    spans = spans_of_every_service(
        received,
        trace_id,
        "POST /resources",
        "storage lookup",
        "resource.uploaded publish",
        "resource.uploaded process",
        "resource.processed process",
    )
    # The trace's root here is the client's span: the upload's server span is its child.
    [upload] = [s for s in spans if s.name == "POST /resources"]
    assert (upload.service, upload.parent_span_id) == ("resource_service", client_span)
    lookups = [s for s in spans if s.name == "storage lookup"]
    assert {s.attributes["storage.lookup.source"] for s in lookups} == {"live"}
    assert {s.attributes["breaker.state"] for s in lookups} == {"CLOSED"}
    processed = [s for s in spans if s.name == "resource.uploaded process"]
    assert {s.service for s in processed} == {"resource_processor"}
    assert processed[0].attributes["resource.id"] == resource_id
    # SQL and S3 are in it too (OpenTelemetry's SQLAlchemy and botocore instrumentations).
    assert any(s.attributes.get("db.system") == "postgresql" for s in spans)
    assert any(s.attributes.get("rpc.service") == "S3" for s in spans)
    for service in SERVICES:
        assert trace_id in logged_trace_ids(stack, service), service


def test_a_delayed_retry_and_a_last_good_answer_stay_in_the_trace(
    stack: Stack, receiver: tuple[str, Receiver]
) -> None:
    _, received = receiver
    warm_up, _, _ = upload_with_traceparent(stack, "a live lookup, remembered")
    stack.wait_permanent(warm_up, timeout=30)
    stack.song.stop()  # the processor's tags cannot be stored: a delayed retry
    stack.storage.signal(signal.SIGSTOP)  # the lookup falls back to the last good answer
    try:
        resource_id, trace_id, _ = upload_with_traceparent(stack, "retried")
        wait_until(
            lambda: stack.logged("processor0", "message_retry_scheduled", resource_id=resource_id),
            30,
            "the processor scheduled a delayed retry",
        )
    finally:
        stack.storage.signal(signal.SIGCONT)
        stack.song.start().wait_healthy()
    stack.wait_permanent(resource_id, timeout=60)
    spans = spans_of_every_service(received, trace_id, "resource.processed process")
    lookups = [s for s in spans if s.name == "storage lookup"]
    sources = {s.attributes["storage.lookup.source"] for s in lookups}
    assert "last_good" in sources

    # The message came back from the retry queue and was processed again, in the same trace
    # (each process exports on its own: the second attempt's span may come last).
    def attempts() -> list[ReceivedSpan]:
        spans = received.of_trace(trace_id)
        return [s for s in spans if s.name == "resource.uploaded process"]

    wait_until(lambda: len(attempts()) >= 2, 10, lambda: f"attempts: {attempts()}")

"""The trace context across a message and an outbox row, with the SDK's in-memory exporter: a
message built in a span carries its `traceparent`; its handler runs in a CONSUMER span of the
same trace, and so does a delayed retry's copy; an outbox row's stored context is continued by
the relay's PRODUCER span; log lines carry the ids. W3C Trace Context names the header."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service_kit import tracing
from service_kit.messaging import persistent, retry_queue
from tests.service_kit.unit.test_message_handler import QUEUE, FakeMessage, FakePublisher, handle


def trace_id_of(traceparent: object) -> str:
    assert isinstance(traceparent, str), traceparent
    version, trace_id, _, _ = traceparent.split("-")
    assert version == "00"
    return trace_id


def test_a_message_built_in_a_span_carries_its_traceparent(spans: InMemorySpanExporter) -> None:
    with tracing.tracer.start_as_current_span("upload") as span:
        message = persistent(b"{}", {"x-retry-attempts": 1})
    assert trace_id_of(message.headers["traceparent"]) == f"{span.get_span_context().trace_id:032x}"
    assert message.headers["x-retry-attempts"] == 1  # the others kept
    assert "traceparent" not in persistent(b"{}").headers  # outside any span: nothing


def test_the_handler_and_its_retry_copy_continue_the_messages_trace(
    spans: InMemorySpanExporter,
) -> None:
    spans.clear()
    trace_id, sender = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    message = FakeMessage(headers={"traceparent": f"00-{trace_id}-{sender}-01"})
    publisher = FakePublisher()
    handle(OSError("the peer is away"), message, publisher)
    [consumer] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert (consumer.name, f"{consumer.context.trace_id:032x}") == (f"{QUEUE} process", trace_id)
    assert consumer.parent and f"{consumer.parent.span_id:016x}" == sender
    assert consumer.attributes and consumer.attributes["resource.id"] == 7
    [(queue, copy)] = publisher.sent
    assert queue == retry_queue(QUEUE, 1)
    # The copy's parent is the consumer's span: the retry comes back into the same trace.
    assert copy.headers["traceparent"] == f"00-{trace_id}-{consumer.context.span_id:016x}-01"


def test_an_outbox_rows_context_is_continued_by_the_relay(spans: InMemorySpanExporter) -> None:
    with tracing.tracer.start_as_current_span("POST /resources") as upload:
        stored = tracing.current_context()  # what the row keeps
    spans.clear()
    assert stored is not None
    with tracing.continued(stored, "resource.uploaded publish"):
        message = persistent(b"{}")
    [publish] = spans.get_finished_spans()
    assert publish.kind == SpanKind.PRODUCER
    assert publish.context.trace_id == upload.get_span_context().trace_id
    assert publish.parent and publish.parent.span_id == upload.get_span_context().span_id
    assert trace_id_of(message.headers["traceparent"]) == f"{publish.context.trace_id:032x}"
    with tracing.continued(None, "an event of no request"):  # a new trace, not an error
        pass


def test_log_lines_carry_the_trace_and_span_ids(spans: InMemorySpanExporter) -> None:
    assert tracing.add_trace_ids(None, "info", {"event": "outside"}) == {"event": "outside"}
    with tracing.tracer.start_as_current_span("work") as span:
        line = tracing.add_trace_ids(None, "info", {"event": "inside"})
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"

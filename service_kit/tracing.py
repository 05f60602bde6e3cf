"""One trace per upload: OpenTelemetry's SDK and its instrumentations, set up the same way in
every service.

- HTTP in (FastAPI/ASGI, which accepts a W3C `traceparent`), HTTP out (httpx2), SQL
  (SQLAlchemy, every engine made after `configure_tracing`) and S3 (botocore) are
  OpenTelemetry's own instrumentations.
- Messages carry the context in their headers (`traceparent`): `persistent` injects it into
  every message it builds and `consuming` continues it. Written here because OpenTelemetry's
  aio-pika instrumentation supports aio-pika below 10 only (its `_instruments`), and we run 10.
  A retry copy is built inside the consumer's span, so a delayed retry stays in the trace.
- The outbox stores each event's context with its row (`current_context`), and the relay
  publishes within it (`continued`): an event that waits for the broker keeps its trace.
- Every log line written inside a span has its `trace_id` and `span_id` (`add_trace_ids`).

Spans are exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and nowhere otherwise; the ids exist either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from structlog.typing import EventDict, WrappedLogger

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TRACEPARENT = "traceparent"
tracer = trace.get_tracer("song_platform")


def configure_tracing(service: str) -> None:
    """The process's tracer provider, named after `service`, exporting over OTLP when an
    endpoint is configured, and the instrumentations of the libraries every service shares."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _instrument_clients()


def _instrument_clients() -> None:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    botocore = BotocoreInstrumentor()  # type: ignore[no-untyped-call]  # its __init__ is bare
    for instrumentor in (HTTPX2ClientInstrumentor(), botocore):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
    # Every engine created from now on (`sqlalchemy.create_engine` is wrapped). Its declared
    # range stops below SQLAlchemy 2.1, whose engine events it uses are unchanged:
    # tests/tracing checks that the statements are in the trace.
    sqlalchemy = SQLAlchemyInstrumentor()
    if not sqlalchemy.is_instrumented_by_opentelemetry:
        sqlalchemy.instrument(skip_dep_check=True)


def instrument_app(app: Any, untraced: Iterable[str]) -> None:
    """Server spans for every route but `untraced` (probes, the scrape, the dashboard), which
    would drown the rest."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # No span per body chunk sent or received: an upload has thousands.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=",".join(sorted(untraced)), exclude_spans=["receive", "send"]
    )


def add_trace_ids(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """structlog: the current span's ids on the line, when there is one."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event["trace_id"] = trace.format_trace_id(span_context.trace_id)
        event["span_id"] = trace.format_span_id(span_context.span_id)
    return event


def inject(headers: MutableMapping[str, Any]) -> None:
    """The current context into a message's headers (nothing when there is none)."""
    propagate.inject(headers)


def current_context() -> str | None:
    """The current `traceparent`, to store with an outbox row."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


@contextmanager
def continued(traceparent: str | None, name: str, **attributes: Any) -> Iterator[None]:
    """A PRODUCER span in the trace `traceparent` names (a new trace when it names none)."""
    parent = propagate.extract({TRACEPARENT: traceparent} if traceparent else {})
    with tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.PRODUCER, attributes=attributes
    ):
        yield


@contextmanager
def consuming(queue: str, headers: Mapping[str, Any] | None, **attributes: Any) -> Iterator[None]:
    """A CONSUMER span continuing the trace the message's headers carry."""
    carrier = {
        k: v.decode() if isinstance(v, bytes) else v
        for k, v in (headers or {}).items()
        if isinstance(v, str | bytes)
    }
    messaging = {"messaging.system": "rabbitmq", "messaging.destination.name": queue}
    with tracer.start_as_current_span(
        f"{queue} process",
        context=propagate.extract(carrier),
        kind=SpanKind.CONSUMER,
        attributes=messaging | attributes,
    ):
        yield

"""What every service's FastAPI app shares: errors, /health, /metrics, and how it is served."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, Protocol, runtime_checkable

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_kit.config import ServiceSettings
from service_kit.deps import ServiceState, part
from service_kit.errors import error_response, install_error_handlers
from service_kit.schemas import ErrorPublic
from service_kit.threads import run_in
from service_kit.tracing import instrument_app

log = structlog.get_logger(__name__)

Status = Literal["UP", "DEGRADED", "DOWN"]
# A health check returns its status and anything worth showing; raising means DOWN.
HealthCheck = Callable[[], Awaitable[dict[str, Any]]]


@runtime_checkable
class HasHealthChecks(Protocol):
    health_checks: dict[str, HealthCheck]


# Every 4xx and 5xx of a service route has the one error format. Documenting "4XX" also keeps
# FastAPI from documenting its default 422, which our handlers turn into a 400.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorPublic, "description": "The request was rejected"},
    "5XX": {"model": ErrorPublic, "description": "The service or a dependency failed"},
}

# Metric labels come from a closed set: a client's made-up method must not add a time series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The checks that say a service can do its job (`/health/ready`): its own database. An open
# breaker with a fallback, or a broker outage the outbox absorbs, leaves it ready.
READINESS_CHECKS = ("database",)
# Asked every few seconds by probes and scrapers: counted, not logged line by line.
PROBE_ROUTES = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by route and status", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency by route", ["method", "route"]
)


class RequestMetrics:
    """Counts and times every request by route template and status.

    A plain ASGI middleware, not `@app.middleware("http")`: that one relays every request body
    and streamed response through an extra task and queue, which costs uploads and downloads.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it answers

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            # The route template, not the raw path: ids in paths would explode the label set.
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            seconds = time.perf_counter() - started
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(seconds)
            if route not in PROBE_ROUTES:  # the access log: with the request and trace ids
                log.info("http_request", method=method, route=route, status=status,
                         ms=round(seconds * 1000, 1))  # fmt: skip


class AllowedHosts:
    """400 in the error format for a Host header not in `patterns` (exact names, `*.domain`, or
    `*` for any). Written here because Starlette's TrustedHostMiddleware, which does the same
    check, answers in plain text, and the contract wants its JSON error on every answer."""

    def __init__(self, app: ASGIApp, patterns: list[str]):
        self.app = app
        self.patterns = patterns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "*" in self.patterns:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
        if self._allowed(host_name(header)):
            await self.app(scope, receive, send)
            return
        log.warning("host_refused", host=header[:100], path=scope["path"])
        await error_response(400, "Invalid Host header")(scope, receive, send)

    def _allowed(self, name: str) -> bool:
        return bool(name) and any(
            name == p or (p.startswith("*.") and name.endswith(p[1:])) for p in self.patterns
        )


def host_name(header: str) -> str:
    """The name in a Host header, without its port: `[::1]:8080` -> `[::1]`."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


class BodyLimit:
    """413 in the error format for a request body over `max_bytes`, before anything parses it:
    at once for a declared Content-Length, at the byte that crosses the limit otherwise.

    Such bodies are JSON, which FastAPI reads whole anyway (whatever their Content-Type), so the
    body is read here (never more than the limit) and handed on. The routes in `streamed`
    (method, path) pass untouched: the upload route checks the type first and enforces
    MAX_UPLOAD_BYTES itself as it streams.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, streamed: frozenset[tuple[str, str]] = frozenset()
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.streamed:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        whole = {"type": "http.request", "body": bytes(body), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    def _too_large(self) -> JSONResponse:
        return error_response(413, f"Request body is too large: at most {self.max_bytes} bytes")


REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")  # what a gateway or a client may set


class RequestId:
    """`X-Request-ID` into every log line of the request, and back in the answer.

    The gateway sets one when the client sent none (docs/gateway.md); a direct call without one
    gets one of ours. A value that is not a plain token is replaced, so no client can write
    what it likes into our logs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers", [])).get(b"x-request-id", b"")
        request_id = sent if REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id.decode()):
            await self.app(scope, receive, send_with_id)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """`messages` first, then the connection's own (a later disconnect, say)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


# A service's composition root: builds its parts from its settings, closes them on the way out.
# The parts are a dataclass; routes reach them through typed dependencies (service_kit.deps).
Bootstrap = Callable[[Any], AbstractAsyncContextManager[Any]]


def create_service_app(
    title: str,
    settings: ServiceSettings,
    bootstrap: Bootstrap,
    routers: list[APIRouter],
    streamed_bodies: frozenset[tuple[str, str]] = frozenset(),
) -> FastAPI:
    """Mount the routes, and a lifespan that runs the service's composition root.

    `streamed_bodies`: the (method, path) routes that read and bound their own bodies."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with bootstrap(settings) as parts:
            state.parts = parts
            log.info("service_started", port=settings.port)
            yield

    # /docs and /redoc with Swagger UI's and ReDoc's assets served by the service itself, not
    # fetched from a CDN: the docs work offline and no third party sees who reads them.
    app = FastAPIOffline(title=title, lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=settings.max_json_bytes, streamed=streamed_bodies)
    app.add_middleware(AllowedHosts, patterns=settings.allowed_host_patterns)
    app.add_middleware(RequestMetrics)
    app.add_middleware(RequestId)  # every line of the request carries it
    # Outermost: the request's span is current in all of the above.
    instrument_app(app, untraced={*PROBE_ROUTES, "/dashboard"})
    install_error_handlers(app)
    token = settings.admin_token
    state = ServiceState(admin_token=token if token and token.get_secret_value() else None)
    app.state.service = state
    app.include_router(_ops_router())
    for router in routers:
        app.include_router(router, responses=ERROR_RESPONSES)

    return app


def sync_check(
    fn: Callable[[], Any], timeout: float = 3.0, threads: Executor | None = None
) -> HealthCheck:
    """Wrap a blocking probe (a DB ping, an S3 head_bucket) as a health check with a deadline;
    it runs on `threads` (the dependency's own pool) or asyncio's default one."""

    async def check() -> dict[str, Any]:
        probe = run_in(threads, fn)
        await asyncio.wait_for(probe, timeout)
        return {"status": "UP"}

    return check


async def _run_check(name: str, check: HealthCheck) -> dict[str, Any]:
    try:
        return await check()
    except Exception as exc:  # a failing dependency is a health answer, not an error
        # What failed goes to the log; the body says only that it is down (docs/contract.md §3: no
        # exception class names reach a client).
        log.warning("health_check_failed", check=name, error=repr(exc)[:300])
        return {"status": "DOWN"}


async def _health_answer(checks: dict[str, HealthCheck]) -> JSONResponse:
    results = await asyncio.gather(*(_run_check(n, c) for n, c in checks.items()))
    components = dict(zip(checks, results, strict=True))
    statuses = {c["status"] for c in components.values()}
    status: Status = (
        "DOWN" if "DOWN" in statuses else "DEGRADED" if "DEGRADED" in statuses else "UP"
    )
    body = {"status": status, "checks": components}
    return JSONResponse(body, status_code=503 if status == "DOWN" else 200)


def _ops_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health")
    async def health(request: Request) -> JSONResponse:
        return await _health_answer(part(request, HasHealthChecks).health_checks)

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        """The process serves: no dependency is checked (a liveness probe restarts on DOWN)."""
        return {"status": "UP"}

    @router.get("/health/ready")
    async def ready(request: Request) -> JSONResponse:
        """It can do its job: the readiness checks (its own database) pass."""
        checks = part(request, HasHealthChecks).health_checks
        needed = {n: c for n, c in checks.items() if n in READINESS_CHECKS}
        return await _health_answer(needed)

    @router.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep our structured logging
        access_log=False,
        timeout_graceful_shutdown=5,
    )

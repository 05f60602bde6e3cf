"""The front door: nginx in front of the public API, its configuration made from one route table.

nginx, because it is the gateway most readers already know, Debian ships it, and everything
the edge needs is in its core: routing by method and path, body limits per route, timeouts,
a per-client rate limit, passive health checks with retries on the other replica, a request id
(`$request_id`) and a JSON access log. HAProxy would do as well; Caddy needs plugins for the
rate limit. docs/gateway.md says what goes through and what does not.

Only `ROUTES` go through: uploads, downloads and deletes of resources, and reading songs.
Everything else (writing songs, `/storages`, `/admin`, `/metrics`, `/health*`, the dashboard)
stays on the services' own ports: the gateway answers 404 for an unknown path and 403 for a
method a public path does not take, in the platform's error format.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from devstack import REPO, apt

NGINX = Path("/usr/sbin/nginx")
# docker-compose.yml's gateway reads this, made by `python -m devstack.gateway` from the same
# table (tests/devstack/unit/test_gateway_config.py fails when it is not current).
COMPOSE_CONFIG = REPO / "docker" / "gateway" / "nginx.conf"
COMPOSE_PREFIX = Path("/tmp")  # the container's only writable place


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    location: str  # nginx's location match
    upstream: str  # "resource" or "song"
    upload: bool = False  # the upload's body limit, streamed through unbuffered


ROUTES = (
    Route(("POST", "DELETE"), "= /resources", "resource", upload=True),
    Route(("GET",), "~ ^/resources/[^/]+$", "resource"),
    Route(("GET",), "~ ^/songs/[^/]+$", "song"),
)


@dataclass(frozen=True)
class GatewaySettings:
    listen: str  # nginx's `listen`: "127.0.0.1:8000" under make run, "8000" in a container
    resource_servers: list[str]  # host:port of every Resource Service replica
    song_server: str
    upload_bytes: int  # the Resource Service's MAX_UPLOAD_BYTES
    json_bytes: int  # every service's MAX_JSON_BYTES
    rate_per_second: int = 50  # per client address, with a burst of twice as many
    worker_user: str | None = None  # nginx's workers drop to it when we are root


def render(settings: GatewaySettings, prefix: Path) -> str:
    """nginx.conf for `nginx -p PREFIX -c nginx.conf`: in the foreground, logs to stdout/err."""
    user = f"user {settings.worker_user};" if settings.worker_user else ""
    upstreams = {"resource": settings.resource_servers, "song": [settings.song_server]}
    return "\n".join(
        [
            user,
            "daemon off;",
            "worker_processes 1;",
            f"pid {prefix / 'nginx.pid'};",
            "error_log stderr warn;",
            "events { worker_connections 1024; }",
            "http {",
            *_indented(_http(settings, upstreams, prefix)),
            "}",
            "",
        ]
    )


def _http(settings: GatewaySettings, upstreams: dict[str, list[str]], prefix: Path) -> list[str]:
    rate = settings.rate_per_second
    lines = [
        _access_log_format(),
        "access_log /dev/stdout json;",
        # The client's id when it sent a plain one, else nginx's own: passed on and answered.
        'map $http_x_request_id $req_id { default $request_id; "~^[A-Za-z0-9._:-]{1,128}$" '
        "$http_x_request_id; }",
        f"limit_req_zone $binary_remote_addr zone=per_client:10m rate={rate}r/s;",
        "limit_req_status 429;",
        # nginx makes these at start; it writes no file in them (JSON bodies stay in memory,
        # uploads and answers are streamed).
        *(f"{key}_temp_path {prefix / f'{key}_temp'};" for key in _TEMP_PATHS),
    ]
    for name, addresses in upstreams.items():
        # Passive health checks: a replica that fails is left alone for 10 s. No keepalive
        # connections: on a cached one to a replica just killed, an upload would already be
        # sent and could not be retried; a new connection is refused before anything is sent,
        # and the request goes to the other replica (it costs a loopback connect, ~0.1 ms).
        servers = [f"server {address} max_fails=1 fail_timeout=10s;" for address in addresses]
        lines += [f"upstream {name} {{", *_indented(servers), "}"]
    return [*lines, "server {", *_indented(_server(settings)), "}"]


_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def _access_log_format() -> str:
    fields = {
        "time": "$time_iso8601",
        "request_id": "$req_id",
        "client": "$remote_addr",
        "method": "$request_method",
        "path": "$uri",
        "status": "$status",
        "bytes_sent": "$body_bytes_sent",
        "seconds": "$request_time",
        "upstream": "$upstream_addr",
        "upstream_status": "$upstream_status",
    }
    return f"log_format json escape=json '{json.dumps(fields)}';"


def _server(settings: GatewaySettings) -> list[str]:
    lines = [
        f"listen {settings.listen};",
        f"client_max_body_size {settings.json_bytes};",
        f"client_body_buffer_size {settings.json_bytes};",  # JSON bodies stay in memory
        "client_body_timeout 30s;",
        "send_timeout 60s;",
        f"limit_req zone=per_client burst={2 * settings.rate_per_second} nodelay;",
        "add_header X-Request-ID $req_id always;",
        "proxy_http_version 1.1;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Request-ID $req_id;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_hide_header X-Request-ID;",  # ours is added once, above
        "proxy_connect_timeout 2s;",
        "proxy_read_timeout 300s;",  # an upload's own deadline is the service's
        "proxy_next_upstream error timeout http_502 http_503;",
        "proxy_next_upstream_tries 2;",
    ]
    for route in ROUTES:
        lines += [f"location {route.location} {{", *_indented(_location(settings, route)), "}"]
    # The gateway's own liveness, for compose's healthcheck; no service's health goes through.
    lines += ["location = /gateway/health {", *_indented(_up()), "}"]
    lines += ["location / {", *_indented(_error(404, "Not found at the gateway")), "}"]
    for status, message in _ERRORS.items():
        lines += [f"error_page {status} = @{status};", f"location @{status} {{"]
        lines += [*_indented(_error(status, message)), "}"]
    return lines


_ERRORS = {
    403: "Not served by the gateway",
    413: "Request body is too large",
    429: "Too many requests, try again later",
    502: "The service behind the gateway did not answer",
    504: "The service behind the gateway did not answer in time",
}


def _location(settings: GatewaySettings, route: Route) -> list[str]:
    lines = [
        f"limit_except {' '.join(route.methods)} {{ deny all; }}",
        f"proxy_pass http://{route.upstream};",
        "proxy_buffering off;",  # downloads stream, whatever their size
    ]
    if route.upload:
        lines += [f"client_max_body_size {settings.upload_bytes};", "proxy_request_buffering off;"]
    return lines


def _error(status: int, message: str) -> list[str]:
    body = json.dumps({"errorMessage": message, "errorCode": str(status)})
    lines = ["default_type application/json;", "add_header X-Request-ID $req_id always;"]
    if status == 429:
        lines.append("add_header Retry-After 1 always;")
    return [*lines, f"return {status} '{body}';"]


def _up() -> list[str]:
    up = json.dumps({"status": "UP"})
    return ["default_type application/json;", "access_log off;", f"return 200 '{up}';"]


def _indented(lines: list[str]) -> list[str]:
    return [f"    {line}" for line in lines]


def command(prefix: Path) -> list[str]:
    return [str(NGINX), "-p", str(prefix), "-c", str(prefix / "nginx.conf")]


def ensure_installed() -> None:
    """Debian's nginx, installed when missing (its own service kept stopped)."""
    if not NGINX.exists():
        apt.install_servers(["nginx"])


def on_loopback(
    port: int, resource_ports: Iterable[int], song_port: int, upload_bytes: int, json_bytes: int
) -> GatewaySettings:
    """The gateway on this host, as `make run` and the test stacks run it."""
    return GatewaySettings(
        f"127.0.0.1:{port}",
        [f"127.0.0.1:{resource_port}" for resource_port in resource_ports],
        f"127.0.0.1:{song_port}",
        upload_bytes=upload_bytes,
        json_bytes=json_bytes,
        worker_user=worker_user(),
    )


def worker_user() -> str | None:
    """Debian's nginx user for the workers when we are root; else we are the workers."""
    return "www-data" if os.geteuid() == 0 else None


def write(settings: GatewaySettings, prefix: Path) -> None:
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "nginx.conf").write_text(render(settings, prefix))


def compose_settings(upload_bytes: int, json_bytes: int) -> GatewaySettings:
    """The compose stack's gateway: two Resource Service replicas by their compose names."""
    return GatewaySettings(
        "8000",
        ["resource-service:8080", "resource-service-2:8080"],
        "song-service:8081",
        upload_bytes=upload_bytes,
        json_bytes=json_bytes,
    )


def compose_config() -> str:
    """COMPOSE_CONFIG's text, with the Resource Service's default limits (services.env sets
    none; one that did would need them here too)."""
    from resource_service.config import Settings

    fields = Settings.model_fields
    settings = compose_settings(
        fields["max_upload_bytes"].default, fields["max_json_bytes"].default
    )
    header = "# Made by `python -m devstack.gateway` from devstack/gateway.py: do not edit.\n"
    return header + render(settings, COMPOSE_PREFIX)


def main() -> int:
    COMPOSE_CONFIG.parent.mkdir(parents=True, exist_ok=True)
    COMPOSE_CONFIG.write_text(compose_config())
    print(f"wrote {COMPOSE_CONFIG}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

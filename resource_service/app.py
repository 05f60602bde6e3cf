from __future__ import annotations

from fastapi import FastAPI

from resource_service.bootstrap import bootstrap
from resource_service.config import Settings
from resource_service.dashboard import router as dashboard_router
from resource_service.routes import admin_router, router
from service_kit.resilience.admin import breaker_admin_router, decorator_events_router
from service_kit.web import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    routers = [
        router,
        admin_router,
        breaker_admin_router(),
        decorator_events_router(),
        dashboard_router,
    ]
    # The upload checks its type, then streams and bounds its bytes itself (routes, upload_body).
    uploads = frozenset({("POST", "/resources")})
    return create_service_app(
        "Resource Service", settings or Settings(), bootstrap, routers, streamed_bodies=uploads
    )

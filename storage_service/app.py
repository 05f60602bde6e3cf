from __future__ import annotations

from fastapi import FastAPI

from service_kit.web import create_service_app
from storage_service.bootstrap import bootstrap
from storage_service.config import Settings
from storage_service.routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app("Storage Service", settings or Settings(), bootstrap, [router])

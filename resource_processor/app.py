from __future__ import annotations

from fastapi import FastAPI

from resource_processor.bootstrap import bootstrap
from resource_processor.config import Settings
from service_kit.web import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app("Resource Processor", settings or Settings(), bootstrap, [])

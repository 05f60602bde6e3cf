from __future__ import annotations

from fastapi import FastAPI

from service_kit.web import create_service_app
from song_service.bootstrap import bootstrap
from song_service.config import Settings
from song_service.routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app("Song Service", settings or Settings(), bootstrap, [router])

from __future__ import annotations

from service_kit.config import DatabaseSettings, ServiceSettings


class Settings(ServiceSettings, DatabaseSettings):
    port: int = 8081
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/song_db"

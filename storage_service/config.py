from __future__ import annotations

from service_kit.config import DatabaseSettings, S3Settings, ServiceSettings


class Settings(ServiceSettings, DatabaseSettings, S3Settings):
    port: int = 8082
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/storage_db"

    # The locations seeded at start. localstack-init/ and the Resource Service's stub repeat them.
    seed_staging_bucket: str = "resources-staging"
    seed_staging_path: str = "/staging/"
    seed_permanent_bucket: str = "resources-permanent"
    seed_permanent_path: str = "/permanent/"

from __future__ import annotations

from pydantic import Field

from service_kit.config import DatabaseSettings, S3Settings, ServiceSettings


class Settings(ServiceSettings, DatabaseSettings, S3Settings):
    port: int = 8082
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/storage_db"

    # The locations seeded at start. localstack-init/ and the Resource Service's stub repeat them.
    seed_staging_bucket: str = "resources-staging"
    seed_staging_path: str = "/staging/"
    seed_permanent_bucket: str = "resources-permanent"
    seed_permanent_path: str = "/permanent/"

    # Buckets the platform did not create that locations may still use (comma-separated); the
    # seed buckets always may. Any other existing bucket is refused.
    allowed_buckets: str = ""
    # How many locations may exist: each new one may create a bucket.
    max_storages: int = Field(default=100, ge=2)

    @property
    def usable_buckets(self) -> frozenset[str]:
        listed = {b.strip() for b in self.allowed_buckets.split(",") if b.strip()}
        return frozenset(listed | {self.seed_staging_bucket, self.seed_permanent_bucket})

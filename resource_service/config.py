from __future__ import annotations

import os

from pydantic import Field, field_validator

from resource_service.schemas import STORAGE_LIST
from service_kit.config import BrokerSettings, DatabaseSettings, S3Settings, ServiceSettings
from service_kit.resilience import BreakerSettings
from service_kit.resilience.retry import RetrySettings
from service_kit.resilience.time_limiter import TimeLimiterSettings

S3_MIN_PART_BYTES = 5 * 1024 * 1024  # every part but the last must be at least this big

# The stub has exactly the shape of a real `GET /storages` answer and the seed rows' values.
DEFAULT_STORAGE_STUB = (
    '[{"id": 1, "storageType": "STAGING", "bucket": "resources-staging", "path": "/staging/"},'
    ' {"id": 2, "storageType": "PERMANENT", "bucket": "resources-permanent",'
    ' "path": "/permanent/"}]'
)


class Settings(ServiceSettings, DatabaseSettings, S3Settings, BrokerSettings):
    port: int = 8080
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/resource_db"
    storage_service_url: str = "http://127.0.0.1:8082"
    song_service_url: str = "http://127.0.0.1:8081"
    storage_timeout_seconds: float = 2.0
    # Fallbacks when the Storage Service cannot answer: the last good answer while younger
    # than this, then the stub.
    storage_last_good_max_age_seconds: float = 300.0
    storage_stub_json: str = DEFAULT_STORAGE_STUB
    storage_breaker: BreakerSettings = Field(
        default_factory=lambda: BreakerSettings.from_env("STORAGE_BREAKER_")
    )
    # Retry around the breaker (Resilience4j's order): STORAGE_RETRY_MAX_ATTEMPTS and so on.
    # One attempt by default, so a lookup waits for nothing more than today.
    storage_retry: RetrySettings = Field(
        default_factory=lambda: RetrySettings.from_env("STORAGE_RETRY_")
    )
    # The deadline of each Storage call, inside the breaker: STORAGE_TIMELIMITER_TIMEOUT_DURATION.
    storage_time_limiter: TimeLimiterSettings = Field(
        default_factory=lambda: _storage_time_limiter_settings()
    )
    song_timeout_seconds: float = 5.0

    @field_validator("storage_stub_json")
    @classmethod
    def stub_holds_both_types(cls, value: str) -> str:
        """The stub is the last fallback of every lookup: without a location of each type, the
        lookup it should serve would fail, so such a stub stops the start instead."""
        types = {location.storage_type for location in STORAGE_LIST.validate_json(value)}
        missing = sorted({"STAGING", "PERMANENT"} - types)
        if missing:
            raise ValueError(f"STORAGE_STUB_JSON has no {' and no '.join(missing)} location")
        return value

    max_upload_bytes: int = 250 * 1024 * 1024
    # A body up to this size is one PUT: on LocalStack a multipart upload of the same bytes
    # runs at 0.5-0.85 of a PUT's pace whatever the part size (`make bench`, "upload: the same
    # S3 calls vs direct" at 50 MB), and real S3 gains from parts only when sent side by side.
    # 16 MiB keeps one upload's memory under the 40 MB bound; all MAX_CONCURRENT_UPLOADS at
    # once hold up to 256 MiB.
    upload_single_put_bytes: int = Field(16 * 1024 * 1024, ge=S3_MIN_PART_BYTES)
    # Larger bodies are streamed in parts: the first is what was buffered, then parts of this
    # size, one sent while the next is received, so memory stays about 24 MiB per upload.
    upload_part_bytes: int = Field(8 * 1024 * 1024, ge=S3_MIN_PART_BYTES)
    # A client that sends nothing for this long has abandoned its upload.
    upload_idle_seconds: float = 30.0
    # A client that sends slower than this, averaged over the window once the grace has
    # passed, gets 408 and frees its slot (0: no minimum). 8 KiB/s is a poor mobile link;
    # a byte every 25 s is not an upload.
    upload_min_bytes_per_second: int = Field(8192, ge=0)
    upload_rate_grace_seconds: float = Field(10.0, ge=0)
    upload_rate_window_seconds: float = Field(10.0, gt=0)
    # Uploads at once; one more gets 503 with Retry-After at once (each holds up to 24 MiB).
    max_concurrent_uploads: int = 16
    # The S3 calls' own thread pool, apart from the database's and the health checks'.
    s3_threads: int = 32
    # The whole upload, however steadily it sends: 250 MiB at about 150 KB/s.
    upload_max_seconds: float = 1800.0
    # Time after the body for the last S3 write and the row's commit.
    upload_commit_seconds: float = 60.0

    outbox_poll_seconds: float = 1.0
    outbox_claim_seconds: float = 30.0
    # Published events are kept this long (a `resource.deleted` names the objects of a
    # resource that is gone, for a move that redelivers after the delete), then purged.
    outbox_retention_hours: float = Field(24.0, gt=0)
    prefetch_count: int = 4
    # Open /dashboard/stream connections at once; they share one snapshot a second.
    dashboard_max_viewers: int = Field(20, ge=1)

    @property
    def upload_intent_seconds(self) -> float:
        """How long an upload's intent stands before its object counts as abandoned: the
        longest an upload can take (the deadline is checked per chunk, so one idle wait more)."""
        return self.upload_max_seconds + self.upload_idle_seconds + self.upload_commit_seconds


def _storage_time_limiter_settings() -> TimeLimiterSettings:
    """STORAGE_TIMELIMITER_TIMEOUT_DURATION, or the name it had before the TimeLimiter was one
    (STORAGE_BREAKER_ATTEMPT_TIMEOUT), so older run files and scripts keep their deadline."""
    older = os.environ.get("STORAGE_BREAKER_ATTEMPT_TIMEOUT")
    if older is None or "STORAGE_TIMELIMITER_TIMEOUT_DURATION" in os.environ:
        return TimeLimiterSettings.from_env("STORAGE_TIMELIMITER_")
    timeout = None if older.strip().lower() == "none" else older
    return TimeLimiterSettings.from_env("STORAGE_TIMELIMITER_", timeout_duration=timeout)

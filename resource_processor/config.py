from __future__ import annotations

from pydantic import Field

from service_kit.config import BrokerSettings, ServiceSettings


class Settings(ServiceSettings, BrokerSettings):
    port: int = 8083  # serves /health and /metrics only

    prefetch_count: int = 4  # messages in flight at once

    resource_service_url: str = "http://127.0.0.1:8080"
    song_service_url: str = "http://127.0.0.1:8081"
    http_timeout_seconds: float = 10.0  # per connect/read/write, not for a whole download
    retry_attempts: int = 5  # per call to a peer, for transport errors, timeouts and 5xx
    retry_min_wait_seconds: float = 0.2
    retry_max_wait_seconds: float = 3.0

    # The tags are read in aligned ranges of this size: most files need the first and the last.
    # As large as the file, it is fetched whole (the benchmark's baseline: how it once worked).
    tags_block_bytes: int = Field(64 * 1024, gt=0)
    # An ID3v2 tag declaring more is never read (it would be held about three times over);
    # the song gets the ID3v1 tag or placeholders. 8 MiB holds a large cover image.
    tags_max_bytes: int = Field(8 * 1024 * 1024, gt=0)
    shutdown_grace_seconds: float = 5.0  # how long shutdown waits for messages in flight

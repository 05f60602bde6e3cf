"""Settings the services share; each service's own `config.py` combines the ones it needs.

pydantic-settings reads the environment here and in the services' `config.py` files only.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    host: str = "127.0.0.1"
    port: int
    log_level: str = "INFO"
    log_format: str = "json"  # "json" for machines, "console" for people at a terminal
    # Bearer token for the management endpoints (`/admin/...`); unset or empty: they are refused.
    admin_token: SecretStr | None = None
    # Request bodies other than uploads (JSON): larger ones get 413 before they are parsed.
    max_json_bytes: int = 1024 * 1024
    # Host headers answered (comma-separated; `*.example.com` patterns, `*` for any): others
    # get 400, so a page that rebinds its own DNS name to 127.0.0.1 cannot drive the API.
    allowed_hosts: str = "localhost,127.0.0.1,[::1]"

    @property
    def allowed_host_patterns(self) -> list[str]:
        return [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str
    # Past it, a database call is an outage (503): the client-side deadline of every call,
    # connect, pool checkout, TCP (keepalive, tcp_user_timeout) and the server's statement
    # timeout. DB_TIMEOUT_SECONDS or DATABASE_TIMEOUT_SECONDS.
    database_timeout_seconds: float = Field(
        5.0,
        gt=0,
        validation_alias=AliasChoices("db_timeout_seconds", "database_timeout_seconds"),
    )
    # Database work runs on this many threads of its own, each with its own connection: a stuck
    # database holds these, and starves nothing else.
    database_threads: int = Field(8, ge=1)


class S3Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    s3_endpoint_url: str = "http://127.0.0.1:4566"
    aws_access_key_id: str = "test"
    aws_secret_access_key: str = "test"
    aws_region: str = "us-east-1"
    s3_timeout_seconds: float = 5.0
    # The account that must own every bucket we touch: S3 refuses a call on another's bucket
    # (ExpectedBucketOwner). LocalStack's account by default; empty turns the check off.
    s3_expected_bucket_owner: str = "000000000000"


class BrokerSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # A message that keeps failing on something transient is retried (1 s, 2 s, 5 s ... then
    # every 30 s) until this long after its first failure; then it is parked in its `.dlq`.
    retry_horizon_seconds: float = 3600.0

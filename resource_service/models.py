from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service_kit.tracing import current_context

STAGING = "STAGING"
PERMANENT = "PERMANENT"


class Base(DeclarativeBase):
    pass


class Resource(Base):
    """Where a resource's bytes are now (`bucket`, `key`), so GET and DELETE never need the
    Storage Service. The STAGING location is kept after the move so that a redelivered
    `resource.processed` can still delete a STAGING object a crash left behind."""

    __tablename__ = "resources"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(String(1024))
    staging_bucket: Mapped[str] = mapped_column(String(63))
    staging_key: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class UploadIntent(Base):
    """An upload whose bytes may be in S3 before its row exists, under a reserved resource id.

    The row's commit deletes the intent. A process killed between the PUT and that commit
    leaves the intent behind; once it expires the relay turns it into a `resource.deleted`
    event, so the object is removed like any deleted resource's (`repository`).
    """

    __tablename__ = "upload_intents"

    resource_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(String(1024))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class OutboxEvent(Base):
    """An event written in the same transaction as its resource; the relay publishes it.

    One that fails to publish backs off on its own (`attempts`, `next_attempt_at`) while later
    events go out; past the retry horizon it is parked (`parked_at`, `last_error`). Published
    rows are purged after the retention time (migration 0004).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "id",
            postgresql_where=text("published_at IS NULL AND parked_at IS NULL"),
        ),
        Index(
            "ix_outbox_published_at",
            "published_at",
            postgresql_where=text("published_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    queue: Mapped[str] = mapped_column(String(64))
    # No foreign key: a `resource.deleted` event outlives its resource (migration 0002).
    resource_id: Mapped[int] = mapped_column(BigInteger)
    # What the event carries beyond the id: the objects of a deleted resource.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    parked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    # The W3C `traceparent` of the request that wrote the event, taken when the row is inserted
    # (the database thread runs in the request's context): the relay publishes within it, so an
    # event that waits for the broker stays in the upload's trace (migration 0005).
    trace_context: Mapped[str | None] = mapped_column(String(64), default=current_context)

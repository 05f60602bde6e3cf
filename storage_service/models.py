from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, String, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Storage(Base):
    __tablename__ = "storages"
    __table_args__ = (
        UniqueConstraint("bucket", "path", name="uq_storages_bucket_path"),
        CheckConstraint("storage_type IN ('STAGING', 'PERMANENT')", name="ck_storages_type"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    storage_type: Mapped[str] = mapped_column(String(16))
    bucket: Mapped[str] = mapped_column(String(63))
    path: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

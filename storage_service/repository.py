from __future__ import annotations

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from service_kit.db import delete_by_ids
from storage_service.errors import DuplicateLocation
from storage_service.models import Storage

# Any constant of our own: serialises the count-then-insert of concurrent POSTs.
_CREATE_LOCK = 0x5707A6E


def lock_and_count(session: Session) -> int:
    """The number of locations, under a lock held until the transaction ends."""
    session.execute(select(func.pg_advisory_xact_lock(_CREATE_LOCK)))
    return session.scalar(select(func.count()).select_from(Storage)) or 0


def create_storage(session: Session, storage_type: str, bucket: str, path: str) -> int:
    statement = (
        pg_insert(Storage)
        .values(storage_type=storage_type, bucket=bucket, path=path)
        .on_conflict_do_nothing(constraint="uq_storages_bucket_path")
        .returning(Storage.id)
    )
    new_id = session.execute(statement).scalar_one_or_none()
    if new_id is None:
        raise DuplicateLocation
    session.commit()
    return new_id


def list_storages(session: Session) -> list[Storage]:
    return list(session.scalars(select(Storage).order_by(Storage.id)))


def delete_storages(session: Session, ids: list[int]) -> list[int]:
    return [storage.id for storage in delete_by_ids(session, Storage, ids)]


def seed_storages(conn: Connection, seeds: list[tuple[str, str, str]]) -> None:
    """Make sure one location of each type exists. Runs under the prestart advisory lock."""
    for storage_type, bucket, path in seeds:
        has_type = conn.execute(
            select(Storage.id).where(Storage.storage_type == storage_type).limit(1)
        ).first()
        if has_type is None:
            conn.execute(
                insert(Storage).values(storage_type=storage_type, bucket=bucket, path=path)
            )

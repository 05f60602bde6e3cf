from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from service_kit.db import delete_by_ids
from song_service.errors import SongExists
from song_service.models import Song
from song_service.schemas import SongCreate, SongPublic


def create_song(session: Session, song: SongCreate) -> int:
    statement = insert(Song).values(**song.model_dump()).on_conflict_do_nothing().returning(Song.id)
    if session.execute(statement).scalar_one_or_none() is None:
        raise SongExists
    session.commit()
    return song.id


def get_song(session: Session, song_id: int) -> SongPublic | None:
    """The song as the API shows it, read while its session is open."""
    song = session.get(Song, song_id)
    return None if song is None else SongPublic.model_validate(song)


def delete_songs(session: Session, ids: list[int]) -> list[int]:
    return [song.id for song in delete_by_ids(session, Song, ids)]

from __future__ import annotations

from fastapi import APIRouter

from service_kit.deps import CsvIds, PathId, SessionDep
from service_kit.errors import ApiError, NotFound
from service_kit.schemas import CreatedId, DeletedIds
from song_service import repository
from song_service.errors import SongExists
from song_service.schemas import SongCreate, SongPublic

router = APIRouter(prefix="/songs", tags=["songs"])


@router.post("", response_model=CreatedId)
def create_song(body: SongCreate, session: SessionDep) -> CreatedId:
    try:
        return CreatedId(id=repository.create_song(session, body))
    except SongExists:
        raise ApiError(409, f"Metadata for resource ID={body.id} already exists") from None


@router.get("/{id}", response_model=SongPublic)
def get_song(id: PathId, session: SessionDep) -> SongPublic:
    song = repository.get_song(session, id)
    if song is None:
        raise NotFound(f"Song metadata for ID={id} not found")
    return SongPublic.model_validate(song)


@router.delete("", response_model=DeletedIds)
def delete_songs(ids: CsvIds, session: SessionDep) -> DeletedIds:
    return DeletedIds(ids=repository.delete_songs(session, ids))

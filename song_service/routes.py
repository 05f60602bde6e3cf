"""The Song Service's routes: each runs its database work through `Database`, so a frozen
database answers 503 within DB_TIMEOUT_SECONDS instead of holding the request."""

from __future__ import annotations

from fastapi import APIRouter

from service_kit.deps import CsvIds, DatabaseDep, PathId
from service_kit.errors import ApiError, NotFound
from service_kit.schemas import CreatedId, DeletedIds
from song_service import repository
from song_service.errors import SongExists
from song_service.schemas import SongCreate, SongPublic

router = APIRouter(prefix="/songs", tags=["songs"])


@router.post("", response_model=CreatedId)
async def create_song(body: SongCreate, database: DatabaseDep) -> CreatedId:
    try:
        return CreatedId(id=await database.run(repository.create_song, body))
    except SongExists:
        raise ApiError(409, f"Metadata for resource ID={body.id} already exists") from None


@router.get("/{id}", response_model=SongPublic)
async def get_song(id: PathId, database: DatabaseDep) -> SongPublic:
    song = await database.run(repository.get_song, id)
    if song is None:
        raise NotFound(f"Song metadata for ID={id} not found")
    return song


@router.delete("", response_model=DeletedIds)
async def delete_songs(ids: CsvIds, database: DatabaseDep) -> DeletedIds:
    return DeletedIds(ids=await database.run(repository.delete_songs, ids))

"""Two replicas of the Song Service starting at once against an empty database."""

from pathlib import Path

import httpx2

from tests.fixture_types import DatabaseUrls
from tests.replicas import started_at_once

SONG = {"name": "Twice", "artist": "A", "album": "B", "duration": "01:00", "year": "2001"}


def test_two_replicas_starting_at_once_share_one_migrated_database(
    new_database_url: DatabaseUrls, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": new_database_url("song_replicas")}
    with started_at_once("song_service", env, tmp_path) as replicas:
        first, second = (replica.url for replica in replicas)
        assert httpx2.post(f"{first}/songs", json={"id": 7, **SONG}).status_code == 200
        assert httpx2.get(f"{second}/songs/7").json() == {"id": 7, **SONG}
        duplicate = httpx2.post(f"{second}/songs", json={"id": 7, **SONG})
        assert duplicate.status_code == 409

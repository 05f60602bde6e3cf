"""Two replicas of the Song Service starting at once against an empty database."""

import httpx

from devstack.processes import ServiceProcess
from devstack.stack import free_port

SONG = {"name": "Twice", "artist": "A", "album": "B", "duration": "01:00", "year": "2001"}


def test_two_replicas_starting_at_once_share_one_migrated_database(new_database_url, tmp_path):
    env = {"DATABASE_URL": new_database_url("song_replicas")}
    replicas = [
        ServiceProcess("song_service", free_port(), env, tmp_path / f"replica{i}.log")
        for i in range(2)
    ]
    try:
        for replica in replicas:
            replica.start()  # both start before either is waited for
        for replica in replicas:
            replica.wait_healthy(timeout=60)
        first, second = (replica.url for replica in replicas)
        assert httpx.post(f"{first}/songs", json={"id": 7, **SONG}).status_code == 200
        assert httpx.get(f"{second}/songs/7").json() == {"id": 7, **SONG}
        duplicate = httpx.post(f"{second}/songs", json={"id": 7, **SONG})
        assert duplicate.status_code == 409
    finally:
        for replica in replicas:
            replica.stop()

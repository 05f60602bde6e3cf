"""Stand-in peers for the worker: the Resource and Song Services, served over HTTP."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from devstack.testing.stack import free_port


@dataclass
class PeerStubs:
    """Stand-ins for the Resource and Song Services, each served by uvicorn on its own port."""

    resources: dict[int, bytes] = field(default_factory=dict)  # what GET /resources/{id} serves
    songs: dict[int, dict[str, Any]] = field(default_factory=dict)  # what POST /songs saved
    resource_service_url: str = ""
    song_service_url: str = ""


def _not_found(message: str) -> JSONResponse:
    return JSONResponse({"errorMessage": message, "errorCode": "404"}, status_code=404)


def resource_service_stub(stubs: PeerStubs) -> FastAPI:
    app = FastAPI()

    @app.get("/resources/{resource_id}")
    def get_resource(resource_id: int) -> Response:
        data = stubs.resources.get(resource_id)
        if data is None:
            return _not_found(f"Resource with ID={resource_id} not found")
        return Response(data, media_type="audio/mpeg")

    return app


def song_service_stub(stubs: PeerStubs) -> FastAPI:
    app = FastAPI()

    @app.post("/songs")
    def create_song(song: dict[str, Any]) -> JSONResponse:
        if song["id"] in stubs.songs:
            message = f"Metadata for resource ID={song['id']} already exists"
            return JSONResponse({"errorMessage": message, "errorCode": "409"}, status_code=409)
        stubs.songs[song["id"]] = song
        return JSONResponse({"id": song["id"]})

    @app.get("/songs/{song_id}")
    def get_song(song_id: int) -> JSONResponse:
        song = stubs.songs.get(song_id)
        if song is None:
            return _not_found(f"Song metadata for ID={song_id} not found")
        return JSONResponse(song)

    return app


@contextlib.contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Serve `app` with uvicorn on a free port in a background thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"stub server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def peer_stubs() -> Iterator[PeerStubs]:
    stubs = PeerStubs()
    with (
        serve_in_thread(resource_service_stub(stubs)) as resource_url,
        serve_in_thread(song_service_stub(stubs)) as song_url,
    ):
        stubs.resource_service_url, stubs.song_service_url = resource_url, song_url
        yield stubs

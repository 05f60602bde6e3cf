"""The MP3 fixtures on which the processor's two ways of reading tags must agree: from the
whole file, as it did before, and through a `RemoteFile` that fetches only the ranges it reads.

Each one puts what mutagen reads somewhere else: a tag in the first block, a tag larger than a
block (cover art), an ID3v1 tag in the last 128 bytes, no Info frame (the length comes from the
file's size), a cut-off file, and sizes from a few KB to 3 MB (the unit tests add 100 MB).
"""

from __future__ import annotations

import functools
import io

from mutagen.id3 import APIC, ID3, TALB, TIT2, TPE1

from devstack.testing.mp3 import iter_mp3_chunks, make_mp3, truncated_mp3


def with_cover_art(cover_bytes: int, id3v1: bytes = b"") -> bytes:
    """An MP3 whose ID3v2 tag holds names and a cover of `cover_bytes`; `id3v1` at its end."""
    tags = ID3()
    for frame in (TIT2, TPE1, TALB):
        tags.add(frame(encoding=3, text=["Covered"]))
    tags.add(APIC(encoding=3, mime="image/png", type=3, desc="cover", data=bytes(cover_bytes)))
    out = io.BytesIO()
    tags.save(out, padding=lambda _info: 0)
    return out.getvalue() + make_mp3(3.0) + id3v1


def id3v1(title: str, artist: str, album: str, year: str) -> bytes:
    def field(text: str, size: int) -> bytes:
        return text.encode("latin-1")[:size].ljust(size, b"\0")

    body = field(title, 30) + field(artist, 30) + field(album, 30) + field(year, 4)
    return b"TAG" + body + bytes(30) + b"\xff"  # comment, genre "none"


@functools.cache
def mp3_fixtures() -> dict[str, bytes]:
    return {
        "all tags, ID3v2.4": make_mp3(61, title="Song", artist="Band", album="Record", year=2021),
        "ID3v2.3 with TYER": make_mp3(5, title="Old", artist="Band", year=1999, id3_version=3),
        "no tags": make_mp3(2.0),
        "some tags": make_mp3(2.0, artist="Only Artist"),
        "long texts": make_mp3(2.0, title="x" * 150, artist="é" * 101),
        "no Info frame": make_mp3(20, title="Plain", info_header=False),
        "cut off": truncated_mp3(),
        "cover art over two blocks": with_cover_art(150_000),
        "ID3v1 only": make_mp3(8.0, info_header=False) + id3v1("V1", "Tail", "End", "1988"),
        "3 MB": b"".join(iter_mp3_chunks(3_000_000, title="Three", artist="Mega", year=2010)),
    }

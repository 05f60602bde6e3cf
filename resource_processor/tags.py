"""Turn MP3 bytes into the song metadata the Song Service accepts.

The Song Service requires every field: name, artist and album of 1-100 characters, duration
"mm:ss" and a four-digit year in 1900-2099. Real files often lack tags or carry junk, and a
song record is still worth creating for them, so missing or invalid tags get placeholders
rather than failing the message. Only a file with no parseable MPEG audio is rejected.

Placeholders:
- name "Unknown title", artist "Unknown artist", album "Unknown album": the same pattern for
  all three, visibly a placeholder to a person, and the record keeps the resource id anyway.
- year "1900": the year is mandatory, and a value derived from the clock (such as the current
  year) would look like real data and make reprocessing the same file give a different record.
  1900 is the lowest valid year, predates recorded MP3s, and so reads as "unknown".
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
from typing import Any, BinaryIO, cast

import structlog
from mutagen import MutagenError
from mutagen.id3 import ID3, ParseID3v1
from mutagen.mp3 import MP3, MPEGInfo

from resource_processor.errors import UnreadableAudio

log = structlog.get_logger(__name__)

MAX_TEXT_LENGTH = 100
UNKNOWN_NAME = "Unknown title"
UNKNOWN_ARTIST = "Unknown artist"
UNKNOWN_ALBUM = "Unknown album"
UNKNOWN_YEAR = "1900"
MIN_YEAR, MAX_YEAR = 1900, 2099

_LEADING_YEAR = re.compile(r"(\d{4})")
# ValueError, IndexError, EOFError and struct.error are what a parser may leak on hostile bytes
# instead of a MutagenError; either way the content is at fault, not the worker.
_PARSE_ERRORS = (MutagenError, ValueError, IndexError, EOFError, struct.error)


def extract_song_metadata(
    data: bytes | bytearray | memoryview | str | os.PathLike[str] | io.IOBase,
    resource_id: int,
    max_tag_bytes: int | None = None,
) -> dict[str, Any]:
    """Song metadata for resource `resource_id` from MP3 bytes, an MP3 file path, or a
    seekable binary file object (such as a `RemoteFile`).

    An ID3v2 tag that declares more than `max_tag_bytes` is never read (mutagen reads a tag
    whole): the song gets the file's ID3v1 tag, if any, else placeholders, and
    `tags_too_large` is logged. Returns exactly the keys id, name, artist, album, duration
    ("mm:ss") and year ("YYYY"). Raises UnreadableAudio when no MPEG audio can be parsed;
    OSError if a path can't be read.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        tags, length = _parse(io.BytesIO(data), max_tag_bytes)
    elif isinstance(data, io.IOBase):
        tags, length = _parse(cast(BinaryIO, data), max_tag_bytes)
    else:
        with open(data, "rb") as file:
            tags, length = _parse(file, max_tag_bytes)
    return {
        "id": resource_id,
        "name": _text(tags, "TIT2") or UNKNOWN_NAME,
        "artist": _text(tags, "TPE1") or UNKNOWN_ARTIST,
        "album": _text(tags, "TALB") or UNKNOWN_ALBUM,
        "duration": format_duration(length),
        "year": _year(tags) or UNKNOWN_YEAR,
    }


def format_duration(seconds: float) -> str:
    """Seconds as "mm:ss", rounded half up to the nearest second; minutes may exceed 99."""
    if not math.isfinite(seconds) or seconds < 0:
        seconds = 0.0  # mutagen should never report this, but the Song Service would reject it
    minutes, secs = divmod(math.floor(seconds + 0.5), 60)
    return f"{minutes:02d}:{secs:02d}"


def _parse(file: BinaryIO, max_tag_bytes: int | None) -> tuple[ID3 | None, float]:
    """The ID3 tag (None if absent or damaged) and the audio length in seconds."""
    declared = _declared_tag_bytes(file)
    if max_tag_bytes is not None and declared > max_tag_bytes:
        log.warning("tags_too_large", tag_bytes=declared, max_bytes=max_tag_bytes)
        return _id3v1(file), _audio_length(file)
    try:
        audio = MP3(file)  # raises when it finds no MPEG frame, so `info` is there after it
        info = cast(MPEGInfo, audio.info)
        return (audio.tags if isinstance(audio.tags, ID3) else None), info.length
    except _PARSE_ERRORS:
        pass
    # A damaged ID3 tag fails MP3() even when the audio after it is fine: measure the audio
    # alone and fall back to placeholder tags.
    return None, _audio_length(file)


def _audio_length(file: BinaryIO) -> float:
    """The audio's length; MPEGInfo skips an ID3v2 tag by its declared size, unread."""
    try:
        file.seek(0)
        return float(MPEGInfo(file).length)
    except _PARSE_ERRORS as error:
        raise UnreadableAudio(f"no MPEG audio found: {error}") from error


def _declared_tag_bytes(file: BinaryIO) -> int:
    """The size an ID3v2 header declares for its tag, header and footer included; 0 if none.
    The size is four 7-bit bytes (ID3v2.4 "main structure", section 3.1); flag 0x10: a footer."""
    file.seek(0)
    header = file.read(10)
    file.seek(0)  # mutagen reads from where the file stands
    if len(header) < 10 or header[:3] != b"ID3":
        return 0
    size = 0
    for byte in header[6:10]:
        size = (size << 7) | (byte & 0x7F)
    return 10 + size + (10 if header[5] & 0x10 else 0)


def _id3v1(file: BinaryIO) -> ID3 | None:
    """The ID3v1 tag in the last 128 bytes, as ID3v2 frames; None if there is none."""
    try:
        file.seek(-128, os.SEEK_END)
    except OSError:  # shorter than an ID3v1 tag
        return None
    frames = ParseID3v1(file.read(128))
    if not frames:
        return None
    tags = ID3()
    for frame in frames.values():
        tags.add(frame)
    return tags


def _text(tags: ID3 | None, frame_id: str) -> str | None:
    """First non-blank value of a text frame, trimmed to MAX_TEXT_LENGTH; None if there is none."""
    if tags is None:
        return None
    for frame in tags.getall(frame_id):
        for value in frame.text:
            text = str(value).strip()
            if text:
                return text[:MAX_TEXT_LENGTH].rstrip()
    return None


def _year(tags: ID3 | None) -> str | None:
    # mutagen upgrades ID3v2.3 TYER to TDRC on load; TYER is read too in case it survives.
    for frame_id in ("TDRC", "TYER"):
        text = _text(tags, frame_id)
        match = _LEADING_YEAR.match(text) if text else None
        if match and MIN_YEAR <= int(match.group(1)) <= MAX_YEAR:
            return match.group(1)
    return None

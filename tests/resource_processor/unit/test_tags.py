"""extract_song_metadata turns any parseable MP3 into a record the Song Service accepts."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.testing.mp3 import (
    id3_tag,
    make_mp3,
    make_mp3_file,
    not_mp3,
    truncated_id3_mp3,
    truncated_mp3,
)
from resource_processor.errors import UnreadableAudio
from resource_processor.tags import extract_song_metadata, format_duration

DEFAULTS = {
    "name": "Unknown title",
    "artist": "Unknown artist",
    "album": "Unknown album",
    "year": "1900",
}


def test_all_tags_present() -> None:
    data = make_mp3(61, title="Song", artist="Band", album="Record", year=2021)
    assert extract_song_metadata(data, 7) == {
        "id": 7,
        "name": "Song",
        "artist": "Band",
        "album": "Record",
        "duration": "01:01",
        "year": "2021",
    }


def test_no_tags_gives_placeholders() -> None:
    assert extract_song_metadata(make_mp3(2.0), 3) == {"id": 3, "duration": "00:02", **DEFAULTS}


def test_some_tags_missing() -> None:
    result = extract_song_metadata(make_mp3(2.0, artist="Only Artist"), 4)
    assert result == {**DEFAULTS, "id": 4, "artist": "Only Artist", "duration": "00:02"}


def test_blank_tags_count_as_missing() -> None:
    data = make_mp3(2.0, title="   ", artist="\t", album="", year=" ")
    assert extract_song_metadata(data, 5) == {"id": 5, "duration": "00:02", **DEFAULTS}


def test_tags_are_stripped_and_trimmed_to_100_characters() -> None:
    data = make_mp3(2.0, title="  Padded  ", artist="a" * 150, album="é" * 101)
    result = extract_song_metadata(data, 1)
    assert result["name"] == "Padded"
    assert result["artist"] == "a" * 100
    assert result["album"] == "é" * 100


def test_trim_does_not_leave_trailing_space() -> None:
    result = extract_song_metadata(make_mp3(2.0, title="x" * 99 + " tail"), 1)
    assert result["name"] == "x" * 99


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        ("2021-05-03", "2021"),
        ("2021-05-03T10:00:00", "2021"),
        ("1900", "1900"),
        ("2099", "2099"),
        (1987, "1987"),
        ("1899", "1900"),
        ("2100", "1900"),
        ("0000", "1900"),
    ],
)
def test_year(year: str | int, expected: str) -> None:
    assert extract_song_metadata(make_mp3(1.0, year=year), 1)["year"] == expected


def test_year_from_id3v23_tyer() -> None:
    data = make_mp3(1.0, title="Old", year="1999-02-03", id3_version=3)
    result = extract_song_metadata(data, 1)
    assert (result["name"], result["year"]) == ("Old", "1999")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "00:00"), (59.6, "01:00"), (61, "01:01"), (3600, "60:00")],
)
def test_duration_of_generated_files(seconds: float, expected: str) -> None:
    assert extract_song_metadata(make_mp3(seconds), 1)["duration"] == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0, "00:00"),
        (0.49, "00:00"),
        (0.5, "00:01"),  # half up, not banker's rounding
        (59.4, "00:59"),
        (59.5, "01:00"),
        (61.0, "01:01"),
        (3599.6, "60:00"),
        (7500.0, "125:00"),
        (float("nan"), "00:00"),
        (-3.0, "00:00"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_file_cut_mid_frame_still_gives_metadata() -> None:
    # The Info frame still states the full 2 s, so that is the reported length.
    assert extract_song_metadata(truncated_mp3(), 9) == {
        "id": 9,
        "name": "Truncated",
        "artist": "Cutter",
        "album": "Halves",
        "duration": "00:02",
        "year": "2020",
    }


def test_file_cut_inside_id3_tag_is_unreadable() -> None:
    with pytest.raises(UnreadableAudio):
        extract_song_metadata(truncated_id3_mp3(), 1)


def test_damaged_tag_with_good_audio_gives_placeholders() -> None:
    tag = bytearray(id3_tag(title="Lost"))
    tag[5] = 0x40  # claims an extended header...
    tag[10:14] = b"\x7f\x7f\x7f\x7f"  # ...of an impossible size
    data = bytes(tag) + make_mp3(2.0)
    assert extract_song_metadata(data, 2) == {"id": 2, "duration": "00:02", **DEFAULTS}


@pytest.mark.parametrize(
    "data",
    [b"", not_mp3(), b"plain text, not audio\n" * 50, bytes(4096)],
    ids=["empty", "png", "text", "zeros"],
)
def test_not_mp3_is_unreadable(data: bytes) -> None:
    with pytest.raises(UnreadableAudio):
        extract_song_metadata(data, 1)


def test_accepts_a_path_and_bytearray(tmp_path: Path) -> None:
    path = make_mp3_file(tmp_path / "song.mp3", 5.0, title="From disk")
    expected = {**DEFAULTS, "id": 1, "name": "From disk", "duration": "00:05"}
    assert extract_song_metadata(path, 1) == expected
    assert extract_song_metadata(str(path), 1) == expected
    assert extract_song_metadata(bytearray(path.read_bytes()), 1) == expected


def test_missing_path_is_an_os_error_not_unreadable_audio(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        extract_song_metadata(tmp_path / "absent.mp3", 1)


@settings(database=None, max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_give_valid_metadata_or_unreadable(data: bytes) -> None:
    try:
        result = extract_song_metadata(data, 1)
    except UnreadableAudio:
        return
    assert set(result) == {"id", "name", "artist", "album", "duration", "year"}
    assert all(1 <= len(result[key]) <= 100 for key in ("name", "artist", "album"))

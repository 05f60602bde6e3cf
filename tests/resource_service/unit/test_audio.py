"""looks_like_mp3 decides from the first bytes of an upload only."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.testing.mp3 import (
    iter_mp3_chunks,
    make_mp3,
    not_mp3,
    truncated_id3_mp3,
    truncated_mp3,
)
from resource_service.audio import MP3_SNIFF_BYTES, looks_like_mp3

# A valid MPEG-1 Layer III header: 128 kbit/s, 44.1 kHz, mono.
GOOD_FRAME = bytes([0xFF, 0xFB, 0x90, 0xC4]) + bytes(6)


def with_byte(data: bytes, index: int, value: int) -> bytes:
    return data[:index] + bytes([value]) + data[index + 1 :]


def test_sniff_window_is_an_id3_header() -> None:
    assert MP3_SNIFF_BYTES == 10


@pytest.mark.parametrize(
    "data",
    [
        make_mp3(1.0, title="Tagged", year=2021),
        make_mp3(1.0, artist="v2.3", id3_version=3),
        make_mp3(1.0),  # starts with the Info frame
        make_mp3(1.0, info_header=False),  # starts with a plain audio frame
        b"".join(iter_mp3_chunks(50_000)),
        truncated_mp3(),
        truncated_id3_mp3(),  # only the head is judged; the processor rejects it later
    ],
    ids=["id3v24", "id3v23", "info-frame", "plain-frame", "stream", "cut-frame", "cut-tag"],
)
def test_accepts_generated_mp3s(data: bytes) -> None:
    assert looks_like_mp3(data[:MP3_SNIFF_BYTES]) is True
    assert looks_like_mp3(data) is True


@pytest.mark.parametrize(
    "head",
    [
        GOOD_FRAME,
        bytes([0xFF, 0xFA, 0x90, 0xC4]) + bytes(6),  # with CRC
        bytes([0xFF, 0xF3, 0x80, 0xC4]) + bytes(6),  # MPEG-2 (LSF), 64 kbit/s, 22.05 kHz
        bytes([0xFF, 0xE3, 0x80, 0xC4]) + bytes(6),  # MPEG-2.5
        b"ID3\x02\x00\x00\x00\x00\x01\x00",  # v2.2
        b"ID3\x04\x00\x40\x00\x00\x7f\x7f",  # v2.4 with extended header flag
    ],
    ids=["mpeg1", "mpeg1-crc", "mpeg2", "mpeg2.5", "id3v22", "id3v24-ext"],
)
def test_accepts_valid_headers(head: bytes) -> None:
    assert looks_like_mp3(head) is True


@pytest.mark.parametrize(
    "head",
    [
        b"",
        GOOD_FRAME[:4],
        b"ID3\x04\x00\x00\x00\x00\x00",  # 9 bytes: one short of the header
        not_mp3(),
        b"just some text, not audio at all",
        b"RIFF\x24\x08\x00\x00WAVEfmt ",
        b"fLaC\x00\x00\x00\x22\x10\x00",
        b"OggS\x00\x02\x00\x00\x00\x00",
        bytes([0xFF, 0xF1, 0x50, 0x80]) + bytes(6),  # AAC ADTS: layer bits 00
        with_byte(GOOD_FRAME, 2, 0xF0),  # bitrate index 1111
        with_byte(GOOD_FRAME, 2, 0x00),  # bitrate index 0000 (free format)
        with_byte(GOOD_FRAME, 2, 0x9C),  # sample-rate index 11
        with_byte(GOOD_FRAME, 1, 0xEB),  # MPEG version 01 (reserved)
        with_byte(GOOD_FRAME, 1, 0xFD),  # layer II
        with_byte(GOOD_FRAME, 1, 0xFF),  # layer I
        with_byte(GOOD_FRAME, 3, 0xC6),  # emphasis 10 (reserved)
        with_byte(GOOD_FRAME, 1, 0x7B),  # sync broken
        b"ID3\x05\x00\x00\x00\x00\x00\x10",  # unknown major version
        b"ID3\x04\xff\x00\x00\x00\x00\x10",  # revision 0xFF
        b"ID3\x04\x00\x01\x00\x00\x00\x10",  # undefined flag bit for v2.4
        b"ID3\x03\x00\x10\x00\x00\x00\x10",  # v2.4-only footer flag on v2.3
        b"ID3\x04\x00\x00\x00\x00\x80\x10",  # size byte not syncsafe
    ],
    ids=[
        "empty",
        "4-byte-frame-header",
        "9-byte-id3",
        "png",
        "text",
        "wav",
        "flac",
        "ogg",
        "aac",
        "bitrate-1111",
        "bitrate-0000",
        "sample-rate-11",
        "version-reserved",
        "layer-2",
        "layer-1",
        "emphasis-reserved",
        "no-sync",
        "id3-v2.5",
        "id3-revision-ff",
        "id3-bad-flag",
        "id3v23-footer-flag",
        "id3-size-not-syncsafe",
    ],
)
def test_rejects(head: bytes) -> None:
    assert looks_like_mp3(head) is False


@settings(database=None, max_examples=300)
@given(st.binary(max_size=64))
def test_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    assert looks_like_mp3(data) in (True, False)

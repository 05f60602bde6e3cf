"""Decide from the first bytes of an upload whether it is an MP3.

The upload is streamed to S3, so only the first chunk is available when deciding. An MP3 file
starts either with an ID3v2 tag header or directly with an MPEG audio frame header; both fit
in MP3_SNIFF_BYTES. This is a cheap gate against wrong uploads (images, text, other audio),
not a full validation: the Resource Processor parses the whole file later.
"""

from __future__ import annotations

# An ID3v2 header is 10 bytes; an MPEG frame header is 4. The caller buffers this many bytes
# (or the whole body, if shorter) before calling looks_like_mp3.
MP3_SNIFF_BYTES = 10

_ID3_MAGIC = b"ID3"
# Flag bits defined per ID3v2 major version; any other bit set means it is not a real tag.
_ID3_ALLOWED_FLAGS = {2: 0xC0, 3: 0xE0, 4: 0xF0}

_MPEG_VERSION_RESERVED = 0b01
_LAYER_III = 0b01
_BITRATE_FREE_FORMAT = 0b0000  # legal but practically unused; encoders never write it
_BITRATE_BAD = 0b1111
_SAMPLE_RATE_RESERVED = 0b11
_EMPHASIS_RESERVED = 0b10


def looks_like_mp3(head: bytes) -> bool:
    """True if `head` (the first bytes of a file) starts an MP3 file.

    Accepts an ID3v2.2/2.3/2.4 header with known flags and a syncsafe size, or an MPEG-1/2/2.5
    Layer III frame header with a usable bitrate and sample rate. Input shorter than
    MP3_SNIFF_BYTES is rejected: no real MP3 is that small.
    """
    if len(head) < MP3_SNIFF_BYTES:
        return False
    return _is_id3v2_header(head) or _is_layer3_frame_header(head)


def _is_id3v2_header(head: bytes) -> bool:
    if head[:3] != _ID3_MAGIC:
        return False
    major, revision, flags = head[3], head[4], head[5]
    allowed_flags = _ID3_ALLOWED_FLAGS.get(major)
    if allowed_flags is None or revision == 0xFF or flags & ~allowed_flags:
        return False
    # Syncsafe integer: 4 bytes carrying 7 bits each, so every high bit must be clear.
    return all(byte < 0x80 for byte in head[6:10])


def _is_layer3_frame_header(head: bytes) -> bool:
    header = int.from_bytes(head[:4], "big")
    sync = header >> 21
    version = (header >> 19) & 0b11
    layer = (header >> 17) & 0b11
    bitrate_index = (header >> 12) & 0b1111
    sample_rate_index = (header >> 10) & 0b11
    emphasis = header & 0b11
    return (
        sync == 0x7FF
        and version != _MPEG_VERSION_RESERVED
        and layer == _LAYER_III
        and bitrate_index not in (_BITRATE_FREE_FORMAT, _BITRATE_BAD)
        and sample_rate_index != _SAMPLE_RATE_RESERVED
        and emphasis != _EMPHASIS_RESERVED
    )

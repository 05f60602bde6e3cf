"""The Song Service's own exception types."""

from __future__ import annotations


class SongExists(Exception):
    """Metadata for this resource id is stored already."""

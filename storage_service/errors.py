"""The Storage Service's own exception types."""

from __future__ import annotations


class DuplicateLocation(Exception):
    """A location with this bucket and path is registered already."""

"""The Storage Service's own exception types."""

from __future__ import annotations


class DuplicateLocation(Exception):
    """A location with this bucket and path is registered already."""


class BucketNotOurs(Exception):
    """The bucket exists, but the platform did not create it and no setting lists it."""


class TooManyLocations(Exception):
    """`MAX_STORAGES` locations exist already."""

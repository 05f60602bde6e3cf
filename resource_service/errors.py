"""The Resource Service's own exception types, in one place.

What a client sees for each is decided where it is raised (an `ApiError`) or in `routes`.
"""

from __future__ import annotations


class StorageUnavailable(Exception):
    """The Storage Service could not tell where files live."""


class MalformedStorageAnswer(StorageUnavailable):
    """An answer of the wrong shape, or without the storage type asked for."""


class UploadExpired(Exception):
    """The upload outlived its intent: its object is removed and no row is written."""


class CommitOutcomeUnknown(Exception):
    """The row's COMMIT was sent, and neither its answer nor the row could be read back."""


class ObjectMissing(Exception):
    """S3 has no object under the key."""


class ObjectLost(Exception):
    """The row exists, and S3 has no object under its key (an S3 server that forgot)."""


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int):
        super().__init__(f"object size {size}")
        self.size = size

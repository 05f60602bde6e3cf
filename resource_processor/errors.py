"""The Resource Processor's own exception types (what no retry fixes is `DeadLetter`, shared)."""

from __future__ import annotations


class PeerUnavailable(Exception):
    """A peer answered 5xx: it may recover, so the call is worth repeating."""


class UnreadableAudio(Exception):
    """The bytes are not audio mutagen can read: no retry will change that."""


class ResourceGone(Exception):
    """The resource was deleted before (or while) its tags were read: nothing left to do."""

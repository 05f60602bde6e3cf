"""Types of the shared fixtures, for the annotations of the tests that ask for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devstack.testing.stack import Stack
from tests.infra import RabbitVhost

DatabaseUrls = Callable[[str], str]
"""`new_database_url`: a fresh database URL for a name."""

VhostFactory = Callable[[str], RabbitVhost]
"""`new_rabbitmq_vhost`: a fresh vhost for a prefix."""

StackStarter = Callable[..., Stack]
"""`start_module_stack`: starts the platform (`start_stack`'s options pass through)."""

RecordProperty = Callable[[str, Any], None]
"""pytest's `record_property`: a name and value for the JUnit report."""

"""The typed seam between a composition root's parts and the routes (service_kit.deps)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from service_kit.deps import HasDatabase, ServiceState, part


def request_with(parts: object) -> SimpleNamespace:
    app = SimpleNamespace(state=SimpleNamespace(service=ServiceState(None, parts)))
    return SimpleNamespace(app=app)


def test_a_part_the_service_has_comes_back_as_the_protocol_names_it() -> None:
    parts = SimpleNamespace(database="the database")
    assert part(request_with(parts), HasDatabase) is parts  # type: ignore[arg-type]


def test_a_part_the_service_lacks_is_named_in_the_error() -> None:
    with pytest.raises(TypeError, match="SimpleNamespace has no part that HasDatabase names"):
        part(request_with(SimpleNamespace(s3=None)), HasDatabase)  # type: ignore[arg-type]

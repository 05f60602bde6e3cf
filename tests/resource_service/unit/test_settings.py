"""The Resource Service's settings refuse what would only fail later: a stub without a location
of each type would leave the last fallback of some lookups empty."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from resource_service.config import DEFAULT_STORAGE_STUB, Settings

DB = "postgresql+psycopg://postgres@127.0.0.1:5432/unused"


def stub_of(*types: str) -> str:
    return json.dumps(
        [
            {"id": n, "storageType": t, "bucket": "some-bucket", "path": f"/{t.lower()}/"}
            for n, t in enumerate(types, 1)
        ]
    )


@pytest.mark.parametrize(
    ("types", "missing"),
    [
        (["STAGING"], "no PERMANENT"),
        (["PERMANENT"], "no STAGING"),
        ([], "no PERMANENT and no STAGING"),
    ],
)
def test_a_stub_without_both_types_stops_the_start(types: list[str], missing: str) -> None:
    with pytest.raises(ValidationError, match=f"STORAGE_STUB_JSON has {missing} location"):
        Settings(database_url=DB, storage_stub_json=stub_of(*types))


def test_the_default_stub_and_one_of_each_type_are_accepted() -> None:
    assert Settings(database_url=DB).storage_stub_json == DEFAULT_STORAGE_STUB
    Settings(database_url=DB, storage_stub_json=stub_of("PERMANENT", "STAGING"))

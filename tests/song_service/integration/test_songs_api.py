import random
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service_kit.ids import MAX_STORED_ID
from tests.contract import BAD_PATH_IDS, ID_RULE_CASES, assert_error, assert_validation_error


def new_id() -> int:
    return random.randint(1, 2**62)


def song(song_id: int | None = None, **overrides: Any) -> dict[str, Any]:
    body = {
        "id": song_id or new_id(),
        "name": "We are the champions",
        "artist": "Queen",
        "album": "News of the world",
        "duration": "02:59",
        "year": "1977",
    }
    return {**body, **overrides}


def test_create_then_get_returns_the_six_fields(client: TestClient) -> None:
    body = song()
    assert client.post("/songs", json=body).json() == {"id": body["id"]}
    response = client.get(f"/songs/{body['id']}")
    assert response.status_code == 200
    assert response.json() == body


def test_metadata_for_the_same_resource_twice_is_a_409_and_keeps_the_first(
    client: TestClient,
) -> None:
    body = song()
    client.post("/songs", json=body)
    assert_error(
        client.post("/songs", json={**body, "name": "Other"}),
        409,
        f"Metadata for resource ID={body['id']} already exists",
    )
    assert client.get(f"/songs/{body['id']}").json()["name"] == body["name"]


@pytest.mark.parametrize("edge", ["a", "b" * 100, "Zoë ✓"])
def test_text_fields_accept_1_to_100_characters(client: TestClient, edge: str) -> None:
    body = song(name=edge, artist=edge, album=edge)
    assert client.post("/songs", json=body).status_code == 200


@pytest.mark.parametrize("duration", ["00:00", "59:59", "05:07", "125:00"])
def test_valid_durations(client: TestClient, duration: object) -> None:
    assert client.post("/songs", json=song(duration=duration)).status_code == 200


@pytest.mark.parametrize("year", ["1900", "2099", "1987"])
def test_valid_years(client: TestClient, year: object) -> None:
    assert client.post("/songs", json=song(year=year)).status_code == 200


REQUIRED = {
    "name": "Song name is required",
    "artist": "Artist name is required",
    "album": "Album name is required",
    "duration": "Duration is required",
    "year": "Year is required",
    "id": "ID is required",
}


@pytest.mark.parametrize(("field", "message"), REQUIRED.items())
def test_a_missing_field_is_required(client: TestClient, field: str, message: str) -> None:
    body = song()
    del body[field]
    assert_validation_error(client.post("/songs", json=body), {field: message})


@pytest.mark.parametrize(("field", "message"), REQUIRED.items())
def test_a_null_field_is_required(client: TestClient, field: str, message: str) -> None:
    assert_validation_error(client.post("/songs", json=song(**{field: None})), {field: message})


@pytest.mark.parametrize(
    ("field", "label"), [("name", "Song"), ("artist", "Artist"), ("album", "Album")]
)
@pytest.mark.parametrize("value", ["", "   ", "x" * 101, 42, ["a"]])
def test_text_fields_outside_1_to_100_characters(
    client: TestClient, field: str, label: str, value: object
) -> None:
    assert_validation_error(
        client.post("/songs", json={**song(), field: value}),
        {field: f"{label} name must be between 1 and 100 characters"},
    )


@pytest.mark.parametrize("duration", ["3:05", "03:60", "03:5", "0305", "aa:bb", "-1:00", "", 185])
def test_durations_not_in_mm_ss(client: TestClient, duration: object) -> None:
    assert_validation_error(
        client.post("/songs", json=song(duration=duration)),
        {"duration": "Duration must be in mm:ss format with leading zeros"},
    )


@pytest.mark.parametrize("year", ["1899", "2100", "77", "19777", "year", "", 1977])
def test_years_outside_1900_to_2099(client: TestClient, year: object) -> None:
    assert_validation_error(
        client.post("/songs", json=song(year=year)),
        {"year": "Year must be between 1900 and 2099"},
    )


@pytest.mark.parametrize("bad_id", [0, -5, "12", 1.5, True, MAX_STORED_ID + 1])
def test_an_id_that_is_not_a_positive_integer(client: TestClient, bad_id: object) -> None:
    assert_validation_error(
        client.post("/songs", json=song(song_id=None, id=bad_id)),
        {"id": "ID must be a positive integer"},
    )


def test_every_invalid_field_is_reported_at_once_and_nothing_is_stored(client: TestClient) -> None:
    body = {"id": new_id(), "name": "", "duration": "1:1", "year": "3000"}
    assert_validation_error(
        client.post("/songs", json=body),
        {
            "name": "Song name must be between 1 and 100 characters",
            "artist": "Artist name is required",
            "album": "Album name is required",
            "duration": "Duration must be in mm:ss format with leading zeros",
            "year": "Year must be between 1900 and 2099",
        },
    )
    assert client.get(f"/songs/{body['id']}").status_code == 404


@pytest.mark.parametrize("raw", [b"not json", b"[]", b"null", b"{"])
def test_a_body_that_is_not_a_json_object_gets_a_400(client: TestClient, raw: bytes) -> None:
    response = client.post("/songs", content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "Validation error")


def test_get_unknown_id_is_404(client: TestClient) -> None:
    unknown = new_id()
    assert_error(client.get(f"/songs/{unknown}"), 404, f"Song metadata for ID={unknown} not found")


def test_get_id_beyond_64_bits_is_the_bad_id_400_not_an_error(client: TestClient) -> None:
    huge = "9" * 25
    assert_error(
        client.get(f"/songs/{huge}"),
        400,
        f"Invalid value '{huge}' for ID. Must be a positive integer",
    )


@pytest.mark.parametrize("raw", BAD_PATH_IDS)
def test_get_with_a_bad_path_id(client: TestClient, raw: str) -> None:
    assert_error(
        client.get(f"/songs/{raw}"),
        400,
        f"Invalid value '{raw}' for ID. Must be a positive integer",
    )


def test_delete_returns_only_the_ids_that_existed(client: TestClient) -> None:
    first, second = song(), song()
    client.post("/songs", json=first)
    client.post("/songs", json=second)
    unknown = new_id()
    response = client.delete(f"/songs?id={second['id']},{unknown},{first['id']}")
    assert response.json() == {"ids": [second["id"], first["id"]]}
    assert client.get(f"/songs/{first['id']}").status_code == 404
    assert client.delete(f"/songs?id={first['id']}").json() == {"ids": []}


@pytest.mark.parametrize(("query", "message"), ID_RULE_CASES)
def test_delete_with_a_bad_id_list_gets_the_contract_message(
    client: TestClient, query: str, message: str
) -> None:
    assert_error(client.delete(f"/songs?{query}"), 400, message)


def test_health_metrics_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json() == {
        "status": "UP",
        "checks": {"database": {"status": "UP"}},
    }
    assert "http_request_duration_seconds" in client.get("/metrics").text
    assert "/songs/{id}" in client.get("/openapi.json").json()["paths"]

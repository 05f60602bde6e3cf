import uuid
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from service_kit.ids import MAX_STORED_ID
from service_kit.s3 import S3Client
from storage_service.schemas import BUCKET_MESSAGE, PATH_MESSAGE
from tests.contract import ID_RULE_CASES, assert_error, assert_validation_error


def new_bucket() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def create(
    client: TestClient,
    storage_type: str = "PERMANENT",
    bucket: str | None = None,
    path: str = "/files/",
) -> httpx2.Response:
    return client.post(
        "/storages",
        json={"storageType": storage_type, "bucket": bucket or new_bucket(), "path": path},
    )


def test_seed_rows_are_listed_first_with_the_contract_fields(client: TestClient) -> None:
    storages = client.get("/storages").json()
    assert storages[:2] == [
        {"id": 1, "storageType": "STAGING", "bucket": "resources-staging", "path": "/staging/"},
        {
            "id": 2,
            "storageType": "PERMANENT",
            "bucket": "resources-permanent",
            "path": "/permanent/",
        },
    ]


def test_create_returns_the_id_lists_the_row_and_creates_its_bucket(
    client: TestClient, s3: S3Client
) -> None:
    bucket = new_bucket()
    response = create(client, "STAGING", bucket, "/incoming/")
    assert response.status_code == 200
    new_id = response.json()["id"]
    assert response.json() == {"id": new_id}
    listed = client.get("/storages").json()
    assert {
        "id": new_id,
        "storageType": "STAGING",
        "bucket": bucket,
        "path": "/incoming/",
    } in listed
    assert [s["id"] for s in listed] == sorted(s["id"] for s in listed)
    s3.head_bucket(Bucket=bucket)  # raises if the bucket does not exist


def test_the_same_bucket_and_path_twice_is_a_conflict_and_adds_no_row(client: TestClient) -> None:
    bucket = new_bucket()
    assert create(client, bucket=bucket).status_code == 200
    before = client.get("/storages").json()
    assert_error(
        create(client, bucket=bucket),
        409,
        f"Storage with bucket '{bucket}' and path '/files/' already exists",
    )
    assert client.get("/storages").json() == before


def test_the_same_bucket_with_another_path_is_allowed(client: TestClient) -> None:
    bucket = new_bucket()
    assert create(client, bucket=bucket, path="/a/").status_code == 200
    assert create(client, bucket=bucket, path="/b/").status_code == 200


@pytest.mark.parametrize(
    ("body", "details"),
    [
        (
            {},
            {
                "storageType": "Storage type is required",
                "bucket": "Bucket is required",
                "path": "Path is required",
            },
        ),
        (
            {"storageType": "TEMP", "bucket": "ok-bucket", "path": "/p/"},
            {"storageType": "Storage type must be STAGING or PERMANENT"},
        ),
        (
            {"storageType": 1, "bucket": "ok-bucket", "path": "/p/"},
            {"storageType": "Storage type must be STAGING or PERMANENT"},
        ),
        (
            {"storageType": "STAGING", "bucket": "Upper_Case", "path": "/p/"},
            {"bucket": BUCKET_MESSAGE},
        ),
        ({"storageType": "STAGING", "bucket": "ab", "path": "/p/"}, {"bucket": BUCKET_MESSAGE}),
        ({"storageType": "STAGING", "bucket": "a" * 64, "path": "/p/"}, {"bucket": BUCKET_MESSAGE}),
        (
            {"storageType": "STAGING", "bucket": "192.168.1.1", "path": "/p/"},
            {"bucket": BUCKET_MESSAGE},
        ),
        ({"storageType": "STAGING", "bucket": "a..b", "path": "/p/"}, {"bucket": BUCKET_MESSAGE}),
        ({"storageType": "STAGING", "bucket": "-abc", "path": "/p/"}, {"bucket": BUCKET_MESSAGE}),
        ({"storageType": "STAGING", "bucket": ["x"], "path": "/p/"}, {"bucket": BUCKET_MESSAGE}),
        (
            {"storageType": "STAGING", "bucket": "ok-bucket", "path": "no-slash"},
            {"path": PATH_MESSAGE},
        ),
        (
            {"storageType": "STAGING", "bucket": "ok-bucket", "path": "/" + "a" * 1024},
            {"path": PATH_MESSAGE},
        ),
        (
            {"storageType": "STAGING", "bucket": "ok-bucket", "path": "/a\nb"},
            {"path": PATH_MESSAGE},
        ),
        (
            {"storageType": None, "bucket": None, "path": None},
            {
                "storageType": "Storage type is required",
                "bucket": "Bucket is required",
                "path": "Path is required",
            },
        ),
    ],
)
def test_invalid_fields_get_a_400_with_a_message_per_field_and_add_no_row(
    client: TestClient, body: dict[str, Any], details: dict[str, str]
) -> None:
    before = client.get("/storages").json()
    assert_validation_error(client.post("/storages", json=body), details)
    assert client.get("/storages").json() == before


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"', b"{", b"", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_gets_a_400(client: TestClient, raw: bytes) -> None:
    response = client.post("/storages", content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "Validation error")


def test_delete_returns_only_the_ids_that_existed(client: TestClient) -> None:
    first = create(client).json()["id"]
    second = create(client).json()["id"]
    response = client.delete(f"/storages?id={second},{MAX_STORED_ID},{first},999999")
    assert response.status_code == 200
    assert response.json() == {"ids": [second, first]}
    remaining = {s["id"] for s in client.get("/storages").json()}
    assert first not in remaining and second not in remaining
    assert client.delete(f"/storages?id={first}").json() == {"ids": []}


@pytest.mark.parametrize(("query", "message"), ID_RULE_CASES)
def test_delete_with_a_bad_id_list_gets_the_contract_message(
    client: TestClient, query: str, message: str
) -> None:
    assert_error(client.delete(f"/storages?{query}"), 400, message)


def test_delete_without_ids_gets_a_400(client: TestClient) -> None:
    assert_validation_error(client.delete("/storages"), {"id": "Query parameter 'id' is required"})


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("PUT", "/storages", 405), ("GET", "/storages/1", 404)],
)
def test_unknown_routes_and_methods_answer_in_the_error_format(
    client: TestClient, method: str, path: str, status: int
) -> None:
    assert_error(client.request(method, path), status)


def test_health_reports_database_and_s3(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "UP",
        "checks": {"database": {"status": "UP"}, "s3": {"status": "UP"}},
    }


def test_metrics_and_openapi_are_served(client: TestClient) -> None:
    client.get("/storages")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'http_requests_total{method="GET",route="/storages",status="200"}' in metrics.text
    assert "/storages" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200

"""Swagger UI and ReDoc are served by each service itself (issue "No one in, nothing starved",
item 8): `/docs` and `/redoc` load nothing from a CDN, and every asset they name answers here."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

PACKAGES = ["storage_service", "song_service", "resource_service", "resource_processor"]


def app_of(package: str) -> Any:
    """The service's app, its lifespan not run: the docs need no database."""
    create_app = importlib.import_module(f"{package}.app").create_app
    settings = importlib.import_module(f"{package}.config").Settings(
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"
    )
    return create_app(settings)


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_only_what_the_service_serves(package: str, page: str) -> None:
    client = TestClient(app_of(package))
    html = client.get(page)
    assert html.status_code == 200
    assert "cdn." not in html.text and "unpkg" not in html.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert assets, html.text
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        assert answer.headers["content-type"].split(";")[0] in {
            "text/javascript",
            "application/javascript",
            "text/css",
            "image/png",
        }, asset

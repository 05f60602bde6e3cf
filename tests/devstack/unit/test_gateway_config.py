"""The gateway's configuration (devstack.gateway): its body limits are the Resource Service's
own settings, so a run with another MAX_UPLOAD_BYTES gets a front door that agrees."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import gateway
from devstack.runner.services import RunSettings, gateway_settings


def test_the_body_limits_follow_the_services_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "12345")
    monkeypatch.setenv("MAX_JSON_BYTES", "2048")
    config = gateway.render(gateway_settings(RunSettings()), Path("/run/gw"))
    upload = config.split("location = /resources {", 1)[1].split("location ", 1)[0]
    assert "client_max_body_size 12345;" in upload
    assert "client_max_body_size 2048;" in config.split("location", 1)[0]  # everywhere else


def test_the_compose_gateway_config_is_made_from_the_route_table() -> None:
    """docker-compose.yml's gateway reads docker/gateway/nginx.conf: it must be what the route
    table makes today (`python -m devstack.gateway` writes it)."""
    assert gateway.COMPOSE_CONFIG.read_text() == gateway.compose_config()
    assert "server resource-service-2:8080" in gateway.compose_config()  # both replicas

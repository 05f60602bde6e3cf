"""The diagrams in images/ exist and their sources name what the code names.

Only the sources are compared with the code: the PNGs are rendered from them by images/render.sh.
"""

from __future__ import annotations

from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[2] / "images"
SOURCES = ["fault_tolerance.dot", "fault_tolerance_sequence_diagram.puml"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

PORTS = ["8080", "8081", "8082"]
QUEUES = ["resource.uploaded", "resource.processed"]
BUCKETS = ["resources-staging", "resources-permanent"]


@pytest.mark.parametrize("source", SOURCES)
def test_diagram_sources_name_the_ports_queues_and_buckets(source: str) -> None:
    text = (IMAGES / source).read_text()
    missing = [name for name in PORTS + QUEUES + BUCKETS if name not in text]
    assert not missing, f"{source} does not mention {missing}"


def test_architecture_diagram_shows_the_dead_letter_queues() -> None:
    text = (IMAGES / "fault_tolerance.dot").read_text()
    for queue in QUEUES:
        assert f"{queue}.dlq" in text


@pytest.mark.parametrize("source", SOURCES)
def test_each_source_has_its_rendered_png(source: str) -> None:
    png = IMAGES / Path(source).with_suffix(".png")
    assert png.read_bytes()[:8] == PNG_MAGIC, f"{png.name} is missing or not a PNG"


def test_the_deployment_diagram_names_each_service_and_port_and_is_rendered() -> None:
    text = (IMAGES / "deployment.dot").read_text()
    for name, port in [("resource-service", 8080), ("song-service", 8081),
                       ("storage-service", 8082), ("resource-processor", 8083)]:  # fmt: skip
        assert name in text and f":{port}" in text, name
    assert (IMAGES / "deployment.png").read_bytes().startswith(PNG_MAGIC)

"""`make demo` (issue "One front door", item 6): the failure story runs to PASS with every
upload and song read sent through the gateway, as under `make run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_make_demo_passes_with_every_upload_through_the_front_door() -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "devstack.demo"],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},  # rich wraps at the terminal's width otherwise
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-2000:]
    assert "gateway (nginx)" in demo.stdout
    assert "✔ the front door served all" in demo.stdout, demo.stdout[-4000:]
    assert "PASS" in demo.stdout

"""A short seeded `make chaos` run: real faults while clients upload and delete, then every
invariant holds (nothing lost, duplicated, orphaned, stuck or parked)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from devstack.testing.chaos import run_chaos
from devstack.testing.sandbox import Sandbox
from tests.fixture_types import RecordProperty
from tests.infra import Infrastructure

SEED, DURATION_SECONDS = 7, 45


@pytest.mark.timeout(420)
def test_a_short_seeded_chaos_run_keeps_every_invariant(
    sandbox: Sandbox, infra: Infrastructure, tmp_path: Path, record_property: RecordProperty
) -> None:
    report = run_chaos(SEED, DURATION_SECONDS, sandbox, infra.s3_endpoint_url, tmp_path)
    summary = {**asdict(report), "violations": report.violations}
    record_property("chaos_report", json.dumps(summary))
    assert report.accepted > 0 and sum(report.faults.values()) > 0, summary
    assert report.seconds_to_converge is not None, summary
    assert report.violations == 0, summary

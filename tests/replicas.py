"""Replicas of one service started at once, as an orchestrator starts them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from devstack.testing.processes import ServiceProcess
from devstack.testing.stack import free_port


@contextlib.contextmanager
def started_at_once(
    package: str, env: dict[str, str], log_dir: Path, count: int = 2
) -> Iterator[list[ServiceProcess]]:
    """Every replica is started before any is waited for; all are stopped at the end."""
    replicas = [
        ServiceProcess(package, free_port(), env, log_dir / f"replica{i}.log") for i in range(count)
    ]
    try:
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_healthy(timeout=60)
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()

"""Upload latency while the Storage Service is healthy, killed (SIGKILL) and frozen (SIGSTOP).

Uploads are sequential, so each request meets the breaker in the state the previous ones left.
A killed service refuses connections at once; a frozen one accepts them and never answers, so
the first calls wait for the TimeLimiter's timeout until it has seen its minimum number of
calls and opens. Latency under an open breaker is compared with the healthy latency, and the
requests that waited for a timeout are counted.

The stack runs without processors: only uploads ask for locations through the breaker, so every
call the breaker counts is one of ours. Its open state lasts longer than a phase, so a phase
measures the open breaker, not the half-open probes that follow it.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field

from bench.payloads import MB, delete, mp3_bytes, upload
from bench.report import Figure, percentile
from devstack.testing.stack import Stack

TIMEOUT_DURATION = 1.0
MINIMUM_NUMBER_OF_CALLS = 5
BREAKER_ENV = {
    "STORAGE_TIMELIMITER_TIMEOUT_DURATION": f"{TIMEOUT_DURATION:g}",
    "STORAGE_BREAKER_MINIMUM_NUMBER_OF_CALLS": str(MINIMUM_NUMBER_OF_CALLS),
    "STORAGE_BREAKER_SLIDING_WINDOW_SIZE": "10",
    "STORAGE_BREAKER_WAIT_DURATION_IN_OPEN_STATE": "120",
}
FILE_BYTES = MB // 4
REQUESTS = 200  # per phase, under an open breaker for the faulty phases
MAX_BEFORE_OPEN = 30  # give up on a breaker that does not open after this many requests
TARGET_P99_RATIO = 1.2
GROUP = f"degraded mode, {FILE_BYTES // 1000} kB uploads"


@dataclass
class Phase:
    name: str
    seconds: list[float] = field(default_factory=list)  # every request's latency
    open_seconds: list[float] = field(default_factory=list)  # those that met an open breaker

    @property
    def timeouts(self) -> int:
        """Requests that waited for the TimeLimiter's timeout."""
        return sum(1 for s in self.seconds if s >= TIMEOUT_DURATION)


def breaker_state(stack: Stack) -> str:
    breakers = stack.http.get(
        f"{stack.resource.url}/admin/breakers", headers=stack.admin_headers
    ).json()
    return str(next(b["state"] for b in breakers if b["name"] == "storage"))


def run_phase(stack: Stack, data: bytes, phase: Phase, ids: list[int], faulty: bool) -> Phase:
    """Upload until REQUESTS requests ran (faulty: ran with the breaker OPEN)."""
    while len(phase.open_seconds if faulty else phase.seconds) < REQUESTS:
        state = breaker_state(stack)
        started = time.perf_counter()
        ids.append(upload(stack, data))
        elapsed = time.perf_counter() - started
        phase.seconds.append(elapsed)
        if state == "OPEN":
            phase.open_seconds.append(elapsed)
        elif faulty and len(phase.seconds) > MAX_BEFORE_OPEN:
            raise AssertionError(f"breaker still {state} after {len(phase.seconds)} requests")
    return phase


def measure(stack: Stack) -> tuple[Phase, Phase, Phase]:
    data = mp3_bytes(FILE_BYTES)
    ids: list[int] = []
    storage = stack.storage
    try:
        for _ in range(5):  # warm-up
            ids.append(upload(stack, data))
        healthy = run_phase(stack, data, Phase("healthy"), ids, faulty=False)

        storage.signal(signal.SIGKILL)
        storage.running.wait()
        killed = run_phase(stack, data, Phase("killed"), ids, faulty=True)

        storage.restart().wait_healthy()
        stack.http.post(
            f"{stack.resource.url}/admin/breakers/storage/close", headers=stack.admin_headers
        ).raise_for_status()
        upload(stack, data)  # a live answer again, so the last good one is fresh
        storage.signal(signal.SIGSTOP)
        try:
            frozen = run_phase(stack, data, Phase("frozen"), ids, faulty=True)
        finally:
            storage.signal(signal.SIGCONT)
    finally:
        if storage.running.poll() is None:
            storage.signal(signal.SIGCONT)
        delete(stack, ids)
    return healthy, killed, frozen


def figures(stack: Stack) -> list[Figure]:
    healthy, killed, frozen = measure(stack)
    healthy_p99 = percentile(healthy.seconds, 0.99) * 1000
    results = [
        Figure("healthy p50", "ms", percentile(healthy.seconds, 0.5) * 1000, group=GROUP),
        Figure("healthy p99", "ms", healthy_p99, group=GROUP),
    ]
    for phase, how in ((killed, "SIGKILL"), (frozen, "SIGSTOP")):
        p99 = percentile(phase.open_seconds, 0.99) * 1000
        results += [
            Figure(
                f"Storage {phase.name} ({how}), breaker open: p50",
                "ms",
                percentile(phase.open_seconds, 0.5) * 1000,
                group=GROUP,
            ),
            Figure(
                f"Storage {phase.name} ({how}), breaker open: p99",
                "ms",
                p99,
                baseline=healthy_p99,
                target=f"<= {TARGET_P99_RATIO} x healthy p99",
                met=p99 <= TARGET_P99_RATIO * healthy_p99,
                group=GROUP,
            ),
            Figure(
                f"Storage {phase.name}: requests that waited for a timeout",
                "requests",
                phase.timeouts,
                baseline=MINIMUM_NUMBER_OF_CALLS,
                target="<= minimum number of calls",
                met=phase.timeouts <= MINIMUM_NUMBER_OF_CALLS,
                group=GROUP,
                note=f"of {len(phase.seconds)}; slower than the {TIMEOUT_DURATION:g} s timeout",
            ),
        ]
    return results

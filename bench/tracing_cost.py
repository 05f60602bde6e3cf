"""What exporting the traces costs an upload (issue "Follow one upload", item 1).

Two stacks run side by side, neither with a processor, so an upload is the only work: one
exports every span over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT, to a receiver in this process
that decodes and keeps them, as a collector would), the other exports nothing. Spans and their
ids are made in both: the ids are in every log line either way. UPLOADS uploads of 100 KB go
to each, interleaved (the order swapped every time), after WARMUP each. Figures: the upload's
median and 99th percentile, exporting against not, and the Resource Service's CPU time per
upload from /proc. Bounded by this machine: two cores shared by both stacks, LocalStack,
PostgreSQL, RabbitMQ and the receiver; the batch exporter sends from a thread of its own, so
its cost shows in the CPU figure more than in the latency.
"""

from __future__ import annotations

import statistics
from functools import partial

from bench.env import BenchEnv
from bench.payloads import mp3_bytes, timed, upload
from bench.proc import cpu_seconds
from bench.report import Figure
from devstack.testing.otlp import otlp_receiver

UPLOADS = 150
WARMUP = 10
SIZE = 100 * 1024
NOTE = "150 interleaved 100 KB uploads per stack, two stacks on two cores"


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def figures(env: BenchEnv) -> list[Figure]:
    data = mp3_bytes(SIZE)
    with otlp_receiver() as (endpoint, received):
        exporting = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "500"}
        with (
            env.stack("traced", processors=0, common_env=exporting) as traced,
            env.stack("untraced", processors=0) as untraced,
        ):
            stacks = (traced, untraced)
            for stack in stacks:
                for _ in range(WARMUP):
                    upload(stack, data)
            cpu_before = [cpu_seconds(s.resource.running.pid) for s in stacks]
            seconds: dict[str, list[float]] = {"traced": [], "untraced": []}
            for n in range(UPLOADS):
                for stack in stacks if n % 2 == 0 else stacks[::-1]:
                    took, _ = timed(partial(upload, stack, data))
                    seconds["traced" if stack is traced else "untraced"].append(took)
            cpu = [
                cpu_seconds(s.resource.running.pid) - b
                for s, b in zip(stacks, cpu_before, strict=True)
            ]
            spans = len(received.spans)
    return report(seconds, cpu, spans)


def report(seconds: dict[str, list[float]], cpu: list[float], spans: int) -> list[Figure]:
    traced, untraced = seconds["traced"], seconds["untraced"]

    def figure(name: str, unit: str, value: float, baseline: float) -> Figure:
        return Figure(name, unit, value, baseline, group="tracing", note=NOTE)

    return [
        figure("upload 100 KB p50, spans exported", "ms", statistics.median(traced) * 1000,
               statistics.median(untraced) * 1000),
        figure("upload 100 KB p99, spans exported", "ms", p99(traced) * 1000, p99(untraced) * 1000),
        figure("Resource Service CPU per upload, spans exported", "ms",
               cpu[0] / UPLOADS * 1000, cpu[1] / UPLOADS * 1000),
        Figure("spans received per upload (all services)", "", spans / (UPLOADS + WARMUP),
               group="tracing", note="the receiver's count: the export did happen"),
    ]  # fmt: skip

"""`make bench`: every benchmark against real stacks on this machine, one table, and the same
figures as JSON in bench/results.json.

    .venv/bin/python -m bench                  # everything (a few minutes)
    .venv/bin/python -m bench --only degraded  # some groups: throughput curves download
                                               #   memory profile pipeline degraded sizing
                                               #   breaker tracing

Each stack is a whole platform of its own (fresh databases and RabbitMQ vhost, dropped at the
end); S3 is the LocalStack on this machine, started when none answers. Services' logs and the
upload profile stay in the run's directory (printed at the end).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import structlog

from bench import (
    breaker_overhead,
    curves,
    degraded,
    download_path,
    memory,
    pipeline,
    sizing,
    throughput,
    tracing_cost,
    transfer_profile,
)
from bench.env import BenchEnv
from bench.plots import IMAGES
from bench.report import Figure, print_table, write_json

RESULTS = Path(__file__).resolve().parent / "results.json"
GROUPS = (
    "throughput",
    "curves",
    "download",
    "memory",
    "profile",
    "pipeline",
    "degraded",
    "sizing",
    "breaker",
    "tracing",
)
BUDGET_SECONDS = 900
# The transfer stack lets 64 uploads in at once, so the concurrency curve reaches 64 clients.
TRANSFER_ENV = {"MAX_CONCURRENT_UPLOADS": "64"}


def measure(name: str, selected: set[str], work: Callable[[], list[Figure]]) -> list[Figure]:
    """A group's figures; a group that fails is one missed figure, and the others still run."""
    if name not in selected:
        return []
    started = time.monotonic()
    print(f"-- {name} ...", flush=True)
    try:
        figures = work()
    except Exception as error:
        traceback.print_exc()
        return [
            Figure(
                f"{name} failed: {type(error).__name__}: {str(error)[:200]}",
                "",
                float("nan"),
                target="runs",
                met=False,
                group=name,
            )
        ]
    print(f"   {name} took {time.monotonic() - started:.0f} s", flush=True)
    return figures


def run(selected: set[str], run_dir: Path) -> list[Figure]:
    figures: list[Figure] = []
    stacks = {
        "transfer": {"throughput", "curves", "download", "memory", "profile"},
        "pipeline": {"pipeline"},
        "degraded": {"degraded"},
    }
    with BenchEnv(run_dir) as env:
        s3 = env.s3_client()
        if selected & stacks["transfer"]:
            # No processors: nothing but the measured transfer runs in the Resource Service.
            with env.stack("transfer", processors=0, resource_env=TRANSFER_ENV) as stack:
                # Memory first: a process that has already held big bodies grows no more.
                figures += measure("memory", selected, lambda: memory.figures(stack))
                figures += measure(
                    "throughput", selected, lambda: throughput.figures(stack, s3, env.s3_client)
                )
                figures += measure("curves", selected, lambda: curves.figures(stack, s3))
                figures += measure("download", selected, lambda: download_path.figures(s3))
                figures += measure(
                    "profile", selected, lambda: transfer_profile.figures(stack, s3, run_dir)
                )
        if selected & stacks["pipeline"]:
            figures += measure("pipeline", selected, lambda: pipeline.figures(env))
        if selected & stacks["degraded"]:
            with env.stack("degraded", processors=0, resource_env=degraded.BREAKER_ENV) as stack:
                figures += measure("degraded", selected, lambda: degraded.figures(stack))
        figures += measure("tracing", selected, lambda: tracing_cost.figures(env))
        if "sizing" in selected:
            with env.stack("sizing", processors=2) as stack:
                figures += measure("sizing", selected, lambda: sizing.figures(stack))
    # Last, with every stack stopped: the quietest the machine gets.
    figures += measure("breaker", selected, breaker_overhead.figures)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS))
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the figures")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # quiet
    # A polite stop (SIGTERM) unwinds like Ctrl-C does: stacks stopped, databases dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    load_before = os.getloadavg()[0]
    started_at = time.time()  # plots written from now on are this run's
    started = time.monotonic()
    figures = run(set(args.only), run_dir)
    seconds = time.monotonic() - started
    if set(args.only) == set(GROUPS):
        figures.append(
            Figure(
                "the whole run",
                "s",
                seconds,
                target=f"<= {BUDGET_SECONDS} s",
                met=seconds <= BUDGET_SECONDS,
                group="make bench",
            )
        )
    print_table(figures)
    write_json(figures, args.json)
    plots = sorted(p for p in IMAGES.glob("bench-*.png") if p.stat().st_mtime >= started_at)
    print(
        f"{os.cpu_count()} CPUs; load average (1 min) {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end: other work on this machine makes the figures "
        f"noisy.\nFigures: {args.json}\nPlots: {' '.join(map(str, plots)) or 'none this run'}"
        f"\nLogs and profile: {run_dir}"
    )
    missed = [figure.name for figure in figures if figure.met is False]
    if missed:
        print("Targets not met: " + "; ".join(missed))


if __name__ == "__main__":
    main()

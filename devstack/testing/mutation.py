"""`make mutation`: mutmut over the fault-tolerance modules (pyproject.toml's [tool.mutmut]:
the breaker, the fallback, messaging, the outbox, the ranged reader) against the quick tier,
then each module's share of mutants killed.

    python -m devstack.testing.mutation          # run afresh (about 3 min), then report
    python -m devstack.testing.mutation --report # report the last run only

A mutant is "reached" when a quick-tier test runs its function; "killed" when a test fails
with it (a timeout counts: the mutant broke the code). Survivors: `mutmut show <name>`. Each run
starts afresh: mutmut retests what changed in the code, not what changed in the tests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

from devstack import REPO

MUTANTS = REPO / "mutants"
KILLED = {1, 3, 36, 37, 24, -24, 152, 255}  # failed, pytest error, timeouts, type check
NOT_REACHED = {5, 33}  # no test runs the mutated function
TARGET = 90.0  # per module, issue "A codebase the next engineer can carry"


def modules() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return list(config["tool"]["mutmut"]["only_mutate"])


def tally(module: str) -> Counter[str]:
    meta = MUTANTS / f"{module}.meta"
    counts: Counter[str] = Counter()
    if not meta.exists():
        return counts
    for code in json.loads(meta.read_text())["exit_code_by_key"].values():
        if code is None:
            counts["not checked"] += 1
        elif code in NOT_REACHED:
            counts["not reached"] += 1
        else:
            counts["killed" if code in KILLED else "survived"] += 1
    return counts


def report() -> bool:
    """Print one row per module; True when every module reaches the target."""
    print(f"{'module':<38} {'mutants':>7} {'reached':>7} {'killed':>6} {'% of reached':>12}")
    every = True
    for module in modules():
        counts = tally(module)
        reached = counts["killed"] + counts["survived"]
        share = 100.0 * counts["killed"] / reached if reached else 0.0
        every &= share >= TARGET
        total = sum(counts.values())
        print(f"{module:<38} {total:>7} {reached:>7} {counts['killed']:>6} {share:>11.1f}%")
    print(f"target: {TARGET:.0f} % of the reached mutants killed in each module")
    return every


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.testing.mutation")
    parser.add_argument("--report", action="store_true", help="report the last run only")
    args = parser.parse_args(argv)
    if not args.report:
        shutil.rmtree(MUTANTS, ignore_errors=True)
        mutmut = Path(sys.executable).parent / "mutmut"
        subprocess.run([str(mutmut), "run"], cwd=REPO, check=False)
    return 0 if report() else 1


if __name__ == "__main__":
    sys.exit(main())

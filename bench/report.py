"""The one way benchmarks record, print and save a figure.

A figure is one measured value against its baseline, and (optionally) a target it must meet:

    Figure("upload throughput", "MB/s", value=48.0, baseline=51.0, target=">= 0.9 x raw S3",
           met=True)

`bench/results.json` is a list of `Figure.as_dict()` objects.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, JustifyMethod
from rich.table import Table


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    value: float
    baseline: float | None = None
    target: str | None = None
    """What the value must be, in words (`">= 0.9 x baseline"`); None for a figure for context."""
    met: bool | None = None
    group: str = ""
    """Which benchmark measured it; only for the table."""
    note: str = ""
    """How it was measured or what bounds it; only for the table."""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0 or math.isnan(self.baseline):
            return None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, object]:
        """The JSON record: name, unit, value, baseline, ratio, target, met (NaN becomes null)."""
        return {
            "name": self.name,
            "unit": self.unit,
            "value": _rounded(self.value),
            "baseline": _rounded(self.baseline),
            "ratio": _rounded(self.ratio),
            "target": self.target,
            "met": self.met,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 3)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0-1) by linear interpolation between closest ranks."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(samples: Iterable[float]) -> float:
    values = list(samples)
    return statistics.median(values) if values else math.nan


def print_table(figures: Sequence[Figure], title: str = "Benchmarks") -> None:
    console = Console()
    if not console.is_terminal:  # piped into a log: do not squeeze the table into 80 columns
        console = Console(width=170)
    table = Table(title=title, title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("group", "left"),
        ("figure", "left"),
        ("value", "right"),
        ("baseline", "right"),
        ("ratio", "right"),
        ("target", "left"),
        ("met", "center"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    previous_group = None
    for figure in figures:
        if previous_group is not None and figure.group != previous_group:
            table.add_section()
        ratio = figure.ratio
        table.add_row(
            figure.group if figure.group != previous_group else "",
            figure.name + (f"\n[dim]{figure.note}[/]" if figure.note else ""),
            f"{_format(figure.value)} {figure.unit}",
            "" if figure.baseline is None else _format(figure.baseline),
            "" if ratio is None else f"{ratio:.2f}",
            figure.target or "",
            {True: "[green]yes[/]", False: "[bold red]NO[/]", None: ""}[figure.met],
        )
        previous_group = figure.group
    console.print(table)


def _format(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value == int(value) and abs(value) >= 1:
        return f"{value:.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def to_json(figures: Sequence[Figure]) -> str:
    return json.dumps([figure.as_dict() for figure in figures], indent=2, allow_nan=False)


def write_json(figures: Sequence[Figure], path: Path) -> None:
    path.write_text(to_json(figures) + "\n")

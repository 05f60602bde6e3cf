"""The benchmark curves as PNGs (matplotlib, no display): one figure of two panels per curve,
throughput on the left and latency (log scale) on the right, written where docs/benchmarks.md
shows them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen here, nor in CI
import matplotlib.pyplot as plt  # after choosing the backend

IMAGES = Path(__file__).resolve().parent.parent / "images"
Series = Mapping[str, Sequence[tuple[float, float]]]  # label -> (x, y) points


def two_panels(
    name: str,
    title: str,
    xlabel: str,
    left: tuple[str, Series],
    right: tuple[str, Series],
    log_x: bool = True,
) -> Path:
    """Write images/<name>.png: `left` and `right` are (y label, series) panels."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    axes[1].set_yscale("log")  # latencies span milliseconds to seconds
    for axis, (ylabel, series) in zip(axes, (left, right), strict=True):
        for label, points in series.items():
            xs, ys = zip(*points, strict=True)
            axis.plot(xs, ys, marker="o", label=label)
        if log_x:
            axis.set_xscale("log")
            axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        else:  # counts: processors, clients
            axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    axes[0].set_ylim(bottom=0)  # a throughput axis that starts at zero does not exaggerate
    figure.suptitle(title, fontsize=11)
    IMAGES.mkdir(exist_ok=True)
    path = IMAGES / f"{name}.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

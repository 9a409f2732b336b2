"""The planner's PNG: requests answered per model over time, and the cumulative cost.

Apart from ``report`` because it is the one part of the report that needs matplotlib (the
``notebook`` extra) and none of the text.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm_routing.cli.plan.report import SimulationReport

__all__ = ["plot_report"]


def plot_report(report: SimulationReport, path: str | os.PathLike[str]) -> Path:
    """Write ``report`` as a PNG at ``path`` (``SimulationReport.plot``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "plotting needs matplotlib, which is not installed: "
            "pip install matplotlib (or pip install 'llm-routing[notebook]')"
        ) from exc
    end = max(report.duration_s, report.simulated_s)
    width = _bin_width(end)
    bins = max(1, math.ceil(end / width))
    scale, unit = (60.0, "min") if end > 600 else (1.0, "s")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    edges = [i * width / scale for i in range(bins)]
    for name, m in report.models.items():
        counts = [0] * bins
        for t in m.served_at:
            counts[min(bins - 1, int(t // width))] += 1
        per_min = [c * 60 / width for c in counts]
        (line,) = top.step(edges, per_min, where="post", label=name)
        if "rpm" in m.limits:  # the model's RPM limit, dotted, in its colour
            top.axhline(m.limits["rpm"], linestyle=":", linewidth=0.8, color=line.get_color())
    top.set_ylabel("requests answered per minute")
    top.set_title(report.title(), fontsize=9)
    top.legend(loc="upper right", fontsize=8)
    xs = [0.0] + [t / scale for t, _ in report.cost_timeline]
    ys = [0.0] + [c for _, c in report.cost_timeline]
    bottom.plot(xs, ys, color="black")
    bottom.set_ylabel("cumulative cost (USD)")
    bottom.set_xlabel(f"simulated time ({unit})")
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target


def _bin_width(seconds: float) -> float:
    for width in (1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 3600.0):
        if seconds / width <= 120:
            return width
    return 3600.0 * math.ceil(seconds / 3600 / 120)

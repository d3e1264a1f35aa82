"""Small matplotlib helpers shared by the reports (the memo's findings, the ML pictures)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

BLUE = "#1f77b4"


def bars(ax: Any, labels, values, ylabel: str, pct: bool = False) -> None:
    ax.bar([str(x) for x in labels], values, color=BLUE)
    ax.set_ylabel(ylabel)
    if pct:
        ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.tick_params(axis="x", labelrotation=30)


def series(ax: Any, x, y, ylabel: str) -> None:
    ax.plot(x, y, color=BLUE)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=30)


def figure_png(draw: Callable[[Any], None], title: str, size: tuple[float, float] = (6, 3)) -> bytes:
    """A PNG of one Axes that ``draw`` fills, titled (the Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=100)
    draw(ax)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()

"""The one habit every figure follows: a ``matplotlib.figure.Figure`` built without pyplot.

Such a figure leaves a notebook's backend alone, is shown once when a cell returns it, is never
left open in a long process (no pyplot registry to leak into), and logs to MLflow as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def new_figure(width: float, height: float) -> Figure:
    """A white figure of ``width`` x ``height`` inches with constrained layout."""
    return Figure(figsize=(width, height), layout="constrained", facecolor="white")


def plain_log_axis(ax: Axes, axis: str = "y") -> None:
    """A log axis labelled 50, 100, 200 rather than 5 x 10^1."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_formatter(NullFormatter())

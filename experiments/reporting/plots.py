"""The look every figure of a results folder shares (labels, grid, legend)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["finish_axes"]


def finish_axes(ax: Any, xlabel: str, ylabel: str, title: str | None = None, *,
                title_size: float | None = None,
                legend: Mapping[str, Any] | None = None) -> None:
    """Label ``ax``, draw the light grid of every semcom figure and its legend (``legend``:
    :meth:`matplotlib.axes.Axes.legend` keyword arguments, e.g. ``{"fontsize": 7}``)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title, **({} if title_size is None else {"fontsize": title_size}))
    ax.grid(True, alpha=0.3)
    ax.legend(**(legend or {}))

"""PNG figures of a task run (matplotlib is imported only when a figure is drawn, Agg backend).

Each helper returns the saved path, or ``None`` when matplotlib is not installed (the figure is
an illustration of rows that are in the results file anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["bar_chart", "contact_sheet", "line_chart"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no figure (pip install matplotlib)")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(path: Path, groups: Sequence[str], series: dict[str, Sequence[float]], *,
              ylabel: str, title: str, log: bool = False) -> Path | None:
    """Grouped bars: one group per entry of ``groups``, one bar per ``series`` entry."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) * max(1, len(series)) ** 0.5), 3.6))
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, values, width, label=label)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def line_chart(path: Path, series: dict[str, Sequence[tuple[float, float]]], *, xlabel: str,
               ylabel: str, title: str, log: bool = False) -> Path | None:
    """One line per ``series`` entry, each a sequence of ``(x, y)`` points."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, points in series.items():
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def contact_sheet(path: Path, images: Sequence[Path], columns: int = 3) -> Path | None:
    """The PNGs ``images`` tiled into one figure, each titled with its file name (a recorded
    task keeps one figure, however many its run drew)."""
    plt = _pyplot()
    if plt is None or not images:
        return None
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, min(columns, len(images)), squeeze=False,
                             figsize=(4.5 * min(columns, len(images)), 3.6 * rows))
    for ax in axes.flat:
        ax.axis("off")
    for ax, image in zip(axes.flat, images):
        ax.imshow(plt.imread(image))
        ax.set_title(Path(image).stem, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

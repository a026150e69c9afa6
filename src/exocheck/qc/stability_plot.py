"""Plot of a shelf-life estimate: data per batch, fitted lines, confidence limits, limit, expiry."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from exocheck.qc.stability_records import ShelfLifeResult
from exocheck.records import atomic_write_bytes


def plot_shelf_life(
    result: ShelfLifeResult,
    data: pd.DataFrame,
    *,
    time_col: str,
    response_col: str,
    batch_col: str | None = None,
    title: str | None = None,
    ax=None,
) -> Figure:
    """Attribute against time per batch with the fitted lines, the confidence limit(s) of the
    mean, the acceptance limit(s) and the shelf life (solid) / supported shelf life (dotted)."""
    if ax is None:
        fig = Figure(figsize=(7.0, 4.5), dpi=110)  # no pyplot: no global state, any backend
        ax = fig.subplots()
    else:
        fig = ax.figure
    ends = [result.longest_time]
    ends += [v for v in (result.shelf_life, result.supported_shelf_life) if v is not None]
    t = np.linspace(0.0, 1.1 * max(ends), 400)
    colours = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    batches = result.batches
    colour_of = {b: colours[i % len(colours)] for i, b in enumerate(batches)}
    groups = data.groupby(batch_col, sort=False) if batch_col else [(batches[0], data)]
    for batch, group in groups:
        ax.plot(
            group[time_col],
            group[response_col],
            "o",
            ms=4,
            color=colour_of.get(str(batch), "k"),
            label=str(batch),
        )
    sides = [s for s in ("lower", "upper") if getattr(result, f"{s}_limit") is not None]
    for line in result.lines:
        colour = "0.3" if line.batch == "all" else colour_of.get(line.batch, "k")
        ax.plot(t, result.to_original(line.mean(t)), "-", color=colour, lw=1.2)
        for side in sides:
            bound = result.to_original(line.bound(t, side, result.one_sided_quantile))
            ax.plot(t, bound, "--", color=colour, lw=0.9)
    for side in sides:
        ax.axhline(getattr(result, f"{side}_limit"), color="crimson", lw=1.2)
    if result.shelf_life is not None:
        ax.axvline(result.shelf_life, color="k", lw=1.0)
        ax.annotate(
            f"shelf life {result.shelf_life:.3g} {result.time_unit}",
            (result.shelf_life, 0.02),
            xycoords=("data", "axes fraction"),
            rotation=90,
            ha="right",
            va="bottom",
            fontsize=8,
        )
    if result.supported_shelf_life != result.shelf_life:
        ax.axvline(result.supported_shelf_life, color="k", lw=1.0, ls=":")
        ax.annotate(
            f"supported {result.supported_shelf_life:.3g} {result.time_unit}",
            (result.supported_shelf_life, 0.02),
            xycoords=("data", "axes fraction"),
            rotation=90,
            ha="right",
            va="bottom",
            fontsize=8,
        )
    level = round(100 * result.one_sided_quantile, 1)
    ax.set_xlabel(f"time ({result.time_unit})")
    ax.set_ylabel(response_col)
    ax.set_title(title or f"{response_col}: model {result.model}, {level:g} % one-sided limit(s)")
    ax.legend(fontsize=8, title=batch_col, title_fontsize=8)
    ax.set_xlim(0, t[-1])
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` as PNG atomically (never a partial file)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(Path(path), buffer.getvalue())

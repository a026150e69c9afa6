"""Figures of the certificate of analysis, as SVG text (matplotlib, no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from exocheck.qc.comparability import ControlChart
from exocheck.records import SizeDistribution

_STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
}


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def size_distribution_svg(
    dist: SizeDistribution,
    windows_nm: list[tuple[float, float, str]],
    markers_nm: dict[str, float] | None = None,
) -> str:
    """Number distribution (per nm) with the specification windows shaded."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.2, 2.2))
        edges = np.asarray(dist.bin_edges_nm, dtype=float)
        density = np.asarray(dist.density, dtype=float) / np.diff(edges)
        ax.stairs(density, edges, fill=True, color="#4c72b0", alpha=0.8, label="this lot")
        if len(dist.density_ci_low) == len(dist.density) and len(dist.density):
            widths = np.diff(edges)
            ax.stairs(
                np.asarray(dist.density_ci_high) / widths,
                edges,
                baseline=np.asarray(dist.density_ci_low) / widths,
                fill=True,
                color="#1f3b73",
                alpha=0.25,
                lw=0,
                label="95 % band",
            )
        # each specification window is a bar of its own below the axis: nothing overlaps it, so
        # it shows exactly the colour of its legend entry
        colours = ["#2ca02c", "#ff7f0e", "#9467bd"]
        row = 0.08 * float(density.max(initial=0.0) or 1.0)
        for i, (low, high, label) in enumerate(windows_nm):
            ax.broken_barh(
                [(low, high - low)], (-(i + 1) * row * 1.25, row), color=colours[i % 3], label=label
            )
        top = density.max(initial=0.0) * 1.25 or 1.0  # the band may rise above: it is clipped
        if windows_nm:
            ax.set_ylim(-(len(windows_nm) + 0.3) * row * 1.25, top)
            ax.set_yticks([y for y in ax.get_yticks() if 0 <= y <= top])
            ax.axhline(0, color="k", lw=0.6)
        else:
            ax.set_ylim(0, top)
        _mark_quantiles(ax, markers_nm or {})
        upper = float(
            edges[np.searchsorted(np.cumsum(dist.density), 0.999) if len(dist.density) else -1]
        )
        ax.set_xlim(0, max(upper * 1.1, max((w[1] for w in windows_nm), default=0) * 1.05))
        ax.set_xlabel("diameter (nm)")
        ax.set_ylabel("fraction per nm")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        return _svg(fig)


def _mark_quantiles(ax, markers_nm: dict[str, float]) -> None:
    """Dashed lines at D10/D50/D90/mode, their labels one per row from the top so that close
    values (a narrow peak) never print over each other; each label states its value."""
    for i, (name, value) in enumerate(sorted(markers_nm.items(), key=lambda kv: kv[1])):
        ax.axvline(value, color="k", lw=0.7, ls="--", zorder=4)
        ax.annotate(
            f"{name} {value:.0f} nm",
            (value, 0.98 - 0.11 * i),
            xycoords=("data", "axes fraction"),
            fontsize=6.5,
            ha="left",
            va="top",
            xytext=(2, 0),
            textcoords="offset points",
            zorder=5,
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
        )


def claim_svg(
    value: float,
    interval: tuple[float, float] | None,
    claim: float,
    tolerance_percent: float,
    unit: str,
) -> str:
    """Particles per unit with its interval against the label claim and its tolerance band."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.2, 1.3))
        low, high = claim * (1 - tolerance_percent / 100), claim * (1 + tolerance_percent / 100)
        ax.axvspan(
            low, high, color="#2ca02c", alpha=0.15, label=f"label claim ± {tolerance_percent:g} %"
        )
        ax.axvline(claim, color="#2ca02c", lw=1.2, label="label claim")
        err = None
        if interval is not None:
            err = [[value - interval[0]], [interval[1] - value]]
        ax.errorbar(
            [value],
            [0],
            xerr=err,
            fmt="o",
            color="k",
            capsize=4,
            label="this lot (95 % interval)" if interval else "this lot",
        )
        span = [low, high, value, *(interval or ())]
        pad = 0.1 * (max(span) - min(span))
        ax.set_xlim(min(span) - pad, max(span) + pad)
        ax.set_yticks([])
        ax.set_xlabel(unit)
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.55), ncol=3, fontsize=7, frameon=False
        )
        ax.spines[["top", "right", "left"]].set_visible(False)
        return _svg(fig)


def control_chart_svg(
    chart: ControlChart,
    highlight: str | None,
    unit: str,
    limits: tuple[float | None, float | None] = (None, None),
    with_limits: bool = True,
) -> str:
    """Individuals chart of the product's lots: centre, ±1/2/3σ (never below zero; only
    ``with_limits``, i.e. from enough lots), specification limits, rule violations in red, this
    lot circled; a legend names every line drawn."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.2, 2.3))
        x = np.arange(len(chart.values))
        ax.plot(x, chart.values, "-o", color="#4c72b0", ms=4, lw=1, label="lots")
        ax.axhline(chart.center, color="k", lw=0.8, label="mean")
        if with_limits:
            for k, style in ((1, ":"), (2, "-."), (3, "--")):
                for sign in (1, -1):
                    level = chart.center + sign * k * chart.sigma
                    if level >= 0:  # a count has no negative values
                        ax.axhline(
                            level,
                            color="grey",
                            lw=0.6,
                            ls=style,
                            label=f"±{k}σ" if sign == 1 else None,
                        )
        for i, bound in enumerate(b for b in limits if b is not None):
            ax.axhline(
                bound, color="#d62728", lw=0.8, alpha=0.6, label="specification" if i == 0 else None
            )
        flagged = sorted({v.index for v in chart.violations})
        if flagged:
            ax.plot(
                x[flagged],
                np.asarray(chart.values)[flagged],
                "o",
                color="#d62728",
                ms=6,
                label="Western Electric rule",
            )
        if highlight in chart.labels:
            i = chart.labels.index(highlight)
            ax.plot([i], [chart.values[i]], "o", mfc="none", mec="k", ms=10, label="this lot")
        ax.set_xticks(x, chart.labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        return _svg(fig)

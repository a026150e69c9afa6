"""Figures of the certificate of analysis, as SVG text (matplotlib, no display needed)."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import Bbox

from exocheck.qc.comparability import ControlChart
from exocheck.records import SizeDistribution

_STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
}


#: width of every figure (inches): the plot and its legend at the right fit the A4 page's text
#: width (182 mm) at their natural size, so that every figure prints its text at the same size
FIGURE_WIDTH_IN = 7.0
#: the plot's share of that width; the legend takes the rest
_PLOT_RIGHT = 0.70
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
#: quantile labels: font size, height of their leaders above the plot, least gap between
#: two labels (points)
_LABEL_PT = 6.5
_LEADER_PT = 16.0
_LABEL_GAP_PT = 3.0


def _svg(fig: Figure) -> str:
    """The figure as SVG text: trimmed to its drawing at top and bottom, but always the full
    figure width (wider only where a label or legend runs past it), so that every figure of the
    certificate, drawn at the same width, prints its text at the same size."""
    tight = fig.get_tightbbox(fig.canvas.get_renderer())
    box = Bbox(
        [
            [min(0.0, tight.x0), tight.y0 - 0.04],
            [max(fig.get_figwidth(), tight.x1), tight.y1 + 0.04],
        ]
    )
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches=box)
    plt.close(fig)
    return buffer.getvalue()


def _figure(height_in: float) -> tuple[Figure, Axes]:
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, height_in))
    fig.subplots_adjust(left=0.1, right=_PLOT_RIGHT)
    return fig, ax


def _legend(ax: Axes) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)


def plain_axis(ax: Axes, which: str, label: str) -> int:
    """Tick labels of ``ax``'s ``which`` axis (``"x"`` or ``"y"``) as plain numbers, never with
    an offset text ("1e11" at the axis end): values of 10⁴ and more (or below 10⁻³) are divided
    by a power of ten that the axis label states, e.g. "particles per vial (×10¹¹)". Call it
    once the axis limits are final; returns the exponent (0: unscaled)."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    low, high = ax.get_xlim() if which == "x" else ax.get_ylim()
    biggest = max(abs(low), abs(high))
    exponent = math.floor(math.log10(biggest)) if biggest > 0 else 0
    if -3 <= exponent < 4:
        exponent = 0
    scale = 10.0**exponent
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / scale + 0.0:.4g}"))
    if exponent:
        label = f"{label} (×10{str(exponent).translate(_SUPERSCRIPT)})"
    (ax.set_xlabel if which == "x" else ax.set_ylabel)(label)
    return exponent


def size_distribution_figure(
    dist: SizeDistribution,
    windows_nm: list[tuple[float, float, str]],
    markers_nm: dict[str, float] | None = None,
    detection_limit_nm: float | None = None,
) -> Figure:
    """Number distribution (per nm) with the specification windows as bars below the axis, the
    sizes below the detection limit greyed (not seen, not counted) and D10/D50/D90/mode marked,
    their labels above the plot where none covers another. Call inside ``plt.rc_context``."""
    fig, ax = _figure(2.3)
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
    if detection_limit_nm is not None:
        ax.fill_betweenx(
            [0, top],
            0,
            detection_limit_nm,
            color="#888888",
            alpha=0.25,
            lw=0,
            label=f"not detected (< {detection_limit_nm:.0f} nm)",
        )
    upper = float(
        edges[np.searchsorted(np.cumsum(dist.density), 0.999) if len(dist.density) else -1]
    )
    ax.set_xlim(0, max(upper * 1.1, max((w[1] for w in windows_nm), default=0) * 1.05))
    ax.set_xlabel("diameter (nm)")
    plain_axis(ax, "y", "fraction per nm")
    ax.spines[["top", "right"]].set_visible(False)
    _legend(ax)
    mark_quantiles(ax, markers_nm or {})
    return fig


def size_distribution_svg(
    dist: SizeDistribution,
    windows_nm: list[tuple[float, float, str]],
    markers_nm: dict[str, float] | None = None,
    detection_limit_nm: float | None = None,
) -> str:
    """:func:`size_distribution_figure` as SVG text."""
    with plt.rc_context(_STYLE):
        return _svg(size_distribution_figure(dist, windows_nm, markers_nm, detection_limit_nm))


def mark_quantiles(ax: Axes, markers_nm: dict[str, float]) -> list[Text]:
    """Dashed lines at D10/D50/D90/mode, each labelled with its value in one row above the
    plot, in the order of the values. Each label's width is measured with the renderer; a label
    that would run into its left neighbour is moved right (and, at the right end, the row is
    moved back left), so no label covers another however close the values (a narrow peak); a
    thin leader joins each label to the top of its line. Call once the x limits are final.
    Returns the labels."""
    renderer = ax.figure.canvas.get_renderer()
    points_per_px = 72.0 / ax.figure.dpi
    items = sorted(markers_nm.items(), key=lambda kv: kv[1])
    labels: list[Text] = []
    for name, value in items:
        ax.axvline(value, color="k", lw=0.7, ls="--", zorder=4)
        labels.append(
            ax.annotate(
                f"{name} {value:.0f} nm",
                (value, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(0, _LEADER_PT),
                textcoords="offset points",
                fontsize=_LABEL_PT,
                ha="center",
                va="bottom",
                annotation_clip=False,
            )
        )
    if not labels:
        return labels
    gap_px = _LABEL_GAP_PT / points_per_px
    wanted = [ax.transData.transform((value, 0.0))[0] for _, value in items]
    widths = [label.get_window_extent(renderer).width for label in labels]
    left: list[float] = []
    for i, (centre, width) in enumerate(zip(wanted, widths, strict=True)):
        start = centre - width / 2  # sweep right: no label starts before its neighbour ends
        left.append(max(start, left[-1] + widths[i - 1] + gap_px) if i else start)
    limit = ax.get_window_extent(renderer).x1 + widths[-1] / 2
    for i in reversed(range(len(left))):  # sweep back left where the row runs past the end
        right_end = limit if i == len(left) - 1 else left[i + 1] - gap_px
        left[i] = min(left[i], right_end - widths[i])
    for label, (_, value), centre, start, width in zip(
        labels, items, wanted, left, widths, strict=True
    ):
        shift_pt = (start + width / 2 - centre) * points_per_px
        label.xyann = (shift_pt, _LEADER_PT)
        ax.annotate(
            "",
            (value, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(shift_pt, _LEADER_PT),
            textcoords="offset points",
            annotation_clip=False,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "k", "shrinkA": 0, "shrinkB": 0},
        )
    return labels


def claim_figure(
    value: float,
    interval: tuple[float, float] | None,
    claim: float,
    tolerance_percent: float,
    unit: str,
) -> Figure:
    """Particles per unit with its interval against the label claim and its tolerance band.
    Call inside ``plt.rc_context``."""
    fig, ax = _figure(1.05)
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
    plain_axis(ax, "x", unit)
    _legend(ax)
    ax.spines[["top", "right", "left"]].set_visible(False)
    return fig


def claim_svg(
    value: float,
    interval: tuple[float, float] | None,
    claim: float,
    tolerance_percent: float,
    unit: str,
) -> str:
    """:func:`claim_figure` as SVG text."""
    with plt.rc_context(_STYLE):
        return _svg(claim_figure(value, interval, claim, tolerance_percent, unit))


def control_chart_figure(
    chart: ControlChart,
    highlight: str | None,
    unit: str,
    limits: tuple[float | None, float | None] = (None, None),
    with_limits: bool = True,
) -> Figure:
    """Individuals chart of the product's lots: centre, ±1/2/3σ (never below zero; only
    ``with_limits``, i.e. from enough lots), specification limits, rule violations in red, this
    lot circled; a legend names every line drawn. Call inside ``plt.rc_context``."""
    fig, ax = _figure(2.1)
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
    if len(x) == 1:
        ax.set_xlim(-0.5, 0.5)
    ax.set_ylim(bottom=0)
    plain_axis(ax, "y", unit)
    _legend(ax)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def control_chart_svg(
    chart: ControlChart,
    highlight: str | None,
    unit: str,
    limits: tuple[float | None, float | None] = (None, None),
    with_limits: bool = True,
) -> str:
    """:func:`control_chart_figure` as SVG text."""
    with plt.rc_context(_STYLE):
        return _svg(control_chart_figure(chart, highlight, unit, limits, with_limits))

"""Plots of an NTA result (matplotlib, non-interactive)."""

from __future__ import annotations

import io

import numpy as np

from exocheck.records import Measurement


def size_distribution_png(measurement: Measurement, title: str | None = None) -> bytes:
    """PNG of the number-weighted size distribution with D10/D50/D90 marked."""
    # The object-oriented API without pyplot: no global figure state and no GUI backend to import
    # (pyplot alone costs about 0.3 s of start-up).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = measurement.size
    if not size.density:  # nothing sized (a clean fluorescence control): the axes, and why
        return _empty_png(title or measurement.sample or "Size distribution")
    edges = np.asarray(size.bin_edges_nm)
    density = np.asarray(size.density) / np.diff(edges)  # fraction per nm
    centres = np.sqrt(edges[:-1] * edges[1:])
    fig = Figure(figsize=(7, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    widths = np.diff(edges)
    if len(size.density_ci_low) == len(size.density) and len(size.density):
        ax.stairs(
            np.asarray(size.density_ci_high) / widths,
            edges,
            baseline=np.asarray(size.density_ci_low) / widths,
            fill=True,
            color="tab:blue",
            alpha=0.2,
            lw=0,
            label="pointwise 95 % band",
        )
    ax.fill_between(centres, density, step="mid", alpha=0.35, color="tab:blue")
    ax.plot(centres, density, drawstyle="steps-mid", color="tab:blue", lw=1.2, label="estimate")
    ax.set_ylim(0, 1.25 * float(density.max(initial=0.0) or 1.0))
    for peak in size.peaks:
        support = "" if peak.support is None else f", support {peak.support:.0%}"
        ax.annotate(
            f"peak {peak.diameter_nm:.0f} nm ({peak.fraction:.0%}{support})",
            (peak.diameter_nm, float(np.interp(peak.diameter_nm, centres, density))),
            xytext=(4, -14),
            textcoords="offset points",
            fontsize=7,
            color="tab:blue",
        )
    # one row per label, so that close values (a narrow peak) never print over each other
    for row, (key, style) in enumerate((("d10_nm", ":"), ("d50_nm", "-"), ("d90_nm", ":"))):
        value = getattr(size, key)
        if value:
            ax.axvline(value, color="k", ls=style, lw=1)
            ax.text(
                value,
                ax.get_ylim()[1] * (0.97 - 0.07 * row),
                f" {key[:3].upper()} {value:.0f} nm",
                fontsize=8,
                va="top",
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )
    ax.set_xlabel("Hydrodynamic diameter (nm)")
    ax.set_ylabel("Number fraction per nm")
    conc = measurement.concentration.particles_per_ml
    tag = "" if measurement.concentration.calibrated else " (uncalibrated)"
    heading = title or measurement.sample or "Size distribution"
    if conc:
        heading += f" — {conc:.3g} particles/mL{tag}"
    ax.set_title(heading, fontsize=10)
    hi = size.d90_nm * 2.5 if size.d90_nm else edges[-1]
    ax.set_xlim(0, min(edges[-1], hi))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _empty_png(heading: str) -> bytes:
    """PNG of empty size axes that say no particle was sized."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.text(0.5, 0.5, "too few tracks to size", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("Hydrodynamic diameter (nm)")
    ax.set_ylabel("Number fraction per nm")
    ax.set_title(heading, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def labelled_fraction_png(measurement: Measurement) -> bytes:
    """PNG of the labelled fraction against size (95 % intervals), over the concentrations."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lab = measurement.labelled
    if lab is None:
        raise ValueError("the measurement has no labelled-fraction result")
    fig = Figure(figsize=(7, 5.5), dpi=120)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    lo = np.array([c.low_nm for c in lab.classes])
    hi = np.array([c.high_nm for c in lab.classes])
    mid = np.sqrt(lo * hi)
    frac = np.array([np.nan if c.fraction is None else 100 * c.fraction for c in lab.classes])
    ci_lo = np.array([np.nan if c.ci is None else 100 * c.ci.low for c in lab.classes])
    ci_hi = np.array([np.nan if c.ci is None else 100 * c.ci.high for c in lab.classes])
    top.errorbar(
        mid,
        frac,
        yerr=[np.nan_to_num(frac - ci_lo), np.nan_to_num(ci_hi - frac)],
        xerr=[mid - lo, hi - mid],
        fmt="o",
        color="tab:green",
        capsize=3,
        label="labelled fraction per size class (95 % interval)",
    )
    top.axhspan(100 * lab.ci.low, 100 * lab.ci.high, color="tab:green", alpha=0.12, lw=0)
    top.axhline(
        100 * lab.fraction,
        color="tab:green",
        ls="--",
        lw=1,
        label=f"overall {100 * lab.fraction:.2f} % "
        f"({100 * lab.ci.low:.2f}-{100 * lab.ci.high:.2f} %)",
    )
    top.set_ylabel("Labelled (%)")
    top.set_ylim(0, 1.3 * float(np.nanmax(np.append(ci_hi, 100 * lab.ci.high))))
    top.grid(alpha=0.3)
    top.legend(fontsize=7, frameon=False, loc="upper center", ncols=2)
    marker = f" — {lab.marker}" if lab.marker else ""
    top.set_title(f"{measurement.sample or 'Sample'}{marker}: labelled fraction", fontsize=10)
    total = np.array([c.total_per_ml for c in lab.classes])
    labelled = np.array([c.labelled_per_ml for c in lab.classes])
    edges = np.concatenate([lo, hi[-1:]])
    bottom.stairs(total, edges, color="tab:blue", label="all particles (scatter)")
    bottom.stairs(labelled, edges, color="tab:green", fill=True, alpha=0.4, label="labelled")
    bottom.set_yscale("log")
    bottom.set_ylabel("Particles/mL per class")
    bottom.set_xlabel("Hydrodynamic diameter (nm)")
    bottom.set_xscale("log")
    bottom.set_xticks(edges, [f"{e:g}" for e in edges])
    bottom.set_xticks([], minor=True)
    bottom.grid(alpha=0.3, which="both")
    bottom.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()

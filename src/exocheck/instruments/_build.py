"""Pieces every importer uses to assemble a :class:`~exocheck.records.Measurement`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exocheck.errors import FormatError
from exocheck.instruments._text import density_from_weights, moments_from_bins
from exocheck.records import SizeDistribution, sha256_file


def file_sha256(path: Path) -> str:
    """SHA-256 of an input file, with a FormatError naming it if it cannot be read."""
    try:
        return sha256_file(path)
    except OSError as exc:
        raise FormatError(f"{path}: cannot read ({exc.strerror or exc})") from None


def distribution(
    edges_nm: np.ndarray,
    weights: np.ndarray,
    stated: dict[str, float | None],
    quantiles: list[float | None],
) -> SizeDistribution:
    """A SizeDistribution: normalised bins plus the instrument's stated statistics.

    ``stated`` holds the instrument's own values (``mean_nm``, ``mode_nm``, ``sd_nm``,
    ``d10_nm``, ``d50_nm``, ``d90_nm``); a statistic the instrument does not state is filled
    from the bins (``quantiles`` by the instrument's own definition; moments from the centres).
    """
    edges_nm = np.asarray(edges_nm, dtype=float)
    weights = np.asarray(weights, dtype=float)
    density = density_from_weights(weights) if edges_nm.size == weights.size + 1 else []
    values: dict[str, float | None] = {}
    if density:
        centres = 0.5 * (edges_nm[:-1] + edges_nm[1:])
        mean, sd, mode = moments_from_bins(centres, weights)
        values = {
            "mean_nm": mean,
            "sd_nm": sd,
            "mode_nm": mode,
            "d10_nm": quantiles[0],
            "d50_nm": quantiles[1],
            "d90_nm": quantiles[2],
        }
    for key, value in stated.items():
        if value is not None:
            values[key] = value
    return SizeDistribution(
        bin_edges_nm=[float(e) for e in edges_nm] if density else [],
        density=density,
        **values,
    )


def computed_from_bins(
    centres_nm: np.ndarray, weights: np.ndarray, quantiles: list[float | None]
) -> dict[str, float | None]:
    """The statistics exocheck derives from the bins (for cross-checking stated values)."""
    mean, sd, mode = moments_from_bins(centres_nm, weights)
    return {
        "mean_nm": mean,
        "sd_nm": sd,
        "mode_nm": mode,
        "d10_nm": quantiles[0],
        "d50_nm": quantiles[1],
        "d90_nm": quantiles[2],
    }


def disagrees(stated: float | None, computed: float | None, rel: float = 0.1) -> bool:
    """True when a stated statistic is far from the one the bins give (a mis-read column)."""
    if stated is None or computed is None:
        return False
    return abs(stated - computed) > max(2.0, rel * abs(stated))

"""Number-weighted size distribution by penalised maximum likelihood over all tracks.

The histogram of per-track sizes is broadened by finite track length: a track of n steps estimates D
only to about 1/√n. Following J. G. Walker (Meas. Sci. Technol. 23, 065605, 2012), the distribution
is instead found as the mixture of diameters that makes the observed tracks most probable.

Each track contributes the likelihood of its mean squared single-frame displacement per axis, m,
given a diameter d. With D(d) from Stokes–Einstein, exposure τ, frame interval Δt and the track's
localisation variance σ² (population model, :mod:`exocheck.nta.diffusion`)::

    E[m] = 2 D (Δt − τ/3) + 2 σ²

and m follows a gamma distribution of shape k = n / (1 + 2ρ²) and mean E[m], n being the number of
steps (two axes) and ρ = (Dτ/3 − σ²) / E[m] the correlation of consecutive steps that blur and noise
introduce.

The unpenalised maximum-likelihood mixing distribution is discrete (Lindsay, Ann. Stat. 11, 86,
1983): run to convergence it piles the weight into a few spikes, which a reader takes for
subpopulations. The log-density θ on a log-diameter grid is therefore estimated by maximising

    Σᵢ cᵢ log Σⱼ Lᵢⱼ softmax(θ)ⱼ  −  (λ/2) ∫ (θ''')² d(ln d)

(Silverman, Ann. Stat. 10, 795, 1982: a third-derivative penalty on the log-density, whose null
space is the lognormal family, so strong smoothing shrinks towards a lognormal of any position and
width, never towards a flat or a broadened curve). The weight λ is chosen by the data: K-fold
cross-validated log-likelihood over tracks, held out in blocks of the capture's time (folds of
equal size, :func:`balanced_folds`), over the whole path of λ with warm-started Newton solves, and
the one-standard-error rule; each extra peak must pass a held-out likelihood-ratio test, and a
single population is drawn as the smoothest one-peak fit (:func:`_select_smoothing`). Tracks
with the same likelihood row up to a fraction of its width are solved as one class with a count
(:func:`track_classes`), so the cost per Newton step grows with the number of classes, not
tracks. Uncertainty: a bootstrap over tracks (summary statistics, peak support, and the density's
pointwise band).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from exocheck.errors import AnalysisError
from exocheck.physics import diameter_nm_from_diffusion, diffusion_um2_s

FLOOR_DIAMETER_NM = 10.0
"""Lowest grid diameter when no detection limit is known: a 10 nm scatterer is far below what any
scattering NTA camera detects, so the grid never cuts off a real population."""

MAX_DIAMETER_NM = 50_000.0
"""Highest grid diameter (50 µm: sedimenting particles, never a stable Brownian track)."""

LIMIT_MARGIN = 0.85
"""The grid starts at this fraction of the detection limit: the limit is estimated from the tracks'
brightness, which scatters by about ±15 % from particle to particle (orientation, focus)."""


@dataclass(frozen=True)
class SizingSettings:
    """Settings of the size-distribution solver.

    Attributes
    ----------
    grid_step : float
        Spacing of the log-diameter grid (0.03 = 3 % steps). The penalty, not the grid, sets the
        smoothness; 3 % is below the resolution of the longest tracks (≈ 1/√n ≥ 5 %).
    smoothing : float or None
        Penalty weight λ (per track). ``None`` (default) lets cross-validation choose it.
    n_bootstrap : int
        Bootstrap resamples for confidence intervals and peak support (0 = none).
    seed : int
        Seed of the bootstrap.
    min_peak_support : float
        Share of bootstrap resamples that must show a peak for it to be reported.
    class_width : float
        Largest shift of a track's likelihood row, as a fraction of the row's width, when tracks
        are grouped into classes (:func:`track_classes`). 0 solves every track on its own row.
    """

    grid_step: float = 0.03
    smoothing: float | None = None
    n_bootstrap: int = 40
    seed: int = 0
    min_peak_support: float = 0.8
    class_width: float = 0.1


@dataclass
class Peak:
    """A peak of the number distribution."""

    diameter_nm: float
    fraction: float  # number fraction in the peak's basin (between the neighbouring minima)
    support: float | None  # share of bootstrap resamples with a peak in that basin


@dataclass
class SizeResult:
    """A size distribution on a log-spaced grid, with summary statistics and intervals."""

    diameter_nm: np.ndarray  # grid points
    bin_edges_nm: np.ndarray
    weights: np.ndarray  # number fraction per grid point, sums to 1
    stats: dict[str, float]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    track_diameter_nm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    weights_ci_low: np.ndarray = field(default_factory=lambda: np.zeros(0))
    weights_ci_high: np.ndarray = field(default_factory=lambda: np.zeros(0))
    peaks: list[Peak] = field(default_factory=list)
    smoothing: float = float("nan")  # the λ used
    effective_df: float = float("nan")  # effective degrees of freedom of the fit
    n_classes: int = 0
    below_range_fraction: float = 0.0  # share of the tracks' weight found below the grid's start
    # each track's posterior over ``posterior_grid_nm`` is ``class_posterior[track_class[i]]``
    # (tracks of one class share it): for counting tracks into size classes by probability
    posterior_grid_nm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    class_posterior: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    track_class: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def log_likelihood_matrix(
    msd1_um2: np.ndarray,
    n_steps: np.ndarray,
    sigma2_um2: np.ndarray,
    diameter_nm: np.ndarray,
    frame_s: float,
    exposure_s: float,
    temperature_c: float,
    viscosity_mpa_s: float | None,
    lag: int = 1,
    offset_s: float | None = None,
) -> np.ndarray:
    """log p(m_i | d_j) for every track i and grid diameter j (up to a constant per track).

    With ``lag`` > 1, m is the mean squared ``lag``-frame displacement (overlapping), its expected
    value 2D(lag·Δt − t₀) + 2σ² with t₀ = ``offset_s`` (τ/3 by default), and its gamma shape
    n·3L/(2L² + 1) from the variance of overlapping displacements (Qian, Sheetz & Elson,
    Biophys. J. 60, 910, 1991).
    """
    d = np.asarray(diffusion_um2_s(diameter_nm, temperature_c, viscosity_mpa_s))[None, :]
    s2 = np.clip(sigma2_um2, 0, None)[:, None]
    t0 = exposure_s / 3.0 if offset_s is None else offset_s
    expected = np.clip(2.0 * d * (lag * frame_s - t0) + 2.0 * s2, 1e-12, None)
    if lag == 1:
        rho = (d * exposure_s / 3.0 - s2) / expected
        k = n_steps[:, None] / (1.0 + 2.0 * rho**2)
    else:
        k = np.broadcast_to((n_steps * 3.0 * lag / (2.0 * lag**2 + 1.0))[:, None], expected.shape)
        k = np.clip(k, 0.5, None)
    m = np.clip(msd1_um2, 1e-12, None)[:, None]
    return k * np.log(k / expected) - log_gamma(k) + (k - 1.0) * np.log(m) - k * m / expected


def log_gamma(x: np.ndarray) -> np.ndarray:
    """ln Γ(x) for x > 0, elementwise, to ~10⁻¹⁰ (Stirling's series after raising x above 7).

    Plain numpy: the likelihood needs it on a tracks × grid array, and scipy.special costs a
    noticeable import on the analysis's path.
    """
    z = np.array(x, dtype=float)
    shift = np.zeros_like(z)
    for _ in range(7):
        small = z < 7.0
        if not small.any():
            break
        shift += np.where(small, np.log(z), 0.0)
        z = np.where(small, z + 1.0, z)
    inv = 1.0 / z
    inv2 = inv * inv
    series = inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)))
    return (z - 0.5) * np.log(z) - z + 0.5 * np.log(2 * np.pi) + series - shift


def track_classes(
    msd1_um2: np.ndarray,
    n_steps: np.ndarray,
    sigma2_um2: np.ndarray,
    track_weights: np.ndarray,
    class_width: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group tracks whose likelihood rows agree to within a fraction of their width.

    A row depends on m, on n and on the noise share s = 2σ²/m, and its width in ln m is about
    1/√n. Tracks share a class when n falls in the same bin (exact up to 16 steps, then bins of
    5 %: the row's width moves by 2.5 %), and ln m and s fall in the same bins of width
    ``class_width``/√n: every row moves by at most that fraction of its own width (a tenth by
    default), far below what the data resolve. Each class is solved with its members' mean
    statistics and summed weight.

    Returns the class statistics (m, n, σ², summed weight, summed squared weight) and each
    track's class index.
    """
    m = np.clip(np.asarray(msd1_um2, float), 1e-12, None)
    n = np.asarray(n_steps, float)
    s2 = np.clip(np.asarray(sigma2_um2, float), 0.0, None)
    w = np.asarray(track_weights, float)
    if class_width <= 0 or m.size == 0:
        return m, n, s2, w, w * w, np.arange(m.size)
    log_m = np.log(m)
    share = 2.0 * s2 / m
    n_pos = np.maximum(n, 0.5)
    n_key = np.where(n_pos <= 16, np.round(2 * n_pos), 100 + np.floor(np.log(n_pos / 16) / 0.05))
    n_low = np.where(n_pos <= 16, np.round(2 * n_pos) / 2, 16 * np.exp(0.05 * (n_key - 100)))
    width = class_width / np.sqrt(n_low)
    keys = np.stack(
        [n_key, np.floor(log_m / width), np.floor(np.minimum(share, 50.0) / width)], axis=1
    ).astype(np.int64)
    _, index = np.unique(keys, axis=0, return_inverse=True)
    index = index.ravel()
    n_cls = int(index.max()) + 1
    count = np.bincount(index, minlength=n_cls).astype(float)
    weight = np.bincount(index, weights=w, minlength=n_cls)
    squares = np.bincount(index, weights=w * w, minlength=n_cls)
    m_c = np.exp(np.bincount(index, weights=log_m, minlength=n_cls) / count)
    n_c = np.bincount(index, weights=n, minlength=n_cls) / count
    share_c = np.bincount(index, weights=share, minlength=n_cls) / count
    return m_c, n_c, 0.5 * share_c * m_c, weight, squares, index


UNEXPLAINED = 1e-3
"""Likelihood (relative to the best any diameter could give) below which a track counts as
unexplained rather than as evidence for the nearest grid diameter. A track's row is
``p(m | d) / max_d p(m | d) + UNEXPLAINED``: a track that fits somewhere in the grid is unchanged
(its row peaks near 1), while one that no diameter in the grid explains to within a factor 1000
(≈ 3.7 SD; linking errors, or a particle faster than the detection limit allows) becomes a flat
row that pulls the distribution nowhere, instead of piling weight at the grid's edge."""


def _best_log_likelihood(
    msd_um2: np.ndarray, n_steps: np.ndarray, sigma2_um2: np.ndarray, lag: int
) -> np.ndarray:
    """log p(m | d) at the diameter that explains each track best (E[m] = m, or 2σ² if larger)."""
    k = np.asarray(n_steps, float)
    if lag > 1:
        k = np.clip(k * 3.0 * lag / (2.0 * lag**2 + 1.0), 0.5, None)
    m = np.clip(msd_um2, 1e-12, None)
    expected = np.maximum(m, 2.0 * np.clip(sigma2_um2, 0, None))
    return k * np.log(k / expected) - log_gamma(k) + (k - 1.0) * np.log(m) - k * m / expected


def _roughness(theta: np.ndarray, penalty: np.ndarray) -> float:
    """θᵀPθ of :func:`_third_difference_penalty`, from the differences themselves.

    P's corner element is step⁻⁵, the scale of every term. Computing θᵀPθ as a quadratic form
    loses it to rounding when θ is close to the penalty's null space (a lognormal): its terms are
    large and cancel, and the noise hid the few log-likelihood units a bootstrap resample moves.
    """
    if theta.size < 4:
        return 0.0
    return float(penalty[0, 0] * np.sum(np.diff(theta, 3) ** 2))


def _penalty_gradient(theta: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """Pθ, from the third differences (as :func:`_roughness`, without cancellation)."""
    if theta.size < 4:
        return np.zeros_like(theta)
    return penalty[0, 0] * np.convolve(np.diff(theta, 3), [-1.0, 3.0, -3.0, 1.0])


def _third_difference_penalty(size: int, step: float) -> np.ndarray:
    """PᵀP of the third differences on a grid of spacing ``step``, scaled to approximate ∫θ'''²."""
    if size < 4:
        return np.zeros((size, size))
    d3 = np.diff(np.eye(size), n=3, axis=0) / step**3
    return d3.T @ d3 * step


@dataclass
class _Fit:
    theta: np.ndarray
    weights: np.ndarray
    loglik: float
    resp: np.ndarray  # responsibilities A (rows × grid)
    steps: int = 0
    curvature: tuple[np.ndarray, np.ndarray] | None = None  # see _curvature


def _softmax(theta: np.ndarray) -> np.ndarray:
    e = np.exp(theta - theta.max())
    return e / e.sum()


def _newton(
    like: np.ndarray,
    counts: np.ndarray,
    penalty: np.ndarray,
    lam: float,
    theta: np.ndarray,
    max_steps: int = 60,
    tol: float = 1e-7,
) -> _Fit:
    """Maximise the penalised log-likelihood in θ by damped Newton steps with a line search."""
    total = float(counts.sum())
    grid = like.shape[1]
    null = np.full((grid, grid), 1.0 / grid)  # softmax ignores constant shifts of θ

    def objective(t: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        w = _softmax(t)
        mix = like @ w
        value = float(counts @ np.log(np.maximum(mix, 1e-300))) - 0.5 * lam * _roughness(t, penalty)
        return value, w, mix

    value, w, mix = objective(theta)
    steps = 0
    while True:
        resp = like * (w / mix[:, None])
        a_c = resp.T @ counts
        root = resp * np.sqrt(counts)[:, None]  # AᵀCA as RᵀR: one symmetric product (syrk)
        gain = a_c - total * w
        # Fisher-type curvature (positive definite): the exact Hessian adds −diag(gain), which is
        # used where it keeps the matrix definite (near the optimum, for quadratic convergence).
        # Diagonal damping of an indefinite exact Hessian, scaled to the penalty's stiff
        # directions, stalled the soft ones (a lognormal's position and width) for good.
        fisher = root.T @ root - total * np.outer(w, w) + lam * penalty + null
        hess = fisher - np.diag(gain)
        try:
            curvature = _curvature(hess, penalty, lam, strict=True)
        except np.linalg.LinAlgError:
            hess = fisher
            curvature = _curvature(fisher, penalty, lam)
        if steps >= max_steps:
            break
        grad = gain - lam * _penalty_gradient(theta, penalty)
        step = _solve(curvature, grad)
        decrement = float(grad @ step)
        if decrement < tol * max(total, 1.0):
            break
        t = 1.0
        while True:
            candidate = theta + t * step
            new_value, new_w, new_mix = objective(candidate)
            if new_value >= value:
                break
            t *= 0.5
            if t < 1e-6:
                candidate = None
                break
        if candidate is None:  # no ascent along the step: at the optimum to rounding
            break
        theta, value, w, mix = candidate, new_value, new_w, new_mix
        steps += 1
    loglik = float(counts @ np.log(np.maximum(mix, 1e-300)))
    return _Fit(theta, w, loglik, resp, steps, curvature)


_EIGEN: dict[tuple[int, float], tuple[np.ndarray, np.ndarray]] = {}


def _curvature(
    hess: np.ndarray, penalty: np.ndarray, lam: float, strict: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(T, L)`` with TᵀHT = LLᵀ, T the penalty's eigenvectors scaled by 1/√(1 + λ·eigenvalue).

    A narrow peak makes H span sixteen orders of magnitude: the penalty's stiff directions against
    the data's soft curvature along its null space (a lognormal's position and width). Solved
    directly, the soft directions drown in rounding (bootstrap resamples of a bead standard did
    not move: a D50 interval of ±0.03 %). In this basis both weigh alike.
    """
    key = (penalty.shape[0], float(penalty[0, 0]) if penalty.size else 0.0)
    if key not in _EIGEN:
        values, vectors = np.linalg.eigh(penalty)
        _EIGEN[key] = (np.clip(values, 0.0, None), vectors)
    values, vectors = _EIGEN[key]
    transform = vectors / np.sqrt(1.0 + lam * values)
    scaled = transform.T @ hess @ transform
    scaled = 0.5 * (scaled + scaled.T)
    # strict: raise LinAlgError when H is not definite, instead of damping it
    return transform, np.linalg.cholesky(scaled) if strict else _cholesky(scaled)


def _solve(curvature: tuple[np.ndarray, np.ndarray], rhs: np.ndarray) -> np.ndarray:
    """H⁻¹·rhs through :func:`_curvature`."""
    transform, factor = curvature
    inner = np.linalg.solve(factor, transform.T @ rhs)
    return transform @ np.linalg.solve(factor.T, inner)


def _cholesky(matrix: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor, with the least diagonal damping that makes ``matrix`` definite."""
    scale = float(np.abs(np.diag(matrix)).max()) or 1.0
    damping = 0.0
    eye = np.eye(matrix.shape[0])
    while True:
        try:
            return np.linalg.cholesky(matrix + damping * eye)
        except np.linalg.LinAlgError:
            damping = max(2 * damping, 1e-10 * scale)


def _chord(
    like: np.ndarray,
    counts: np.ndarray,
    penalty: np.ndarray,
    lam: float,
    theta: np.ndarray,
    curvature: tuple[np.ndarray, np.ndarray],
    max_steps: int = 8,
    tol: float = 1e-6,
) -> np.ndarray:
    """Maximise the penalised log-likelihood for ``counts`` by steps with a fixed curvature
    (:func:`_curvature` of the full fit)."""
    total = float(counts.sum())

    def objective(t: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        w = _softmax(t)
        mix = like @ w
        return (
            float(counts @ np.log(np.maximum(mix, 1e-300))) - 0.5 * lam * _roughness(t, penalty),
            w,
            mix,
        )

    value, w, mix = objective(theta)
    for _ in range(max_steps):
        grad = like.T @ (counts / mix) * w - total * w - lam * _penalty_gradient(theta, penalty)
        step = _solve(curvature, grad)
        if float(grad @ step) < tol * max(total, 1.0):
            break
        t = 1.0
        while t > 1e-4:
            new_value, new_w, new_mix = objective(theta + t * step)
            if new_value >= value:
                theta, value, w, mix = theta + t * step, new_value, new_w, new_mix
                break
            t *= 0.5
        else:
            break
    return theta


def _cv_score(fit: _Fit, squares: np.ndarray) -> tuple[float, float]:
    """Approximate leave-one-track-out log-likelihood, and the effective degrees of freedom.

    CV(λ) = ℓ(θ̂) − tr(H⁻¹ J), J = Σᵢ wᵢ² sᵢsᵢᵀ with sᵢ = Aᵢ − w each track's score and wᵢ its
    weight (the Takeuchi correction; O'Sullivan 1988); ``squares`` holds Σ wᵢ² per class (the
    count, for unit weights). A track that counts twice weighs twice in the fit and four times in
    the score's variance, so weighting never makes the data look more informative than they
    are. The same trace is the fit's effective number of parameters.
    """
    w = fit.weights
    score = fit.resp - w[None, :]
    j = (score * squares[:, None]).T @ score
    try:
        trace = float(np.trace(_solve(fit.curvature, j)))
    except np.linalg.LinAlgError:
        trace = float("inf")
    return fit.loglik - trace, trace


def _paired_se(folds: np.ndarray, squares: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Standard error (over held-out tracks) of the difference of two summed held-out scores.

    ``folds`` and ``squares`` hold, per fold and class, the summed weights and squared weights
    of the held-out tracks: a score is Σ wᵢ dᵢ, whose variance over independent tracks is
    Σ wᵢ² var(d), not Σ wᵢ var(d) (with counting weights of mean 1, Σw²/Σw is 1.5–2 on EV
    captures, so weights taken as frequencies understated the SE by 20–40 %).
    """
    diff = a - b
    total = float(folds.sum())
    mean = float(np.sum(folds * diff)) / total
    n_eff = total**2 / max(float(squares.sum()), 1e-300)
    var = float(np.sum(squares * (diff - mean) ** 2)) * n_eff / max(n_eff - 1.0, 1.0)
    return float(np.sqrt(var))


def _select_smoothing(
    like: np.ndarray,
    counts: np.ndarray,
    folds: np.ndarray,
    penalty: np.ndarray,
    theta0: np.ndarray,
    count_peaks: Callable[[np.ndarray], int] | None = None,
    fold_squares: np.ndarray | None = None,
) -> tuple[_Fit, float]:
    """λ by K-fold cross-validation over the whole path, and the number of peaks by a test.

    ``folds`` holds, per fold, the (weighted) count of each class's tracks in that fold, and
    ``fold_squares`` their summed squared weights (``folds`` itself for unit weights). Every λ
    of :data:`SMOOTHING_PATH` is solved (warm-started from the next smoother one), so the choice
    never depends on where a search stopped: the cross-validated score is often flat over decades
    of λ, and a search that stopped on the first non-improving steps took whichever end of that
    plateau it met first. For each λ the tracks of each fold are predicted by a fit to the others
    (steps from the full fit at that λ, run to convergence). Held-out tracks are what
    exposes a fit that piles weight into spikes; the approximate (Takeuchi) correction does not,
    because as λ → 0 its local effective number of parameters is just the number of spikes.

    Three rules then pick the fit:

    1. *One standard error.* The smoothest λ whose score is within one standard error (over
       held-out tracks, of the paired difference) of the best, and within :data:`CV_TOLERANCE`
       at least (Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning*, §7.10).
    2. *A peak must pass a test.* When that fit has P > 1 peaks (``count_peaks``), the best
       score among the fits with P peaks is compared with the best among the fits with fewer:
       the extra peak is kept only if its cross-validated log-likelihood gain exceeds
       :data:`PEAK_TEST_Z` standard errors of the paired difference (a held-out likelihood-ratio
       test, one-sided at about 2 %, and at least :data:`CV_TOLERANCE`). Otherwise the choice is
       made again among the fits with fewer peaks. Out-of-sample gains need no correction for
       the extra parameters, so the test does not hang on a mixture's non-standard asymptotics.
    3. *One population is the smoothest one-peak fit.* When one peak remains, the smoothest fit
       of the path is returned: the lognormal family the penalty leaves free. Rough one-peak
       fits were preferred by the held-out score on EV captures (by 20-30 log-likelihood units
       at 1,800 tracks) and put D10 up to 11 % high and D90 low: per-track diffusion estimates
       are biased by size (on simulated EVs, small particles' steps 5-18 % short of Brownian,
       the largest 5 % long; blur streaks lower a fast particle's peak, so detection and
       brightness select its short steps), which compresses the data, and a rough fit follows
       the compression where the lognormal does not. Where more peaks passed, rule 1's fit
       among those with that many peaks is returned: the smoothest fit with the peaks (the
       critical smoothing of Silverman's test for modes) leaves them too faint for the
       bootstrap to support (a 2:1 mixture of 100 and 200 nm beads lost its second peak).
    """
    total = float(counts.sum())
    squares = folds if fold_squares is None else fold_squares
    fits: list[_Fit] = []
    lams: list[float] = []
    held: list[np.ndarray] = []
    theta = theta0
    for lam_per_track in SMOOTHING_PATH:
        lam = float(lam_per_track * total)
        fit = _newton(like, counts, penalty, lam, theta)
        theta = fit.theta
        rows = []
        for part in folds:
            # the fit to the other folds, by steps with the full fit's curvature run to
            # convergence (the other folds hold ~80 % of the tracks, so each step gains about
            # a decade): the fold's own optimum, at two products with the class matrix a step
            theta_k = _chord(like, counts - part, penalty, lam, fit.theta, fit.curvature, 30, 1e-7)
            rows.append(np.log(np.maximum(like @ _softmax(theta_k), 1e-300)))
        fits.append(fit)
        lams.append(lam)
        held.append(np.stack(rows))  # log-likelihood of each class's held-out tracks, per fold
    scores = np.array([float(np.sum(folds * h)) for h in held])
    peaks = np.array([count_peaks(f.theta) if count_peaks else 1 for f in fits])

    def one_se(candidates: list[int]) -> int:
        best = max(candidates, key=lambda k: scores[k])
        for k in candidates:  # smooth first
            if scores[k] >= scores[best] - max(
                _paired_se(folds, squares, held[k], held[best]), CV_TOLERANCE
            ):
                return k
        return best

    candidates = list(range(len(fits)))
    chosen = one_se(candidates)
    while peaks[chosen] > 1:
        fewer = [k for k in candidates if peaks[k] < peaks[chosen]]
        if not fewer:
            break
        same = [k for k in candidates if peaks[k] == peaks[chosen]]
        best_same = max(same, key=lambda k: scores[k])
        best_fewer = max(fewer, key=lambda k: scores[k])
        gain = scores[best_same] - scores[best_fewer]
        se = _paired_se(folds, squares, held[best_same], held[best_fewer])
        if gain > max(PEAK_TEST_Z * se, CV_TOLERANCE):
            break
        candidates = fewer
        chosen = one_se(candidates)
    if peaks[chosen] == 1:  # one population: the smoothest one-peak fit (a lognormal)
        chosen = min(k for k in candidates if peaks[k] == 1)
    return fits[chosen], lams[chosen]


SMOOTHING_PATH = np.geomspace(1e-2, 1e-10, 9)
"""λ per track scanned by the cross-validation, smooth to rough. At 10⁻² per track a fit is
a lognormal to within its noise; below 10⁻¹⁰ the penalty no longer restrains the spikes of the
discrete maximum-likelihood solution, which the held-out tracks always reject."""

PEAK_TEST_Z = 2.0
"""Standard errors by which a fit with more peaks must beat the best fit with fewer in held-out
log-likelihood (one-sided, about 2 % false peaks when the tracks are independent)."""


CV_FOLDS = 5
"""Folds of the cross-validation over tracks."""

CV_TOLERANCE = 1.0
"""How much higher (in log-likelihood) the cross-validated likelihood of a rougher fit must be for
it to be preferred: one unit, i.e. two units of AIC, below which information criteria call two
models indistinguishable (Burnham & Anderson, *Model Selection and Multimodel Inference*, 2002)."""


def balanced_folds(groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """A fold per track: whole groups to folds of nearly equal size.

    Groups are placed largest first, each into the fold that holds fewest tracks so far (ties in
    random order), so no fold is much larger than the others whatever the groups' sizes: a fold
    that held most tracks (one large group) would leave the rest to be predicted by a fit to
    almost nothing. With as many groups as folds (the capture's time blocks,
    :func:`exocheck.nta.analyze.time_blocks`) each group is one fold.
    """
    groups = np.asarray(groups)
    if groups.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, index, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    index = index.ravel()
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(sizes.size), -sizes))
    fold_of_group = np.empty(sizes.size, dtype=np.int64)
    load = np.zeros(n_folds)
    multi = order[sizes[order] > 1]
    for g in multi:
        k = int(np.argmin(load + 1e-9 * rng.random(n_folds)))
        fold_of_group[g] = k
        load[k] += sizes[g]
    singles = order[sizes[order] == 1]
    # single tracks fill the folds up to equal loads, then go round in turn
    target = np.ceil((load.sum() + singles.size) / n_folds)
    fill = np.repeat(np.arange(n_folds), np.clip(target - load, 0, None).astype(np.int64))
    fill = np.concatenate([fill, np.arange(max(singles.size - fill.size, 0)) % n_folds])
    fold_of_group[singles] = rng.permutation(fill[: singles.size])
    return fold_of_group[index]


def summarise(diameter_nm: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> dict[str, float]:
    """D10/D50/D90, mode, mean and SD of a gridded number distribution."""
    cdf = np.concatenate([[0.0], np.cumsum(weights)])
    cdf /= cdf[-1]
    log_edges = np.log(edges)

    def quantile(q: float) -> float:
        return float(np.exp(np.interp(q, cdf, log_edges)))

    mean = float(np.sum(weights * diameter_nm))
    sd = float(np.sqrt(np.sum(weights * (diameter_nm - mean) ** 2)))
    dens = weights / np.diff(edges)  # mode of the density per unit diameter (not per log bin)
    i = int(np.argmax(dens))
    mode = float(diameter_nm[i])
    if 0 < i < dens.size - 1:  # parabolic refinement between grid points (in ln d)
        y0, y1, y2 = np.log(np.maximum(dens[i - 1 : i + 2], 1e-300))
        denom = y0 - 2 * y1 + y2
        if denom < 0:
            shift = 0.5 * (y0 - y2) / denom
            mode = float(np.exp(np.log(diameter_nm[i]) + shift * np.log(edges[1] / edges[0])))
    return {
        "d10_nm": quantile(0.1),
        "d50_nm": quantile(0.5),
        "d90_nm": quantile(0.9),
        "mode_nm": mode,
        "mean_nm": mean,
        "sd_nm": sd,
    }


MIN_PEAK_PROMINENCE = 0.1
"""A local maximum of the density is a peak candidate when the density falls by at least this share
of its height on both sides before rising again (or at the grid's ends)."""


MIN_BAND_RESAMPLES = 20
"""With at least this many bootstrap resamples the density band is their pointwise 2.5–97.5 %
range (widened to include the estimate); with fewer, the sandwich band."""

MIN_PEAK_HEIGHT = 0.05
"""A peak candidate must also reach this share of the highest peak's height in the distribution
per ln d (weight per bin): the ripple a smooth fit may leave in a deep valley between two distant
narrow peaks holds a percent of the particles and is not a population."""


def _peak_basins(density: np.ndarray, weights: np.ndarray) -> list[tuple[int, int, int]]:
    """(index of the maximum, first, last index of its basin) for each prominent local maximum.

    ``density`` is per unit diameter (where the maxima are found), ``weights`` per grid bin.
    """
    n = density.size
    maxima = [
        i
        for i in range(n)
        if (i == 0 or density[i] > density[i - 1]) and (i == n - 1 or density[i] >= density[i + 1])
    ]
    peaks = []
    for i in maxima:
        height = density[i]
        if height <= 0:
            continue
        left = i
        low_left = height
        while left > 0 and density[left - 1] <= height:
            left -= 1
            low_left = min(low_left, density[left])
            if density[left] > height:
                break
        right = i
        low_right = height
        while right < n - 1 and density[right + 1] <= height:
            right += 1
            low_right = min(low_right, density[right])
        left_ok = left == 0 or low_left <= (1 - MIN_PEAK_PROMINENCE) * height
        right_ok = right == n - 1 or low_right <= (1 - MIN_PEAK_PROMINENCE) * height
        # an end of the grid counts as a fall only if the density actually falls towards it
        if left == 0:
            left_ok = low_left <= (1 - MIN_PEAK_PROMINENCE) * height
        if right == n - 1:
            right_ok = low_right <= (1 - MIN_PEAK_PROMINENCE) * height
        if left_ok and right_ok:
            peaks.append(i)
    if peaks:
        tallest = max(weights[i] for i in peaks)
        peaks = [i for i in peaks if weights[i] >= MIN_PEAK_HEIGHT * tallest]
    if not peaks:  # no maximum stands out (a monotonic density): the highest point
        peaks = [int(np.argmax(density))]
    # basins: split at the lowest point between consecutive peaks
    out = []
    bounds = [0]
    for a, b in itertools.pairwise(peaks):
        bounds.append(a + int(np.argmin(density[a : b + 1])))
    bounds.append(n - 1)
    for k, i in enumerate(peaks):
        out.append((i, bounds[k], bounds[k + 1]))
    return out


def size_distribution(
    msd1_um2: np.ndarray,
    n_steps: np.ndarray,
    sigma2_um2: np.ndarray,
    frame_s: float,
    exposure_s: float,
    temperature_c: float,
    viscosity_mpa_s: float | None = None,
    settings: SizingSettings | None = None,
    lag: int = 1,
    offset_s: float | None = None,
    min_diameter_nm: float | None = None,
    track_weights: np.ndarray | None = None,
    track_groups: np.ndarray | None = None,
) -> SizeResult:
    """Penalised maximum-likelihood number distribution of diameters from per-track statistics.

    Parameters
    ----------
    msd1_um2, n_steps, sigma2_um2 : ndarray
        Per-track statistics at ``lag`` frames (see :func:`log_likelihood_matrix`).
    frame_s, exposure_s, temperature_c, viscosity_mpa_s
        Acquisition conditions.
    settings : SizingSettings, optional
        Solver settings.
    lag, offset_s
        Displacement lag in frames and the MSD line's time offset (see
        :func:`log_likelihood_matrix`).
    min_diameter_nm : float, optional
        The detection limit: the grid starts at :data:`LIMIT_MARGIN` times it. Without it the
        grid starts where the tracks start, but not below :data:`FLOOR_DIAMETER_NM`.
    track_weights : ndarray, optional
        How much each track counts (1 by default).
    track_groups : ndarray, optional
        A label per track: tracks that may be of one particle share a label and are held out
        together in the cross-validation (the capture's time blocks, see
        :func:`exocheck.nta.analyze.time_blocks`). Each track its own group by default.
    """
    settings = settings or SizingSettings()
    msd1_um2 = np.asarray(msd1_um2, float)
    n_steps = np.asarray(n_steps, float)
    sigma2_um2 = np.asarray(sigma2_um2, float)
    weights_in = (
        np.ones(msd1_um2.size) if track_weights is None else np.asarray(track_weights, float)
    )
    if msd1_um2.size < 5:
        raise AnalysisError(f"only {msd1_um2.size} usable tracks: at least 5 are needed for sizing")
    # per-track point estimate (noise and blur corrected): where the data are
    t0 = exposure_s / 3.0 if offset_s is None else offset_s
    d_track = (msd1_um2 - 2 * np.clip(sigma2_um2, 0, None)) / (2 * (lag * frame_s - t0))
    d_floor = float(diffusion_um2_s(MAX_DIAMETER_NM, temperature_c, viscosity_mpa_s))
    d_track = np.clip(d_track, d_floor, None)
    size_track = np.asarray(diameter_nm_from_diffusion(d_track, temperature_c, viscosity_mpa_s))
    # The grid spans the data: from the detection limit (or the smallest tracks) to beyond the
    # largest tracks, far enough that no weight is cut off by either end.
    spread = 2.0 / np.sqrt(np.maximum(n_steps, 1.0))  # ~2 SD of ln d from one track
    lo_data = float(np.quantile(size_track * np.exp(-spread), 0.005))
    hi_data = float(np.quantile(size_track * np.exp(spread), 0.995))
    if min_diameter_nm is not None and np.isfinite(min_diameter_nm) and min_diameter_nm > 0:
        lo_report = max(LIMIT_MARGIN * min_diameter_nm, FLOOR_DIAMETER_NM)
    else:
        lo_report = max(lo_data, FLOOR_DIAMETER_NM)
    hi = min(max(hi_data, 1.5 * lo_report), MAX_DIAMETER_NM)
    step = settings.grid_step
    # Below the reported range the solver keeps a few bins as a sink: tracks faster than any
    # detectable particle (linking errors, noise) are absorbed there instead of piling weight at
    # the detection limit; their share is reported, and the distribution is renormalised above.
    lo = max(min(lo_data, lo_report * np.exp(-3 * step)), FLOOR_DIAMETER_NM)
    below = max(int(np.ceil(np.log(lo_report / lo) / step - 1e-9)), 0)
    above = max(int(np.ceil(np.log(hi / lo_report) / step)) + 1, 12)
    full_grid = lo_report * np.exp(step * np.arange(-below, above))
    full_edges = np.concatenate([full_grid * np.exp(-step / 2), full_grid[-1:] * np.exp(step / 2)])
    grid, edges = full_grid[below:], full_edges[below:]

    m_c, n_c, s2_c, c_c, c2_c, index = track_classes(
        msd1_um2, n_steps, sigma2_um2, weights_in, settings.class_width
    )
    loglike = log_likelihood_matrix(
        m_c,
        n_c,
        s2_c,
        full_grid,
        frame_s,
        exposure_s,
        temperature_c,
        viscosity_mpa_s,
        lag,
        offset_s,
    )
    like = np.exp(loglike - _best_log_likelihood(m_c, n_c, s2_c, lag)[:, None]) + UNEXPLAINED
    penalty = _third_difference_penalty(full_grid.size, step)
    # start: a lognormal matched to the per-track estimates (the penalty's null space)
    log_size = np.log(size_track)
    mu, sd = float(np.median(log_size)), max(float(np.std(log_size)), 3 * step)
    theta0 = -0.5 * ((np.log(full_grid) - mu) / sd) ** 2
    if settings.smoothing is None:
        # whole groups (tracks that may be of one particle) are held out together: a held-out
        # track whose particle has other tracks in the fit is predicted by them (rewards spikes)
        groups = np.arange(msd1_um2.size) if track_groups is None else np.asarray(track_groups)
        fold_of_track = balanced_folds(groups, CV_FOLDS, settings.seed + 1)
        folds = np.stack(
            [
                np.bincount(index, weights=weights_in * (fold_of_track == k), minlength=c_c.size)
                for k in range(CV_FOLDS)
            ]
        )
        fold_squares = np.stack(
            [
                np.bincount(index, weights=weights_in**2 * (fold_of_track == k), minlength=c_c.size)
                for k in range(CV_FOLDS)
            ]
        )
        # peaks counted over the whole grid: tracks faster than any detectable particle
        # (below the reported range) are a population of their own, which the sink bins need
        # a fit rough enough to hold apart from the particles
        full_widths = np.diff(full_edges)

        def count_peaks(theta: np.ndarray) -> int:
            w = _softmax(theta)
            return len(_peak_basins(w / full_widths, w))

        fit, lam = _select_smoothing(like, c_c, folds, penalty, theta0, count_peaks, fold_squares)
    else:
        lam = float(settings.smoothing * c_c.sum())
        fit = _newton(like, c_c, penalty, lam, theta0)
    df = _cv_score(fit, c2_c)[1]
    below_fraction = float(fit.weights[:below].sum())
    weights = fit.weights[below:] / (1.0 - below_fraction)
    stats = summarise(grid, weights, edges)
    # pointwise band of each bin's fraction: the sampling covariance of θ̂ (sandwich H⁻¹JH⁻¹,
    # which is also the covariance of the linear bootstrap below), carried through the softmax
    # restricted to the reported bins
    h_inv = _solve(fit.curvature, np.eye(fit.theta.size))
    score = fit.resp - fit.weights[None, :]
    cov = (h_inv @ ((score * c2_c[:, None]).T @ score) @ h_inv)[below:, below:]
    cw = cov @ weights
    var_log = np.diag(cov) - 2 * cw + float(weights @ cw)
    half = 1.96 * np.sqrt(np.clip(var_log, 0.0, 400.0))
    band_low = weights * np.exp(-half)
    band_high = np.minimum(weights * np.exp(half), 1.0)
    density = weights / np.diff(edges)
    basins = _peak_basins(density, weights)
    ci: dict[str, tuple[float, float]] = {}
    support = [None] * len(basins)
    if settings.n_bootstrap > 0:
        # Each resample of the tracks is solved at the chosen λ from the full solution by chord
        # steps: Newton steps that keep the full solution's curvature H (factorised once), each
        # with a line search on the resample's own objective. The first step is the linear
        # bootstrap θ̂ + H⁻¹g_b; the next ones correct it where a resample moves far (narrow
        # peaks, few tracks). A step costs two products with the class matrix, not a Hessian.
        rng = np.random.default_rng(settings.seed)
        n = msd1_um2.size
        counts = np.stack(
            [
                np.bincount(index[draw], weights=weights_in[draw], minlength=c_c.size)
                for draw in rng.integers(0, n, (settings.n_bootstrap, n))
            ],
            axis=1,
        )
        boots = []
        resampled = []
        hits = np.zeros(len(basins))
        for theta_b in (
            _chord(like, col, penalty, lam, fit.theta, fit.curvature) for col in counts.T
        ):
            w_b = _softmax(theta_b)[below:]
            w_b /= w_b.sum()
            resampled.append(w_b)
            boots.append(summarise(grid, w_b, edges))
            found = [i for i, _, _ in _peak_basins(w_b / np.diff(edges), w_b)]
            for k, (_, first, last) in enumerate(basins):
                hits[k] += any(first <= i <= last for i in found)
        support = list(hits / settings.n_bootstrap)
        if settings.n_bootstrap >= MIN_BAND_RESAMPLES:
            # the band from the resamples themselves: where few tracks fall (the grid's ends) the
            # linearised band on the log scale exaggerates, the resamples do not
            low, high = np.quantile(np.array(resampled), [0.025, 0.975], axis=0)
            band_low, band_high = np.minimum(low, weights), np.maximum(high, weights)
        for key in stats:
            values = np.array([b[key] for b in boots])
            ci[key] = (float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975)))
    peaks = [
        Peak(
            diameter_nm=float(grid[i]),
            fraction=float(weights[first : last + 1].sum()),
            support=None if sup is None else float(sup),
        )
        for (i, first, last), sup in zip(basins, support, strict=True)
    ]
    if settings.n_bootstrap > 0:
        supported = [p for p in peaks if p.support is not None]
        supported = [p for p in supported if p.support >= settings.min_peak_support]
        if not supported:  # no peak stands in most resamples: report the highest, unsupported
            supported = [max(peaks, key=lambda p: np.interp(p.diameter_nm, grid, density))]
        peaks = supported
    # basins of unreported maxima go to their reported neighbours
    peaks = _merge_basins(peaks, grid, weights)
    # per-track size: posterior mean of log-diameter under the fitted distribution (shrinks the
    # noisy single-track estimate towards the population, as a track of few steps deserves)
    posterior = like * fit.weights
    posterior /= posterior.sum(axis=1, keepdims=True)
    size_class = np.exp(posterior @ np.log(full_grid))
    return SizeResult(
        grid,
        edges,
        weights,
        stats,
        ci,
        size_class[index],
        band_low,
        band_high,
        peaks,
        lam / float(c_c.sum()),
        df,
        int(c_c.size),
        below_fraction,
        full_grid,
        posterior,
        np.asarray(index),
    )


def _merge_basins(peaks: list[Peak], grid: np.ndarray, weights: np.ndarray) -> list[Peak]:
    """Number fractions of the supported peaks over the whole distribution (split at minima)."""
    density_idx = [int(np.argmin(np.abs(grid - p.diameter_nm))) for p in peaks]
    bounds = [0]
    for a, b in itertools.pairwise(density_idx):
        bounds.append(a + int(np.argmin(weights[a : b + 1])))
    bounds.append(grid.size - 1)
    out = []
    for k, p in enumerate(peaks):
        first, last = bounds[k], bounds[k + 1]
        frac = float(weights[first : last + 1].sum()) - (
            float(weights[first]) / 2 if k > 0 else 0.0
        )
        frac -= float(weights[last]) / 2 if k < len(peaks) - 1 else 0.0
        out.append(Peak(p.diameter_nm, frac, p.support))
    return out

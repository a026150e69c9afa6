"""Compiled kernels (numba) of detection and linking.

The detection of :mod:`exocheck.nta.locate` needs, for every frame, the background-subtracted image,
its frame-wide level removed, smoothed by a Gaussian, and the local maxima above a threshold. Done as
separate numpy/scipy passes this makes six full-frame passes and is memory-bound (about 4 ms per
640×480 frame on one core); fused into one loop nest per frame that keeps rows in cache it takes
about 0.5 ms (``make bench`` measures the whole pipeline). The kernels release the GIL, so the
thread pool of :func:`exocheck.nta.locate.locate_video` runs them on every core.

Linking (:func:`link_frames`) is a per-frame loop over a few dozen features, which costs more in
interpreter overhead than in arithmetic; compiled, it takes ~30 ms for 50 000 features instead of
~250 ms (and no k-d tree per frame).

The kernels are compiled on first use and cached next to this file (``cache=True``): the first run
after installation spends about 12 s compiling, later runs load the machine code (about 0.4 s,
mostly numba's own initialisation, which :func:`warm_up` overlaps with other start-up work).
The smoothing is tested against ``scipy.ndimage.gaussian_filter`` (mode ``reflect``).
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numba.core import event as numba_event

_JIT = {"nogil": True, "cache": True, "boundscheck": False, "error_model": "numpy"}


def gaussian_kernel(sigma_px: float, truncate: float = 3.0) -> np.ndarray:
    """Normalised 1-D Gaussian taps, as ``scipy.ndimage.gaussian_filter1d`` builds them."""
    radius = int(truncate * float(sigma_px) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma_px) ** 2)
    return (taps / taps.sum()).astype(np.float32)


@numba.njit(**_JIT)
def _reflect(i: int, n: int) -> int:
    # scipy.ndimage mode "reflect": d c b a | a b c d | d c b a
    while i < 0 or i >= n:
        if i < 0:
            i = -i - 1
        if i >= n:
            i = 2 * n - i - 1
    return i


@numba.njit(**_JIT)
def smooth_frames(
    chunk: np.ndarray,
    background: np.ndarray,
    sign: float,
    taps: np.ndarray,
    level_step: int,
    threshold: float,
    out: np.ndarray,
    row_above: np.ndarray,
) -> None:
    """``out[f] = G ⋆ (sign·chunk[f] − background − level_f)`` for every frame ``f``.

    ``level_f`` is the median of ``sign·chunk[f] − background`` over every ``level_step``-th pixel
    in both directions (a frame-wide offset: laser power and camera offset drifts). ``G`` is the
    separable Gaussian ``taps`` with reflecting borders. ``row_above[f, y]`` is set to whether
    any pixel of ``out[f, y]`` exceeds ``threshold``, found while the row is in cache, so that the
    search for maxima can skip the rows with nothing above it.
    """
    n, h, w = chunk.shape
    r = taps.size // 2
    nt = taps.size
    row = np.empty(w + 2 * r, np.float32)
    # Horizontally smoothed rows live in a ring of nt rows (source row y in slot y % nt): the
    # vertical pass for output row y needs source rows y − r … y + r only, so the working set stays
    # in the first-level cache instead of a whole frame's worth of memory traffic.
    ring = np.empty((nt, w), np.float32)
    ny = (h + level_step - 1) // level_step
    nx = (w + level_step - 1) // level_step
    sample = np.empty(ny * nx, np.float32)
    s = np.float32(sign)
    thr = np.float32(threshold)
    for f in range(n):
        k = 0
        for y in range(0, h, level_step):
            for x in range(0, w, level_step):
                sample[k] = s * np.float32(chunk[f, y, x]) - background[y, x]
                k += 1
        level = np.float32(np.median(sample))
        done = -1  # highest source row smoothed horizontally so far
        for y in range(h):
            # horizontal pass for the source rows this output row needs, one padded row at a time
            while done < min(h - 1, y + r):
                done += 1
                src_row = chunk[f, done]
                bg_row = background[done]
                for x in range(w):
                    row[x + r] = s * np.float32(src_row[x]) - bg_row[x] - level
                for j in range(r):
                    row[r - 1 - j] = row[_reflect(-1 - j, w) + r]
                    row[w + r + j] = row[_reflect(w + j, w) + r]
                t = ring[done % nt]
                t0 = taps[0]
                for x in range(w):
                    t[x] = t0 * row[x]
                for j in range(1, nt):
                    tj = taps[j]
                    for x in range(w):
                        t[x] += tj * row[x + j]
            # vertical pass, along contiguous rows
            o = out[f, y]
            src = ring[_reflect(y - r, h) % nt]
            t0 = taps[0]
            for x in range(w):
                o[x] = t0 * src[x]
            for j in range(1, nt):
                src = ring[_reflect(y + j - r, h) % nt]
                tj = taps[j]
                for x in range(w):
                    o[x] += tj * src[x]
            above = False
            for x in range(w):
                above |= o[x] > thr
            row_above[f, y] = above


@numba.njit(**_JIT)
def _order_statistic_rows(frames: np.ndarray, y: int, rank: int, top: int, out: np.ndarray) -> None:
    # out[x] = the rank-th smallest (0-based) of frames[:, y, x], integers in [0, top]: bisection on
    # the value, counting along the frames for all pixels of the row at once (vectorised over x)
    k, _, w = frames.shape
    lo = np.zeros(w, np.int64)
    hi = np.full(w, top, np.int64)
    mid = np.empty(w, np.int64)
    count = np.empty(w, np.int64)
    while True:
        open_ = False
        for x in range(w):
            mid[x] = (lo[x] + hi[x]) >> 1
            count[x] = 0
            open_ |= lo[x] < hi[x]
        if not open_:
            break
        for i in range(k):
            line = frames[i, y]
            for x in range(w):
                count[x] += np.int64(line[x]) <= mid[x]
        for x in range(w):
            if count[x] > rank:
                hi[x] = mid[x]
            else:
                lo[x] = mid[x] + 1
    for x in range(w):
        out[x] = lo[x]


@numba.njit(**_JIT)
def temporal_median(frames: np.ndarray, top: int, out: np.ndarray) -> None:
    """``out[y, x]`` = median over the first axis of integer ``frames`` with values in [0, top].

    The same value as ``np.median(frames, axis=0)`` (the mean of the two middle values for an even
    count), found by bisection on the value for a whole row at a time: about 8 (16) vectorised
    passes for 8-bit (16-bit) data, where ``np.median`` partitions every pixel's values separately.
    """
    k, h, w = frames.shape
    upper = np.empty(w, np.float64)
    lower = np.empty(w, np.float64)
    for y in range(h):
        _order_statistic_rows(frames, y, k // 2, top, upper)
        if k % 2:
            for x in range(w):
                out[y, x] = upper[x]
        else:
            _order_statistic_rows(frames, y, k // 2 - 1, top, lower)
            for x in range(w):
                out[y, x] = 0.5 * (lower[x] + upper[x])


@numba.njit(**_JIT)
def local_maxima(
    smoothed: np.ndarray,
    row_above: np.ndarray,
    threshold: float,
    radius: int,
    disk_dy: np.ndarray,
    disk_dx: np.ndarray,
) -> np.ndarray:
    """Pixels above ``threshold`` that are the maximum of the disk around them.

    Pixels closer than ``radius`` to the border are skipped (their disk leaves the frame), and so
    are rows with ``row_above[f, y]`` false (nothing above the threshold). Of tied
    maxima (a flat top) only the first in (row, column) order within each cell of
    ``(radius + 1)²`` pixels is kept. Returns an ``[k, 3]`` array of (frame, row, column) indices
    in that order.
    """
    n, h, w = smoothed.shape
    found = np.empty((max(64, n * 64), 3), np.int64)
    k = 0
    nd = disk_dy.size
    thr = np.float32(threshold)
    cell = radius + 1
    taken = np.zeros((h // cell + 1, w // cell + 1), np.bool_)
    for f in range(n):
        first_of_frame = k
        img = smoothed[f]
        for y in range(radius, h - radius):
            if not row_above[f, y]:
                continue
            for x in range(radius, w - radius):
                v = img[y, x]
                if v <= thr:
                    continue
                if v < img[y - 1, x] or v < img[y + 1, x] or v < img[y, x - 1] or v < img[y, x + 1]:
                    continue
                is_max = True
                for j in range(nd):
                    if img[y + disk_dy[j], x + disk_dx[j]] > v:
                        is_max = False
                        break
                if not is_max or taken[y // cell, x // cell]:
                    continue
                taken[y // cell, x // cell] = True
                if k == found.shape[0]:  # grow: a plateau can make many tied maxima
                    bigger = np.empty((2 * k, 3), np.int64)
                    for i in range(k):  # (an element loop compiles in a fraction of the time)
                        bigger[i, 0] = found[i, 0]
                        bigger[i, 1] = found[i, 1]
                        bigger[i, 2] = found[i, 2]
                    found = bigger
                found[k, 0] = f
                found[k, 1] = y
                found[k, 2] = x
                k += 1
        for i in range(first_of_frame, k):  # clear this frame's cells for the next
            taken[found[i, 1] // cell, found[i, 2] // cell] = False
    return found[:k]


@numba.njit(**_JIT)
def refine_centroids(
    smoothed: np.ndarray,
    frame: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    radius: int,
    disk_dy: np.ndarray,
    disk_dx: np.ndarray,
    mask_sigma_px: float,
    mask_iterations: int,
) -> np.ndarray:
    """Sub-pixel centroids of the maxima at ``(frame, row, col)`` in ``smoothed``.

    For each maximum: the intensity-weighted centroid over the disk of ``radius``, recentred (up to
    three times) while it lies more than half a pixel from the window centre; then
    ``mask_iterations`` of Gaussian-mask refinement (Thompson, Larson & Webb 2002) with weights
    ``exp(−|p − c|² / 2 s²)`` centred on the current estimate. Weights are not clipped at zero: the
    background is already removed, so noise averages out instead of pulling every centroid to the
    window centre. Returns an ``[k, 6]`` array of columns ``y, x, mass, rg2, signal, gain``
    (``rg2``: squared radius of gyration; ``gain``: the response of the estimator's defining sum
    to a shift of the spot, which sets the localisation error, see below).

    The Gaussian-mask estimate c solves F(c) = Σ_p (p − c) m(p − c) I_p = 0. Noise δI moves it by
    δc = δF / J with J = −∂F/∂c = Σ_p m I (1 − (p − c)²/s²) per axis: because the mask follows the
    estimate, J is about half of Σ m I for a spot as wide as the mask, and the error twice what
    fixed weights would give. ``gain`` is the RMS over the two axes of that J (Σ I for the plain
    centroid).
    """
    _, h, w = smoothed.shape
    k = frame.size
    nd = disk_dy.size
    out = np.empty((k, 6), np.float64)
    win = np.empty(nd, np.float64)
    ey = np.empty(2 * radius + 1, np.float64)
    ex = np.empty(2 * radius + 1, np.float64)
    two_s2 = 2.0 * mask_sigma_px * mask_sigma_px
    for i in range(k):
        f = frame[i]
        iy = row[i]
        ix = col[i]
        cy = float(iy)
        cx = float(ix)
        total = 1e-6
        mass = 0.0
        off_y = 0.0
        off_x = 0.0
        stale = False  # the window no longer sits at (iy, ix)
        for _ in range(3):
            stale = False
            mass = 0.0
            sy = 0.0
            sx = 0.0
            for j in range(nd):
                v = float(smoothed[f, iy + disk_dy[j], ix + disk_dx[j]])
                win[j] = v
                mass += v
                sy += v * disk_dy[j]
                sx += v * disk_dx[j]
            total = mass if mass > 1e-6 else 1e-6
            off_y = sy / total
            off_x = sx / total
            cy = iy + off_y
            cx = ix + off_x
            if abs(off_y) <= 0.5 and abs(off_x) <= 0.5:
                break
            iy = min(max(int(np.rint(cy)), radius), h - radius - 1)
            ix = min(max(int(np.rint(cx)), radius), w - radius - 1)
            stale = True
        rg2 = 0.0
        for j in range(nd):
            ddy = disk_dy[j] - off_y
            ddx = disk_dx[j] - off_x
            rg2 += win[j] * (ddy * ddy + ddx * ddx)
        rg2 /= total
        masked_total = total
        for _ in range(mask_iterations):
            if stale or abs(cy - iy) > 0.5 or abs(cx - ix) > 0.5:
                iy = min(max(int(np.rint(cy)), radius), h - radius - 1)
                ix = min(max(int(np.rint(cx)), radius), w - radius - 1)
                stale = False
                for j in range(nd):
                    win[j] = float(smoothed[f, iy + disk_dy[j], ix + disk_dx[j]])
            oy = cy - iy
            ox = cx - ix
            # the mask is separable: 2(2r + 1) exponentials instead of one per disk pixel
            for q in range(2 * radius + 1):
                ey[q] = np.exp(-((q - radius - oy) ** 2) / two_s2)
                ex[q] = np.exp(-((q - radius - ox) ** 2) / two_s2)
            mt = 0.0
            sy = 0.0
            sx = 0.0
            jy = 0.0
            jx = 0.0
            for j in range(nd):
                ddy = disk_dy[j] - oy
                ddx = disk_dx[j] - ox
                wt = win[j] * ey[disk_dy[j] + radius] * ex[disk_dx[j] + radius]
                mt += wt
                sy += wt * disk_dy[j]
                sx += wt * disk_dx[j]
                jy += wt * (1.0 - 2.0 * ddy * ddy / two_s2)
                jx += wt * (1.0 - 2.0 * ddx * ddx / two_s2)
            # 1/gain² is the mean of the two axes' 1/J²
            masked_total = np.sqrt(2.0 / (1.0 / (jy * jy + 1e-300) + 1.0 / (jx * jx + 1e-300)))
            if mt > 1e-6:
                cy = iy + sy / mt
                cx = ix + sx / mt
        signal = win[0]
        for j in range(1, nd):
            if win[j] > signal:
                signal = win[j]
        out[i, 0] = cy
        out[i, 1] = cx
        out[i, 2] = mass
        out[i, 3] = rg2
        out[i, 4] = signal
        out[i, 5] = masked_total
    return out


@numba.njit(**_JIT)
def _grown(values: np.ndarray) -> np.ndarray:
    # twice the room, the values kept (an element loop: np.concatenate is slow to compile)
    bigger = np.empty(2 * values.size, values.dtype)
    for i in range(values.size):
        bigger[i] = values[i]
    return bigger


@numba.njit(**_JIT)
def link_frames(
    frame: np.ndarray, x: np.ndarray, y: np.ndarray, radius_px: float, memory: int
) -> np.ndarray:
    """Greedy nearest-neighbour linking of features sorted by (frame, y, x); returns track ids.

    Frame by frame, the candidate pairs of (active track, new feature) closer than
    ``radius_px·√(frames since the track was last seen)`` are taken in order of distance (ties: older
    track first, then the feature first in (y, x) order), each track and each feature at most once.
    A track stays active for ``memory`` missing frames; unmatched features start new tracks, with ids
    given in order of birth. The features of one frame are sorted by ``y``, so each track looks only
    at the band of features within its search radius in ``y`` (binary search).
    """
    n = frame.size
    particle = np.full(n, -1, np.int64)
    cap = 64
    act_id = np.empty(cap, np.int64)
    act_x = np.empty(cap, np.float64)
    act_y = np.empty(cap, np.float64)
    act_frame = np.empty(cap, np.int64)
    n_act = 0
    next_id = 0
    a = 0
    while a < n:
        t = frame[a]
        b = a
        while b < n and frame[b] == t:
            b += 1
        # drop tracks missing for longer than the memory (order kept)
        k = 0
        for i in range(n_act):
            if t - act_frame[i] <= memory + 1:
                act_id[k] = act_id[i]
                act_x[k] = act_x[i]
                act_y[k] = act_y[i]
                act_frame[k] = act_frame[i]
                k += 1
        n_act = k
        # candidate pairs, generated in (track, feature) order
        cand_d = np.empty(16, np.float64)
        cand_t = np.empty(16, np.int64)
        cand_f = np.empty(16, np.int64)
        n_cand = 0
        ys = y[a:b]
        for i in range(n_act):
            reach = radius_px * np.sqrt(float(t - act_frame[i]))
            lo = np.searchsorted(ys, act_y[i] - reach, side="left")
            hi = np.searchsorted(ys, act_y[i] + reach, side="right")
            for j in range(lo, hi):
                d = np.hypot(x[a + j] - act_x[i], ys[j] - act_y[i])
                if d <= reach:
                    if n_cand == cand_d.size:
                        cand_d = _grown(cand_d)
                        cand_t = _grown(cand_t)
                        cand_f = _grown(cand_f)
                    cand_d[n_cand] = d
                    cand_t[n_cand] = i
                    cand_f[n_cand] = j
                    n_cand += 1
        assigned = np.full(b - a, -1, np.int64)
        if n_cand:
            order = np.argsort(
                cand_d[:n_cand], kind="mergesort"
            )  # stable: ties keep (track, feature)
            used = np.zeros(n_act, np.bool_)
            for m in order:
                i = cand_t[m]
                j = cand_f[m]
                if not used[i] and assigned[j] < 0:
                    used[i] = True
                    assigned[j] = act_id[i]
                    act_x[i] = x[a + j]
                    act_y[i] = ys[j]
                    act_frame[i] = t
        for j in range(b - a):
            if assigned[j] < 0:
                assigned[j] = next_id
                next_id += 1
                if n_act == act_id.size:
                    act_id = _grown(act_id)
                    act_x = _grown(act_x)
                    act_y = _grown(act_y)
                    act_frame = _grown(act_frame)
                act_id[n_act] = assigned[j]
                act_x[n_act] = x[a + j]
                act_y[n_act] = ys[j]
                act_frame[n_act] = t
                n_act += 1
            particle[a + j] = assigned[j]
        a = b
    return particle


class _CompileNotice(numba_event.Listener):
    """Calls ``on_compile`` once, when numba starts compiling (a cache load is not a compile)."""

    def __init__(self, on_compile: Callable[[], None] | None) -> None:
        self.on_compile = on_compile
        self.compiled = False

    def on_start(self, event: numba_event.Event) -> None:
        if not self.compiled:
            self.compiled = True
            if self.on_compile is not None:
                self.on_compile()

    def on_end(self, event: numba_event.Event) -> None:
        pass


def warm_up(
    on_compile: Callable[[], None] | None = None,
    *,
    dtypes: tuple[type[np.generic], ...] = (np.uint8,),
) -> bool:
    """Load the kernels for video of ``dtypes`` (from the cache, or compile them) on tiny inputs.

    The first call of compiled code in a process costs about 0.3 s of initialisation; calling this
    from a background thread at start-up overlaps that with the imports of everything else.

    Parameters
    ----------
    on_compile : callable, optional
        Called (in this thread) the moment numba starts compiling, which happens only when its
        cache holds no machine code for these kernels (the first run after installation, a new
        numba, another processor): the caller can say why the wait is long.
    dtypes : tuple of numpy scalar types
        Pixel types to prepare (``uint8``, ``uint16``, ``float32``).

    Returns
    -------
    bool
        Whether anything was compiled.
    """
    notice = _CompileNotice(on_compile)
    with numba_event.install_listener("numba:compile", notice):
        index = np.zeros(1, np.int64)
        smoothed = np.zeros((1, 16, 16), np.float32)
        rows = np.zeros((1, 16), np.bool_)
        for dtype in dtypes:
            frames = np.zeros((1, 16, 16), dtype)
            smooth_frames(frames, smoothed[0], 1.0, gaussian_kernel(1.0), 8, 1.0, smoothed, rows)
            if dtype in (np.uint8, np.uint16):
                temporal_median(frames, int(np.iinfo(dtype).max), smoothed[0])
        local_maxima(smoothed, rows, 1.0, 1, index, index)
        # the same array types as detection and linking pass: columns of the maxima found
        # (strided), and the feature table's columns (read-only views)
        found = np.full((2, 3), 4, np.int64)  # two rows: a one-row column is contiguous
        found[:, 0] = 0
        refine_centroids(smoothed, found[:, 0], found[:, 1], found[:, 2], 1, index, index, 1.5, 1)
        frame, xy = np.zeros(1, np.int64), np.zeros(1)
        frame.flags.writeable = xy.flags.writeable = False
        link_frames(frame, xy, xy, 1.0, 1)
    return notice.compiled


def build_cache() -> bool:
    """Compile the kernels for every pixel type into numba's cache (at installation).

    Returns whether anything was compiled (False: the cache already held them all).
    """
    return warm_up(dtypes=(np.uint8, np.uint16, np.float32))

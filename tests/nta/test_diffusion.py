"""Per-track statistics (``nta.diffusion``) on synthetic tracks with known motion and noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt

from exocheck.nta.diffusion import MAX_EP_PX, track_statistics

PIXEL_UM = 0.166
FPS = 30.0


def _brownian_tracks(seed: int = 0, n_tracks: int = 40, n_frames: int = 60) -> pd.DataFrame:
    """Brownian tracks (D = 4 µm²/s, no blur) with 0.05 µm localisation noise; ep = 0.3 px."""
    rng = np.random.default_rng(seed)
    rows = []
    for pid in range(n_tracks):
        steps = rng.normal(0.0, np.sqrt(2 * 4.0 / FPS), size=(n_frames, 2))
        xy_um = np.cumsum(steps, axis=0) + rng.normal(0.0, 0.05, size=(n_frames, 2))
        rows.append(
            pd.DataFrame(
                {
                    "frame": np.arange(n_frames),
                    "x": 300 + xy_um[:, 0] / PIXEL_UM,
                    "y": 200 + xy_um[:, 1] / PIXEL_UM,
                    "mass": 1000.0 * (1 + pid),
                    "signal": 50.0,
                    "ep": 0.3,
                    "particle": pid,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_degenerate_centroid_is_a_missing_frame_not_a_huge_error() -> None:
    """A feature whose centroid weights summed to ~0 (ep ~ 1e7 px, position off the image) must
    not reach the statistics: it would make its track's ep² ~ 1e9 µm² and drag its brightness
    class's excess to zero. It is treated as a missing frame, as if it had not been detected."""
    tracks = _brownian_tracks()
    bad = tracks.index[(tracks["particle"] == 7) & (tracks["frame"] == 30)]
    degenerate = tracks.copy()
    degenerate.loc[bad, "ep"] = 7.5e6
    degenerate.loc[bad, "x"] += 40.0
    without = tracks.drop(index=bad)
    got = track_statistics(degenerate, FPS, PIXEL_UM, 0.0)
    expected = track_statistics(without, FPS, PIXEL_UM, 0.0)
    pdt.assert_frame_equal(got, expected)
    assert got["ep2_um2"].max() <= (MAX_EP_PX * PIXEL_UM) ** 2
    # the damaged track keeps a localisation variance of the order of the real one (0.05² µm²)
    damaged = got.loc[got["particle"] == 7, "sigma2_model_um2"].item()
    assert damaged < 0.01


def _msd_line(increments):
    return np.concatenate([[1.0], 1.0 + np.cumsum(increments)])


def test_choose_lag_switches_only_when_short_displacements_are_suppressed() -> None:
    from exocheck.nta.diffusion import choose_lag

    straight = _msd_line([1.0] * 6)
    assert choose_lag(straight)[0] == 1
    # a filtered recording: the first increments fall short of the later ones
    assert choose_lag(_msd_line([0.7, 1, 1, 1, 1, 1]))[0] == 2
    assert choose_lag(_msd_line([0.6, 0.8, 0.9, 1, 1, 1.1]))[0] == 3
    # a polydisperse sample: the MSD bends down with lag (long tracks are the slow particles)
    assert choose_lag(_msd_line([1.07, 1.05, 1.03, 1.01, 0.98, 0.97]))[0] == 1
    # few tracks: a 7 % shortfall within three sampling SDs is noise, not filtering
    noisy = _msd_line([0.93, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert choose_lag(noisy)[0] == 2
    assert choose_lag(noisy, spread=np.full(6, 0.03))[0] == 1


def test_increment_spread_shrinks_with_more_tracks() -> None:
    from exocheck.nta.diffusion import increment_spread, msd_sums_by_track

    rng = np.random.default_rng(4)

    def brownian(n_tracks: int) -> pd.DataFrame:
        steps = rng.normal(0, 1.0, size=(n_tracks, 40, 2))
        xy = np.cumsum(steps, axis=1)
        return pd.DataFrame(
            {
                "particle": np.repeat(np.arange(n_tracks), 40),
                "frame": np.tile(np.arange(40), n_tracks),
                "x": xy[:, :, 0].ravel(),
                "y": xy[:, :, 1].ravel(),
            }
        )

    few = increment_spread(*msd_sums_by_track(brownian(30), 1.0))
    many = increment_spread(*msd_sums_by_track(brownian(480), 1.0))
    # the SD of a mean falls as 1/√n: 16× the tracks, a quarter of the spread (±35 %)
    assert np.all(np.isfinite(few)) and np.all(np.isfinite(many))
    assert 2.6 < np.median(few / many) < 5.4

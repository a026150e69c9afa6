"""Comparability: TOST, quality ranges, size similarity, control charts, Cpk."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from exocheck.errors import AnalysisError
from exocheck.qc.comparability import (
    capability,
    compare,
    control_chart,
    equivalence_tost,
    quality_range,
    size_similarity,
    western_electric,
)
from exocheck.qc.lotdata import LotData
from exocheck.records import SizeDistribution, VideoSummary

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from qc_factories import lognormal_measurement


def rules(values):
    return [(v.rule, v.index) for v in western_electric(values, 0.0, 1.0)]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 0.5, 3.5, 0], [(1, 2)]),
        ([0, -3.2], [(1, 1)]),
        ([0, 2.5, 0.5, 2.2], [(2, 3)]),
        ([0, -2.1, -2.4], [(2, 2)]),
        ([0, 1.5, 1.2, 0.3, 1.8, 1.1], [(3, 5)]),
        ([-0.5] + [0.5] * 8, [(4, 8)]),
        ([0.3, -0.4, 0.9, -0.8, 0.2, -1.5, 1.1, 0.0, -0.2, 0.6], []),
    ],
)
def test_western_electric_rules(values, expected):
    assert rules(values) == expected


def test_control_chart_sigma_from_moving_range():
    values = [10.0, 12.0, 11.0, 13.0]
    chart = control_chart(values, ["a", "b", "c", "d"])
    sigma = (2 + 1 + 2) / 3 / 1.128
    assert chart.center == pytest.approx(11.5)
    assert chart.sigma == pytest.approx(sigma)
    assert chart.ucl == pytest.approx(11.5 + 3 * sigma)
    assert chart.violations == []


def test_capability_by_hand():
    values = [10.0, 12.0, 11.0, 13.0]
    cap = capability(values, 5.0, 20.0)
    within = (5 / 3) / 1.128
    overall = np.std(values, ddof=1)
    assert cap.cpk == pytest.approx(min(20 - 11.5, 11.5 - 5) / (3 * within))
    assert cap.ppk == pytest.approx(6.5 / (3 * overall))
    assert capability(values, None, 20.0).cpk == pytest.approx(8.5 / (3 * within))
    with pytest.raises(AnalysisError):
        capability(values, None, None)


def test_tost_equals_two_one_sided_t_tests():
    rng = np.random.default_rng(1)
    test, ref = rng.normal(0.1, 1, 6), rng.normal(0.0, 1, 8)
    margin = 1.5
    result = equivalence_tost(test, ref, margin)
    p_low = stats.ttest_ind(test, ref + -margin, alternative="greater").pvalue
    p_high = stats.ttest_ind(test, ref + margin, alternative="less").pvalue
    assert result.p_value == pytest.approx(max(p_low, p_high))
    assert result.difference == pytest.approx(test.mean() - ref.mean())
    assert equivalence_tost(test + 5, ref, margin).equivalent is False


def test_quality_range():
    q = quality_range([1.0, 2.0, 3.0], 4.9, k=3)
    assert (q.low, q.high, q.within) == (pytest.approx(-1.0), pytest.approx(5.0), True)
    assert quality_range([1.0, 2.0, 3.0], 5.1).within is False


def _spike(low_nm: float) -> SizeDistribution:
    edges = np.arange(50.0, 200.0, 2.0)
    density = np.zeros(edges.size - 1)
    density[np.searchsorted(edges, low_nm)] = 1.0
    return SizeDistribution(bin_edges_nm=edges.tolist(), density=density.tolist())


def test_size_similarity():
    same = lognormal_measurement().size
    s = size_similarity(same, same)
    assert (s.overlap, s.ks_distance, s.wasserstein_nm) == (pytest.approx(1), 0, 0)
    apart = size_similarity(_spike(100), _spike(120))
    assert apart.overlap == 0 and apart.ks_distance == pytest.approx(1)
    assert apart.wasserstein_nm == pytest.approx(20)
    # the same distribution rebinned on 4-nm bins stays similar
    fine = lognormal_measurement().size
    edges = np.asarray(fine.bin_edges_nm)[::2]
    coarse = SizeDistribution(
        bin_edges_nm=edges.tolist(),
        density=np.add.reduceat(fine.density, np.arange(0, 490, 2)).tolist(),
    )
    close = size_similarity(fine, coarse)
    assert close.overlap > 0.98 and close.wasserstein_nm < 1.0


def _lot(name: str, conc: float, d50: float, replicates: bool = False) -> LotData:
    nta = lognormal_measurement(median_nm=d50, particles_per_ml=conc)
    if replicates:
        nta.per_video = [
            VideoSummary(name=f"v{i}", concentration_per_ml=conc * f, d50_nm=d50 * g)
            for i, (f, g) in enumerate([(0.97, 1.01), (1.02, 0.99), (1.01, 1.0)])
        ]
    return LotData(lot=name, nta=nta, fill_volume_ml=1.0)


REFS = [
    _lot(f"R{i}", c, d)
    for i, (c, d) in enumerate(
        [(2.0e10, 115), (2.1e10, 118), (1.9e10, 112), (2.05e10, 116), (1.95e10, 114)]
    )
]


def test_compare_equivalent_and_different_lots():
    good = compare(_lot("T", 2.0e10, 115, replicates=True), REFS)
    assert good.comparable, good
    assert [e.attribute for e in good.equivalence] == ["log_concentration", "d50_nm"]
    assert good.equivalence[0].n_test == 3 and good.equivalence[0].n_reference == 5
    sigma = np.std(np.log([r.nta.concentration.particles_per_ml for r in REFS]), ddof=1)
    assert good.equivalence[0].margin == pytest.approx(1.5 * sigma)
    bad = compare(_lot("B", 1.2e10, 160, replicates=True), REFS)
    assert not bad.comparable
    assert not any(e.equivalent for e in bad.equivalence)
    assert not any(q.within for q in bad.quality_ranges)
    assert bad.size.overlap < good.size.overlap
    with pytest.raises(AnalysisError, match="two reference lots"):
        compare(good_lot := _lot("T", 2e10, 115), [good_lot])

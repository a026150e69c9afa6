"""Physics against published reference values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from exocheck.errors import ParameterError
from exocheck.physics import (
    diameter_nm_from_diffusion,
    diffusion_um2_s,
    mie_efficiencies,
    refractive_index,
    scattering_cross_section_nm2,
    water_viscosity_mpa_s,
)

# IAPWS R12-08 / Huber et al. (2009): viscosity of water at 0.101325 MPa, mPa·s.
# Values as tabulated in the CRC Handbook of Chemistry and Physics ("Viscosity of liquid water").
IAPWS_TABLE = {
    0.0: 1.7914,
    10.0: 1.3060,
    20.0: 1.0016,
    25.0: 0.8900,
    30.0: 0.7972,
    37.0: 0.6913,
    40.0: 0.6527,
    50.0: 0.5465,
    60.0: 0.4660,
    80.0: 0.3540,
    100.0: 0.2818,
}


@pytest.mark.parametrize(("temperature_c", "reference"), sorted(IAPWS_TABLE.items()))
def test_water_viscosity_matches_reference_table(temperature_c: float, reference: float) -> None:
    # the issue asks for 0.5 %; the formulation reproduces its own table to ~0.1 %
    assert water_viscosity_mpa_s(temperature_c) == pytest.approx(reference, rel=1e-3)


def test_water_viscosity_vectorised_and_monotonic() -> None:
    t = np.linspace(0, 50, 51)
    eta = water_viscosity_mpa_s(t)
    assert eta.shape == t.shape
    assert np.all(np.diff(eta) < 0)


@pytest.mark.parametrize("bad", [-20.0, 120.0, float("nan")])
def test_water_viscosity_rejects_out_of_range(bad: float) -> None:
    with pytest.raises(ParameterError):
        water_viscosity_mpa_s(bad)


def test_stokes_einstein_value_and_round_trip() -> None:
    # D = kT / (3 π η d): 100 nm at 25 °C in water (η = 0.8900 mPa·s) is 4.907 µm²/s
    k_b, t_k, eta = 1.380649e-23, 298.15, 0.8900e-3
    expected = k_b * t_k / (3 * math.pi * eta * 100e-9) * 1e12
    assert diffusion_um2_s(100.0, 25.0) == pytest.approx(expected, rel=1e-3)
    d = np.array([30.0, 100.0, 1000.0])
    back = diameter_nm_from_diffusion(diffusion_um2_s(d, 37.0), 37.0)
    np.testing.assert_allclose(back, d, rtol=1e-12)
    # an explicit viscosity overrides water
    assert diffusion_um2_s(100.0, 25.0, viscosity_mpa_s=1.78) == pytest.approx(
        expected / 2, rel=1e-3
    )


def test_stokes_einstein_rejects_nonsense() -> None:
    with pytest.raises(ParameterError):
        diffusion_um2_s(-5.0)
    with pytest.raises(ParameterError):
        diameter_nm_from_diffusion(0.0)


def test_mie_bohren_huffman_reference_case() -> None:
    # Bohren & Huffman (1983), appendix A (BHMIE): sphere of radius 0.525 µm, m = 1.55, in air,
    # λ = 0.6328 µm: Q_sca = Q_ext = 3.10543, Q_back = 2.92534.
    qext, qsca, qback, _ = mie_efficiencies(1050.0, 1.55, medium_index=1.0, wavelength_nm=632.8)
    assert float(qext) == pytest.approx(3.10543, rel=1e-4)
    assert float(qsca) == pytest.approx(3.10543, rel=1e-4)
    assert float(qback) == pytest.approx(2.92534, rel=1e-4)


def test_mie_rayleigh_limit() -> None:
    # small spheres: Q_sca = (8/3) x⁴ |(m²−1)/(m²+2)|², x = π d n_med / λ, m = n_p / n_med
    d, n_p, n_med, lam = 4.0, 1.59, 1.333, 488.0  # x ≈ 0.03: higher orders ~x² ≪ 1e-3
    x = math.pi * d * n_med / lam
    m = n_p / n_med
    q_rayleigh = 8 / 3 * x**4 * ((m**2 - 1) / (m**2 + 2)) ** 2
    _, qsca, _, _ = mie_efficiencies(d, n_p, n_med, lam)
    assert float(qsca) == pytest.approx(q_rayleigh, rel=1e-3)
    # cross-section scales as d⁶ there
    c = scattering_cross_section_nm2(np.array([2.0, 4.0]), n_p, n_med, lam)
    assert c[1] / c[0] == pytest.approx(2**6, rel=1e-3)


def test_cross_section_vectorised_and_ordered_by_index() -> None:
    d = np.geomspace(30, 1000, 25)
    ps = scattering_cross_section_nm2(d, refractive_index("polystyrene"))
    ev = scattering_cross_section_nm2(d, refractive_index("EV"))
    assert ps.shape == d.shape
    assert np.all(ps > ev)
    assert np.all(np.diff(ps[:10]) > 0)


def test_materials_table() -> None:
    assert 1.59 <= refractive_index("polystyrene") <= 1.605
    assert refractive_index("silica") == pytest.approx(1.46)
    assert 1.37 <= refractive_index("ev") <= 1.40
    assert refractive_index("water") == pytest.approx(1.333)
    with pytest.raises(ParameterError, match="known"):
        refractive_index("unobtainium")


def test_tabulated_cross_sections_match_exact_mie() -> None:
    from exocheck.physics import scattering_cross_sections_nm2

    rng = np.random.default_rng(3)
    diameters = np.exp(rng.uniform(np.log(30.0), np.log(3000.0), 300))
    for index in (1.39, 1.59):
        exact = np.array([scattering_cross_section_nm2(d, index) for d in diameters[:60]])
        fast = scattering_cross_sections_nm2(diameters, index)
        np.testing.assert_allclose(fast[:60], exact, rtol=2e-3)  # resonances above 1 µm
    assert scattering_cross_sections_nm2(np.array([100.0]), 1.59)[0] == pytest.approx(
        scattering_cross_section_nm2(100.0, 1.59)
    )
    assert np.isnan(scattering_cross_sections_nm2(np.array([np.nan, -1.0]), 1.39)).all()

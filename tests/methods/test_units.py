"""Unit sense: a value outside physical sense for its unit names the unit probably meant, in the
library, on the command line, in a REST form field and in a method document."""

from __future__ import annotations

import pytest
from method_helpers import METHOD_YAML, one_line_error

from exocheck.errors import ParameterError
from exocheck.methods.units import check_value, check_values


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("pixel_size_um", 166, "--pixel-size-um 166: above 5 µm; was it nm? (0.166 µm)"),
        ("pixel_size_um", 0.000166, "--pixel-size-um 0.000166: below 0.005 µm; was it mm?"),
        ("fps", 0.04, "--fps 0.04: below 1 fps; was it the frame interval in s? (25 fps)"),
        ("temperature_c", 298.15, "--temperature-c 298.15: above 100 °C; was it K? (25 °C)"),
        ("temperature_c", 77.5 + 100, "above 100 °C; was it °F? (80.83 °C)"),
        ("exposure_ms", 15000, "--exposure-ms 15000: above 1000 ms; was it µs? (15 ms)"),
        ("bead_diameter_nm", 100000, "--bead-diameter-nm 100000: above 20000 nm; was it pm?"),
        ("bead_diameter_nm", 0.1, "--bead-diameter-nm 0.1: below 1 nm; was it µm? (100 nm)"),
        ("wavelength_nm", 0.488, "--wavelength-nm 0.488: below 100 nm; was it µm? (488 nm)"),
        ("viscosity_mpa_s", 890, "--viscosity-mpa-s 890: above 100 mPa·s; was it µPa·s?"),
        ("viscosity_mpa_s", 0.00089, "below 0.05 mPa·s; was it Pa·s? (0.89 mPa·s)"),
    ],
)
def test_values_outside_sense_name_the_unit_meant(name, value, message):
    with pytest.raises(ParameterError) as caught:
        check_value(name, value)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("pixel_size_um", 0.166),
        ("pixel_size_um", 2.0),
        ("fps", 1.0),
        ("fps", 30.0),
        ("temperature_c", 4.0),
        ("temperature_c", 100.0),
        ("exposure_ms", 15.0),
        ("bead_diameter_nm", 100.0),
        ("bead_diameter_nm", 10000.0),
        ("viscosity_mpa_s", 0.89),
        ("wavelength_nm", 405.0),
        ("refractive_index", 1.39),  # no unit in the name: not checked
        ("fps", None),
    ],
)
def test_values_within_sense_pass(name, value):
    check_value(name, value)  # no exception


def test_field_style_names_the_field():
    with pytest.raises(ParameterError, match=r"^pixel_size_um 166: above 5 µm; was it nm\?"):
        check_values({"fps": 30.0, "pixel_size_um": 166.0}, style="field")


def test_rest_form_field_is_checked_before_the_upload_is_read():
    from exocheck.web.uploads import values_from_form

    with pytest.raises(ParameterError, match=r"^fps 0\.04: below 1 fps; was it the frame"):
        values_from_form({"fps": "0.04", "pixel_size_um": "0.166"})
    assert values_from_form({"fps": "30", "pixel_size_um": " "}) == {"fps": 30.0}


def test_command_line_refuses_nm_typed_as_um(exo, beads, tmp_path):
    """The issue's case: --pixel-size-um 166 said 'no particles found'."""
    out = tmp_path / "out"
    outcome = exo("analyze", beads, "--pixel-size-um", 166, "--out", out)
    one_line_error(outcome, "--pixel-size-um 166: above 5 µm; was it nm? (0.166 µm)")
    assert not out.exists()
    bead = exo("calibrate", beads, "--known-concentration-per-ml", 1e9, "--bead-diameter-nm",
               1e5, "--out", tmp_path / "cal.json")  # fmt: skip
    one_line_error(bead, "--bead-diameter-nm 100000: above 20000 nm; was it pm? (100 nm)")
    assert not (tmp_path / "cal.json").exists()


def test_method_document_is_checked(tmp_path):
    from exocheck.methods.document import MethodError, parse_method

    text = METHOD_YAML.replace("pixel_size_um: 0.166", "pixel_size_um: 166")
    with pytest.raises(MethodError, match=r"acquisition.*pixel_size_um 166: above 5 µm; was it nm"):
        parse_method(text, "m.yaml")
    doc = parse_method(METHOD_YAML, "m.yaml")
    assert doc.acquisition.pixel_size_um == 0.166 and doc.label == "nta-ev-scatter@1"

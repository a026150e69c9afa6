"""``exocheck batch --method``: every sample analysed under the method, its record stamped by
the worker; a manifest cell that contradicts the method is refused before any work."""

from __future__ import annotations

from method_helpers import METHOD, SERIAL, one_line_error, stored_calibration_args

from exocheck.records import Measurement


def test_batch_under_a_method(exo, beads, lab, tmp_path):
    assert exo(*stored_calibration_args(beads, lab)).code == 0
    manifest = tmp_path / "plate.csv"
    manifest.write_text(f"sample,video,fps\nA,{beads},25\n")
    out = tmp_path / "out"
    base = ["batch", "--manifest", manifest, "--out", out, "--db", lab, "--workers", 1,
            "--method", METHOD, "--instrument", SERIAL]  # fmt: skip
    one_line_error(exo(*base), "sample A: --fps 25 contradicts method nta-ev-scatter@1 (30 fps)")
    assert not out.exists()
    manifest.write_text(f"sample,video,temperature_c\nA,{beads},25\n")
    done = exo(*base)
    assert done.code == 0, done.stderr
    record = Measurement.load(out / "A" / "result.json")
    method = record.settings["method"]
    assert (method["name"], method["instrument_serial"], method["calibration_id"]) == (
        METHOD,
        SERIAL,
        1,
    )
    assert record.settings["calibration"]["calibration_id"] == 1
    assert record.settings["analysis"]["sizing"]["n_bootstrap"] == 3

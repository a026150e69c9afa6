"""A lot with a labelled-fraction record: the store evaluates the ``labelled_fraction`` criterion
from it while the lot's particle count and size stay those of its scatter measurement, and the
certificate prints the fraction with its interval, the marker, the controls subtracted and the
record's raw inputs; a signed certificate of it verifies."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from exocheck.qc.comparability import particles_per_unit
from exocheck.records import Channel
from exocheck.report import write_coa
from exocheck.store import Store

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from qc_factories import SPEC_YAML, fill_lot, labelled_measurement, lognormal_measurement

LABELLED_SPEC = SPEC_YAML.replace("version: 1", "version: 2") + (
    "  - {name: CD63+ vesicles, kind: labelled_fraction, marker: CD63, min_percent: 5}\n"
    "  - {name: CD63+ 100-400 nm, kind: labelled_fraction, marker: cd63, min_percent: 10,"
    " size_range_nm: [100, 400]}\n"
)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'qc.db'}") as s:
        s.add_product("EXO-1", particles_per_unit=2e10, fill_volume_ml=1.0, by="ana")
        (tmp_path / "spec.yaml").write_text(LABELLED_SPEC)
        s.add_specification(tmp_path / "spec.yaml", product="EXO-1", by="qa")
        fill_lot(s, "L-1", particles_per_ml=2.1e10)  # the scatter measurement, by ana
        yield s


def test_labelled_and_fluorescence_records_are_not_the_lots_particle_measurement(store):
    before = store.evaluate("L-1")
    labelled = [c for c in before.criteria if c.kind == "labelled_fraction"]
    assert [c.result for c in labelled] == ["missing", "missing"]
    assert before.decision == "incomplete"
    # entered after the scatter measurement: the newest NTA records of the lot
    store.add_measurement("L-1", labelled_measurement(), by="cai")
    fluorescence = lognormal_measurement(median_nm=250.0, particles_per_ml=4e8).model_copy(
        update={"channel": Channel(mode="fluorescence", filter_wavelength_nm=500.0)}
    )
    store.add_measurement("L-1", fluorescence, by="cai")
    added = [e["after"] for e in store.history("L-1") if e["action"] == "measurement.add.nta"]
    assert [a.get("channel") for a in added] == [None, "fluorescence", "fluorescence"]
    assert [a.get("labelled") for a in added] == [None, {"marker": "CD63", "fraction": 0.064}, None]
    data = store.lot_data("L-1")
    assert len(data.nta_all) == 3 and len(data.labelled_records) == 1
    assert data.nta.concentration.particles_per_ml == 2.1e10 and data.nta.size.d50_nm == 115.0
    assert particles_per_unit(store.product_lot_data("EXO-1")[0]) == pytest.approx(2.1e10)
    result = store.evaluate("L-1")
    assert result.decision == "conforms", [(c.name, c.result, c.detail) for c in result.criteria]
    by_name = {c.name: c for c in result.criteria}
    assert by_name["Particles per vial"].value == pytest.approx(2.1e10)  # not 6.4e8 labelled
    assert by_name["Size mode"].value == pytest.approx(115.0 * 0.8711, rel=1e-3)  # not 160 nm
    assert by_name["CD63+ vesicles"].value == pytest.approx(0.064)
    assert by_name["CD63+ 100-400 nm"].value == pytest.approx(5e8 / 3.8e9)


def test_certificate_shows_the_labelled_fraction(store, tmp_path):
    record = labelled_measurement()
    store.add_measurement("L-1", record, by="cai")
    store.approve("L-1", by="bob")
    out = tmp_path / "coa.pdf"
    write_coa(store, "L-1", out)
    text = " ".join(page.extract_text() for page in PdfReader(out).pages)
    flat = squash(text)
    for expected in (
        "CD63+ vesicles",
        "6.4 % (5.6–7.3 %)",
        "≥ 5 % CD63-labelled",
        "CD63-labelled, 50–1000 nm; controls subtracted: label-only 1.20e+08/mL, "
        "unstained 3.00e+07/mL",
        "13.2 % (11.2–15.5 %)",
        "≥ 10 % cd63-labelled, 100–400 nm",
        "100–400 nm (2 size classes combined; approximate interval)",
        "UNSIGNED COPY",  # written without keys: a copy, not the signed certificate
        "The lot is released",
        "entered by ana",  # the scatter measurement's analyst, not the labelled record's
        "labelled fraction (CD63): label-only control",
    ):
        assert squash(expected) in flat, expected
    for name, sha in record.provenance.inputs.items():
        assert sha in flat and name in text


def test_signed_certificate_of_a_labelled_lot_verifies(store, tmp_path):
    from exocheck.certify import Keyring, issue_certificate, load_public_keys, verify_pdf

    store.add_measurement("L-1", labelled_measurement(), by="cai")
    store.approve("L-1", by="bob")
    keyring = Keyring(tmp_path / "keys")
    keyring.init("Example Biologics", public_url="https://verify.example.org")
    certificate = issue_certificate(store, "L-1", keyring, by="bob")
    keys = load_public_keys(keyring.export_public(tmp_path / "public.json"))
    data = verify_pdf(certificate.pdf, keys).data
    printed = {c["name"]: c["printed_value"] for c in data["criteria"]}
    assert printed["CD63+ vesicles"] == "6.4 % (5.6–7.3 %)"
    roles = {f["role"] for f in data["raw_files"]}
    assert "labelled fraction (CD63): fluorescence" in roles


def test_inputs_keyed_by_role_keep_their_roles_when_names_repeat():
    """``labelled-fraction`` keys its inputs ``role/file``: two captures both named video.tif are
    listed with their own roles, under their file names."""
    from types import SimpleNamespace

    from exocheck.records import Provenance
    from exocheck.report.coa import _labelled_inputs

    record = labelled_measurement()
    labelled = record.labelled.model_copy(
        update={"inputs": {"scatter": ["video.tif"], "fluorescence": ["video.tif"]}}
    )
    record = record.model_copy(
        update={
            "labelled": labelled,
            "provenance": Provenance(
                inputs={"scatter/video.tif": "a" * 64, "fluorescence/video.tif": "b" * 64}
            ),
        }
    )
    rows = _labelled_inputs(SimpleNamespace(labelled_records=[record]))
    assert [(r["filename"], r["sha256"][0], r["role"]) for r in rows] == [
        ("video.tif", "a", "labelled fraction (CD63): scatter"),
        ("video.tif", "b", "labelled fraction (CD63): fluorescence"),
    ]

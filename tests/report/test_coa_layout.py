"""The certificate as a QA manager reads it: the detection limit stated and every size or count
claim set against it, every person by full name, the issuer's letterhead, method, instrument and
calibration cited per measurement, storage from the product's stability study, and a layout that
holds on paper (table headers on every page, no row split, no nearly empty page, plots without
offset text or overlapping labels)."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from itertools import combinations
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from exocheck.auth import Accounts
from exocheck.certify import Keyring, issue_certificate, load_public_keys, verify_pdf
from exocheck.lots.signatures import Signing
from exocheck.qc.comparability import control_chart
from exocheck.report import plots, render_html
from exocheck.report.coa import _citation, detection_limit_notes
from exocheck.store import Store

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from qc_factories import SPEC_YAML, fill_lot, lognormal_measurement

LIMIT_NM = 103.4
#: criteria added to the test specification so that the results table runs over pages
EXTRA_CRITERIA = 70
PEOPLE = {
    "ana": ("analyst", "Ana Alves"),
    "rita": ("reviewer", "Rita Rhodes"),
    "quinn": ("qa", "Quinn Quist"),
}
LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 60 20">'
    '<rect x="0" y="0" width="60" height="20" fill="#1f3b73"/></svg>'
)
ADDRESS = "QC laboratory, 5 Example Road; 12345 Sampletown"


def password(name: str) -> str:
    return f"{name}-secret-pw"


def many_criteria_spec() -> str:
    """The test specification and ``EXTRA_CRITERIA`` endotoxin limits, each with a limit of
    its own (``< 101 EU/mL`` …) so that a row's name and limit can be found on its page."""
    extra = "".join(
        f"  - {{name: Endotoxin check {i:02d}, kind: limit, quantity: "
        f"safety.endotoxin_eu_per_ml, less_than: {101 + i}, unit: EU/mL}}\n"
        for i in range(EXTRA_CRITERIA)
    )
    return SPEC_YAML + extra


def measured(limit_nm: float | None = LIMIT_NM, **settings):
    """A particle record whose engine found the detection limit ``limit_nm`` for n = 1.39."""
    record = lognormal_measurement(particles_per_ml=2.1e10)
    return record.model_copy(
        update={
            "diagnostics": {"detection_limit_nm": limit_nm},
            "settings": {"conditions": {"refractive_index": 1.39}, **settings},
        }
    )


def sign(store: Store, lot: str, who: str, meaning: str) -> None:
    Signing(store).sign(
        lot, user=who, password=password(who), meaning=meaning, reason="meets the specification"
    )


@pytest.fixture(scope="module")
def issued(tmp_path_factory):
    """``(folder, store, keyring, certificate)``: lot L-1 against the long specification,
    entered by Ana Alves, reviewed by Rita Rhodes, released by Quinn Quist, with a signed
    certificate under a letterhead with address and logo (made once: Argon2 and PDF signing
    are slow)."""
    folder = tmp_path_factory.mktemp("layout")
    with Store.open(f"sqlite:///{folder / 'qc.db'}") as store:
        store.add_product("EXO-1", particles_per_unit=2e10, fill_volume_ml=1.0, by="admin")
        (folder / "spec.yaml").write_text(many_criteria_spec())
        store.add_specification(folder / "spec.yaml", product="EXO-1", by="admin")
        accounts = Accounts(store)
        for name, (role, printed) in PEOPLE.items():
            accounts.add_user(
                name, role=role, password=password(name), by="admin", printed_name=printed
            )
        store.add_lot("L-1", "EXO-1", by="ana")
        store.add_measurement(
            "L-1",
            measured(
                method={"name": "SOP-NTA-012", "version": "4"},
                instrument={"model": "ZetaView PMX-120", "serial": "ZV-0815"},
            ),
            by="ana",
        )
        store.add_protein("L-1", 5.0, by="ana")
        store.add_markers(
            "L-1",
            {"CD9": "present", "CD63": "present", "CD81": "present", "TSG101": "present"}
            | {"calnexin": "absent"},
            by="ana",
        )
        store.add_safety("L-1", {"endotoxin_eu_per_ml": 0.05, "sterility": "negative"}, by="ana")
        sign(store, "L-1", "rita", "reviewed")
        sign(store, "L-1", "quinn", "approved")
        (folder / "logo.svg").write_text(LOGO_SVG)
        keyring = Keyring(folder / "keys")
        keyring.init(
            "Example Biologics",
            public_url="https://verify.example.org",
            address=ADDRESS,
            logo=folder / "logo.svg",
        )
        certificate = issue_certificate(store, "L-1", keyring, by="quinn")
        (folder / "coa.pdf").write_bytes(certificate.pdf)
        yield folder, store, keyring, certificate


def page_texts(pdf: Path) -> list[str]:
    """The text of each page (``pdftotext -f N -l N``), blanks collapsed."""
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    pages = int(re.search(r"^Pages:\s+(\d+)", info.stdout, re.MULTILINE).group(1))
    out = []
    for n in range(1, pages + 1):
        text = subprocess.run(
            ["pdftotext", "-f", str(n), "-l", str(n), str(pdf), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        out.append(" ".join(text.split()))
    return out


def squash(text: str) -> str:
    """``text`` without blanks: table cells and wrapped lines come out of a PDF in varying
    order and breaks, what a cell says does not."""
    return "".join(text.split())


def page_fill(pdf: Path, folder: Path) -> list[float]:
    """For each page, how far down its text area the ink reaches (0: blank, 1: full).

    Pages are rasterised at 50 dpi in grey (``pdftoppm -r 50 -gray``); ink is a pixel darker
    than 160/255: text, rules and figures, not the pale watermark of a draft, table borders or
    header shading. The running header and the footer (in the 16 mm page margins) are left
    out.
    """
    prefix = folder / "page"
    subprocess.run(
        ["pdftoppm", "-r", "50", "-gray", str(pdf), str(prefix)], check=True, capture_output=True
    )
    fills = []
    for path in sorted(folder.glob("page-*.pgm"), key=lambda p: int(p.stem.split("-")[-1])):
        raw = path.read_bytes()
        magic, width, height, _depth, pixels = raw.split(maxsplit=4)
        assert magic == b"P5"
        image = np.frombuffer(pixels, dtype=np.uint8).reshape(int(height), int(width))
        margin = round(16 / 25.4 * 50)  # the 16 mm top and bottom margins, in pixels
        body = image[margin : image.shape[0] - margin]
        rows = np.flatnonzero((body < 160).any(axis=1))
        fills.append(0.0 if rows.size == 0 else (rows[-1] + 1) / body.shape[0])
    return fills


def test_results_table_header_repeats_and_rows_stay_whole(issued):
    folder, *_ = issued
    pages = page_texts(folder / "coa.pdf")
    with_rows = [i for i, text in enumerate(pages) if "Endotoxin check" in text]
    assert len(with_rows) >= 2, "the long results table should run over pages"
    for i in with_rows:
        assert "Criterion Value Limit Result" in pages[i], f"page {i + 1} lacks the header"
    for k in range(EXTRA_CRITERIA):
        name = f"Endotoxin check {k:02d}"
        limit = re.compile(rf"< {101 + k} EU/mL")
        on = [i for i, text in enumerate(pages) if name in text]
        assert len(on) == 1 and limit.search(pages[on[0]]), f"{name} is split over pages"
    # the method table also keeps its header where it starts
    assert any("Measurement Method (version) Instrument (serial)" in t for t in pages)


#: the least a page before the last is filled: the largest block kept whole (a heading with a
#: figure and its caption) is about a third of a page, so a page left emptier than this has
#: been broken where it should not
MIN_PAGE_FILL = 0.6
#: the least the last page is filled: the nearly blank page 3 of the demo's certificate (its
#: signature block alone) reached 13 % of the page; a fifth is about twelve lines
MIN_LAST_FILL = 0.2


def test_no_page_is_nearly_empty(issued, tmp_path):
    folder, *_ = issued
    fills = page_fill(folder / "coa.pdf", tmp_path)
    assert len(fills) >= 3
    assert all(f >= MIN_PAGE_FILL for f in fills[:-1]), fills
    assert fills[-1] >= MIN_LAST_FILL, fills


def test_a_nearly_empty_last_page_is_pulled_onto_the_page_before(tmp_path):
    """Two lots (so a control chart): at full size the raw inputs and the signature block
    spill onto a third page of their own; the certificate is laid out again with smaller
    figures and fits on two, every page filled."""
    from weasyprint import HTML

    from exocheck.report.coa import last_page_fill, render_pdf

    with Store.open(f"sqlite:///{tmp_path / 'qc.db'}") as store:
        store.add_product("EXO-1", particles_per_unit=2e10, fill_volume_ml=1.0, by="ana")
        (tmp_path / "spec.yaml").write_text(SPEC_YAML)
        store.add_specification(tmp_path / "spec.yaml", product="EXO-1", by="qa")
        fill_lot(store, "L-OK", particles_per_ml=2.1e10)
        fill_lot(store, "L-SHORT", particles_per_ml=1.1e10)
        store.approve("L-OK", by="bob")
        html = render_html(store, "L-OK")
    full = HTML(string=html).render()
    assert len(full.pages) == 3 and last_page_fill(full) < 0.25  # what it would have been
    (tmp_path / "coa.pdf").write_bytes(render_pdf(html))
    fills = page_fill(tmp_path / "coa.pdf", tmp_path)
    assert len(fills) == 2, fills
    assert fills[0] >= MIN_PAGE_FILL and fills[-1] >= MIN_LAST_FILL, fills
    text = squash(" ".join(page_texts(tmp_path / "coa.pdf")))
    assert squash("Released by bob") in text and squash("Control chart of EXO-1 lots") in text


def test_detection_limit_full_names_and_letterhead(issued):
    folder, store, keyring, certificate = issued
    text = " ".join(page_texts(folder / "coa.pdf"))
    flat = squash(text)
    for expected in (
        "Detection limit 103 nm (particles of refractive index 1.39)",
        "of particles above the detection limit of 103 nm; the range starts below the limit: "
        "particles of 50–103 nm are not seen and not counted",
        "counts only particles above the detection limit of 103 nm",
        "entered by Ana Alves (ana)",
        "Data entered by Ana Alves (ana)",
        "Released by Quinn Quist (quinn)",
        "Signature: reviewed Rita Rhodes (rita), role reviewer",
        "Signature: approved Quinn Quist (quinn), role qa",
        "Example Biologics QC laboratory, 5 Example Road 12345 Sampletown",
        "SOP-NTA-012@4",
        "ZetaView PMX-120, s/n ZV-0815",
    ):
        assert squash(expected) in flat, expected
    # the size fraction's value is followed by what it is a fraction of
    assert re.search(r"Particles50-400nm[\d.]+%ofparticlesabovethedetectionlimitof103nm", flat)
    # a person is never named by the user name alone
    for name, (_, printed) in PEOPLE.items():
        assert len(re.findall(rf"\b{name}\b", text)) == text.count(f"{printed} ({name})"), name
    # the signed certificate still verifies: the page shows what coa.json states
    keys = load_public_keys(keyring.export_public(folder / "public.json"))
    assert verify_pdf(certificate.pdf, keys).data["lot"]["number"] == "L-1"
    html = render_html(store, "L-1", letterhead=keyring.letterhead())
    assert 'class="logo" src="data:image/svg+xml;base64,' in html


def test_size_claims_relative_to_the_detection_limit():
    from exocheck.qc.specification import Specification

    spec = Specification.model_validate(
        {
            "schema": "exocheck.spec/1",
            "name": "s",
            "version": 1,
            "criteria": [
                {"name": "above", "kind": "size_fraction", "window_nm": [120, 400]}
                | {"min_fraction": 0.5},
                {"name": "across", "kind": "size_fraction", "window_nm": [50, 400]}
                | {"min_fraction": 0.5},
                {"name": "below", "kind": "size_fraction", "window_nm": [30, 90]}
                | {"min_fraction": 0.5},
                {"name": "mode", "kind": "range", "quantity": "size.mode_nm", "min": 50},
                {"name": "claim", "kind": "label_claim", "tolerance_percent": 20},
                {"name": "endotoxin", "kind": "limit", "quantity": "safety.endotoxin_eu_per_ml"}
                | {"less_than": 0.25},
            ],
        }
    )
    notes = detection_limit_notes(spec, 103.0)
    assert notes["above"] == "of particles above the detection limit of 103 nm"
    assert "particles of 50–103 nm are not seen and not counted" in notes["across"]
    assert "the whole range 30–90 nm lies below the detection limit" in notes["below"]
    assert "lower limit (50 nm) is below the detection limit" in notes["mode"]
    assert notes["claim"] == "counts only particles above the detection limit of 103 nm"
    assert "endotoxin" not in notes
    unknown = detection_limit_notes(spec, None)
    assert all("detection limit not recorded" in note for note in unknown.values())


def test_method_instrument_and_calibration_cited_or_not_recorded(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'qc.db'}") as store:
        store.add_product("EXO-1", particles_per_unit=2e10, fill_volume_ml=1.0, by="ana")
        (tmp_path / "spec.yaml").write_text(SPEC_YAML)
        store.add_specification(tmp_path / "spec.yaml", product="EXO-1", by="qa")
        fill_lot(store, "L-1")
        calibration = {
            "standard": "100 nm polystyrene beads",
            "lot": "B-77",
            "date": "2026-01-10",
            "due": "2026-02-10",
        }
        record = measured().model_copy(
            update={
                "date": datetime(2026, 3, 1, 10, 0),
                "instrument_summary": {"calibration": calibration},
            }
        )
        store.add_measurement("L-1", record, by="ana")
        html = render_html(store, "L-1")
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace(" ,", ",").replace(" ;", ";")
    assert "Method, instrument and calibration" in text
    # both particle records were made without a method; the protein assay, the marker panel
    # and the safety tests are not exocheck methods' to cover, and are not "no method"
    assert "2 of 2 particle measurement(s) cite no method" in text
    assert text.count("NO METHOD RECORDED") == 2
    assert "BCA as the record states it" in text and "version not recorded" not in text
    # no instrument or calibration for the protein assay; neither, nor a procedure, for the
    # marker panel and the safety tests, whose records name none
    assert text.count("—*") == 2 + 3 + 3
    assert "* exocheck's methods, instruments and calibrations cover particle measurements" in text
    assert (
        "standard 100 nm polystyrene beads; lot B-77; date 2026-01-10; due 2026-02-10 "
        "— past due at the measurement" in text
    )
    # a record made under a method: its stamp names the method, the register's instrument and
    # the stored calibration, whose standard the store names
    stamped = {
        "settings": {
            "method": {
                "name": "nta-ev-scatter",
                "version": 2,
                "instrument_serial": "NS-1",
                "instrument_model": "NanoSight NS300",
                "calibration_id": 7,
            },
            "calibration": {
                "bead_diameter_nm": 100.0,
                "known_concentration_per_ml": 2.5e8,
                "standard_lot": "PS-9",
                "made_at": "2026-01-01T09:30:00+00:00",
                "valid_until": "2026-01-31T09:30:00+00:00",
                "calibration_id": 7,
            },
        },
        "date": "2026-01-20T10:00:00",
        "source": {"instrument": "exocheck"},
    }
    cited = _citation(
        9,
        "nta",
        stamped,
        stored={"standard_name": "PS beads", "method_reference": "EV NTA · SOP-QC-041"},
    )
    assert cited["method"] == "nta-ev-scatter@2" and cited["method_version"]
    assert cited["covered"] and not cited["no_method"]
    assert cited["method_note"] == "EV NTA · SOP-QC-041"
    assert (cited["instrument_model"], cited["instrument_serial"]) == ("NanoSight NS300", "NS-1")
    assert cited["calibration"] == {
        "standard": "PS beads (certified 100 nm, 2.50e+08 per mL)",
        "lot": "PS-9",
        "date": "2026-01-01",
        "due": "2026-01-31",
        "id": 7,
    }
    assert not cited["calibration_overdue"]
    late = _citation(9, "nta", stamped | {"date": "2026-02-02T10:00:00"})
    assert late["calibration_overdue"]
    assert late["calibration"]["standard"] == "100 nm bead standard at 2.50e+08 /mL"
    bare = _citation(3, "nta", {"source": {"instrument": "ZetaView"}})
    assert bare["method"] is None and bare["no_method"] and bare["instrument_model"] == "ZetaView"
    assert bare["calibration"] == {}
    protein = _citation(2, "protein", {"ug_per_ml": 5.0, "method": "BCA (SOP-QC-012)"})
    assert protein["method"] == "BCA (SOP-QC-012)"
    assert not protein["covered"] and not protein["no_method"]
    safety = _citation(4, "safety", {"results": {"sterility": "negative"}})
    assert safety["method"] is None and not safety["no_method"]


def test_storage_conditions_of_the_products_study(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'qc.db'}") as store:
        store.add_product("EXO-1", particles_per_unit=2e10, fill_volume_ml=1.0, by="ana")
        (tmp_path / "spec.yaml").write_text(SPEC_YAML)
        store.add_specification(tmp_path / "spec.yaml", product="EXO-1", by="qa")
        fill_lot(store, "L-1")
        rows = ["lot,day,temperature_c,container,concentration_per_ml"]
        for lot in ("S-1", "S-2"):
            store.add_lot(lot, "EXO-1", manufactured="2025-01-15", by="ana")
            for temp, rate in ((4, 0.01), (25, 0.05)):
                rows += [
                    f"{lot},{day},{temp},vial,{1e11 * np.exp(-rate * day):.6g}"
                    for day in (0, 7, 14, 28)
                ]
        (tmp_path / "study.csv").write_text("\n".join(rows) + "\n")
        store.import_study(
            tmp_path / "study.csv",
            name="EXO-stability",
            product="EXO-1",
            by="ana",
            response_col="concentration_per_ml",
            time_col="day",
            time_unit="day",
            protocol={"storage": "refrigerated", "condition": {"temperature_c": 4}},
        )
        html = render_html(store, "L-1")
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace(" ;", ";")
    assert "Storage and expiry" in text
    assert "Lot expiry not stated" in text
    assert "conditions studied: 4 °C, vial; 25 °C, vial; labelled storage: 4 °C, vial" in text
    assert "(ICH Q1E storage class: refrigerated)" in text


def _draw(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def test_size_plot_labels_never_overlap_and_axes_have_no_offset_text():
    """D10, mode, D50 and D90 within 6 nm of each other (a narrow peak): their labels, as the
    renderer draws them, overlap neither each other nor the legend."""
    size = lognormal_measurement(median_nm=115.0, gsd=1.05).size
    markers = {"D10": 111.0, "mode": 114.0, "D50": 115.0, "D90": 117.0}
    with plt.rc_context(plots._STYLE):
        fig = plots.size_distribution_figure(
            size, [(50.0, 400.0, "Particles 50–400 nm")], markers, detection_limit_nm=LIMIT_NM
        )
        renderer = _draw(fig)
        ax = fig.axes[0]
        labels = [t for t in ax.texts if t.get_text().endswith(" nm")]
        assert sorted(t.get_text() for t in labels) == sorted(
            f"{k} {v:.0f} nm" for k, v in markers.items()
        )
        boxes = [t.get_window_extent(renderer) for t in labels]
        legend = ax.get_legend().get_window_extent(renderer)
        for a, b in combinations(boxes, 2):
            assert not a.overlaps(b), (a, b)
        assert not any(box.overlaps(legend) for box in boxes)
        assert ax.xaxis.get_offset_text().get_text() == ""
        assert ax.yaxis.get_offset_text().get_text() == ""
        assert "not detected (< 103 nm)" in [t.get_text() for t in ax.get_legend().texts]
        plt.close(fig)


def test_count_axes_state_their_power_of_ten_in_the_label():
    with plt.rc_context(plots._STYLE):
        fig = plots.claim_figure(1.9e11, (1.7e11, 2.1e11), 2e11, 20, "particles per vial")
        _draw(fig)
        ax = fig.axes[0]
        assert ax.xaxis.get_offset_text().get_text() == ""
        assert ax.get_xlabel() == "particles per vial (×10¹¹)"
        ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert ticks and all(re.fullmatch(r"-?\d+(\.\d+)?", t) for t in ticks), ticks
        plt.close(fig)
        chart = control_chart([1.0e11, 1.2e11, 0.9e11], ["A", "B", "C"], attribute="n")
        fig = plots.control_chart_figure(chart, "B", "particles per vial", (8e10, 1.2e11))
        _draw(fig)
        ax = fig.axes[0]
        assert ax.yaxis.get_offset_text().get_text() == ""
        assert ax.get_ylabel() == "particles per vial (×10¹¹)"
        plt.close(fig)

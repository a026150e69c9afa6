"""The lot lifecycle of :mod:`exocheck.lots`, case by case: a recall shows everywhere and ends
certification, the evidence gates the decision, "approved" means released, corrections keep the
row, an empty lot awaits data, a specification serves two products, lot numbers are checked
once."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
from qc_factories import SPEC_YAML, fill_lot, lognormal_measurement
from web_helpers import USERS, password, stock

from exocheck.errors import NotAllowed, ParameterError, StoreError
from exocheck.lots import actions
from exocheck.lots.certificate import certificate
from exocheck.lots.signatures import Signing, recall_lot
from exocheck.lots.status import STATUSES, lot_state, lot_status, overview
from exocheck.records import VideoSummary
from exocheck.store import Store


@pytest.fixture(scope="module")
def users_db(tmp_path_factory) -> Path:
    """A store with product EXO-1, the test specification and one user of each role (made
    once: Argon2 hashing is slow on purpose)."""
    folder = tmp_path_factory.mktemp("lots")
    stock(f"sqlite:///{folder / 'qc.db'}", folder)
    return folder / "qc.db"


@pytest.fixture
def store(users_db, tmp_path):
    shutil.copyfile(users_db, tmp_path / "qc.db")
    with Store.open(f"sqlite:///{tmp_path / 'qc.db'}") as s:
        yield s


def sign(store, lot: str, who: str, meaning: str, **kw):
    return Signing(store).sign(
        lot, user=who, password=password(who), meaning=meaning, reason=f"{meaning} by {who}", **kw
    )


def release(store, lot: str) -> None:
    fill_lot(store, lot, particles_per_ml=2.1e10)
    sign(store, lot, "rita", "reviewed")
    sign(store, lot, "quinn", "approved")


def test_every_status_comes_from_one_function():
    """The whole state table of :func:`lot_status`, and no other module names a status."""
    table = {
        (None, None, False, False): "awaiting data",
        ("incomplete", None, False, False): "awaiting data",
        ("conforms", None, False, False): "in review",
        ("does-not-conform", None, False, False): "in review",
        ("does-not-conform", None, True, False): "rejected",
        ("conforms", "conforms", False, False): "released",
        ("inconclusive", "inconclusive", False, False): "rejected",
        ("conforms", "conforms", False, True): "recalled",
    }
    for (decision, signed, rejected, recalled), status in table.items():
        got = lot_status(
            decision=decision,
            signed_decision=signed,
            rejected_by_signature=rejected,
            recalled=recalled,
        )
        assert got == status
    assert set(table.values()) == set(STATUSES)
    # "grep finds no other place that decides it": the status words are assigned only there
    src = Path(__file__).parents[2] / "src" / "exocheck"
    deciding = re.compile(r"return \"(awaiting data|in review|released|recalled)\"")
    places = sorted(
        str(p.relative_to(src)) for p in src.rglob("*.py") if deciding.search(p.read_text())
    )
    assert places == ["lots/status.py"]


def test_a_recalled_lot_is_recalled_everywhere_and_gets_no_certificate(store, tmp_path):
    """Case 1: after a recall, every list and state says recalled; no certificate (signed or
    draft) is issued any more, and its data stay frozen."""
    release(store, "NS-001")
    assert lot_state(store, "NS-001")["status"] == "released"
    recall_lot(store, "NS-001", user="quinn", password=password("quinn"), reason="sterility OOS")
    state = lot_state(store, "NS-001")
    assert state["status"] == "recalled" and state["recall"]["reason"] == "sterility OOS"
    assert [r["status"] for r in overview(store) if r["lot"] == "NS-001"] == ["recalled"]
    assert store.list_lots()[0]["status"] == "recalled"
    with pytest.raises(NotAllowed, match="recalled"):
        certificate(store, "NS-001", by="quinn")
    with pytest.raises(NotAllowed, match=r"recalled|can no longer change"):
        store.add_protein("NS-001", 3.0, by="ana")
    with pytest.raises(NotAllowed, match="already recalled"):
        recall_lot(store, "NS-001", user="quinn", password=password("quinn"), reason="again")


def _flawed_export(particles_per_ml: float = 2.1e10):
    """An instrument import with failed videos (averaged in as zeros) and no recorded dilution,
    as NanoSight exports come."""
    record = lognormal_measurement(particles_per_ml=particles_per_ml)
    record.source.instrument = "NanoSight NS300"
    record.concentration.calibrated = None
    record.per_video = [
        VideoSummary(name=f"video {i}", concentration_per_ml=0.0 if i < 3 else 2.8e10)
        for i in range(9)
    ]
    record.warnings = ["dilution not recorded: concentration is as measured in the cell"]
    return record


def _flawed_lot(store, lot: str) -> None:
    store.add_lot(lot, "EXO-1", by="ana")
    store.add_measurement(lot, _flawed_export(), by="ana")
    store.add_protein(lot, 5.0, by="ana")
    store.add_markers(
        lot,
        {"CD9": "present", "CD63": "present", "CD81": "present", "TSG101": "present"}
        | {"calnexin": "absent"},
        by="ana",
    )
    store.add_safety(lot, {"endotoxin_eu_per_ml": 0.05, "sterility": "negative"}, by="ana")


def test_evidence_warnings_make_what_they_undermine_inconclusive(store):
    """Case 2: failed videos and an unrecorded dilution undermine the concentration: the label
    claim and purity cannot pass on it, so the lot is inconclusive, not released; a reviewer
    accepts each warning as a deviation by e-signature and the criteria are judged."""
    _flawed_lot(store, "NS-002")
    result = store.evaluate("NS-002")
    by_name = {c.name: c for c in result.criteria}
    assert result.decision == "inconclusive"
    assert by_name["Particles per vial"].result == "inconclusive"
    assert "3 of 9 videos" in by_name["Particles per vial"].detail
    assert by_name["Purity"].result == "inconclusive"
    assert by_name["Size mode"].result == "pass"  # size is not undermined by these
    assert {c.code for c in result.caveats} == {"failed-videos", "dilution-not-recorded"}
    # approving it is refused in one line (case 3); nothing is signed
    sign(store, "NS-002", "rita", "reviewed")
    with pytest.raises(NotAllowed, match="does not conform \\(decision: inconclusive\\)"):
        sign(store, "NS-002", "quinn", "approved")
    assert lot_state(store, "NS-002")["status"] == "in review"
    assert store.history("NS-002")[-1]["action"] == "signature.refused"
    # the analyst who entered the data cannot accept its flaws (four eyes)
    with pytest.raises(NotAllowed):
        sign(store, "NS-002", "ana", "deviation accepted", deviation="failed-videos")
    with pytest.raises(NotAllowed, match="no warning 'mixed-samples'"):
        sign(store, "NS-002", "rita", "deviation accepted", deviation="mixed-samples")
    sign(store, "NS-002", "rita", "deviation accepted", deviation="failed-videos")
    assert store.evaluate("NS-002").decision == "inconclusive"  # one warning still open
    sign(store, "NS-002", "rita", "deviation accepted", deviation="dilution-not-recorded")
    result = store.evaluate("NS-002")
    assert result.decision == "conforms"
    assert all(c.accepted and "Rita Example" in c.accepted for c in result.caveats)
    assert "deviation accepted" in {c.name: c for c in result.criteria}["Purity"].detail
    # the review before the deviations bound other content: a new review is needed
    with pytest.raises(NotAllowed, match="no review of its current data"):
        sign(store, "NS-002", "quinn", "approved")
    sign(store, "NS-002", "rita", "reviewed")
    sign(store, "NS-002", "quinn", "approved")
    assert lot_state(store, "NS-002")["status"] == "released"
    document, _ = certificate(store, "NS-002", by="quinn", suffix=".html")
    html = document.content.decode()
    assert "Accepted deviations" in html and "failed (concentration 0)" in html
    assert "Accepted by Rita Example" in html and "EVIDENCE WARNINGS" not in html
    # named as everywhere on the certificate: printed name and user name
    assert html.count("Accepted by Rita Example (rita), role reviewer, ") == 2


def test_an_inconclusive_lot_is_rejected_not_approved(store):
    """Case 3: 'rejected' is what QA signs on a lot that does not conform."""
    _flawed_lot(store, "NS-003")
    sign(store, "NS-003", "rita", "reviewed")
    sign(store, "NS-003", "quinn", "rejected")
    assert lot_state(store, "NS-003")["status"] == "rejected"
    preview = Signing(store).preview("NS-003", "approved")
    assert "rejected" in preview and "inconclusive" in preview


def test_an_empty_lot_awaits_data_with_its_missing_criteria(store):
    """Case 6: a new lot is awaiting data, never does-not-conform; its draft says so."""
    actions.create_lot(store, "NS-004", "EXO-1", by="ana")
    state = lot_state(store, "NS-004")
    assert state["status"] == "awaiting data"
    assert store.evaluate("NS-004").decision == "incomplete"
    assert "Size mode" in state["missing"] and "Purity" in state["missing"]
    document, _ = certificate(store, "NS-004", by="ana", suffix=".html")
    html = document.content.decode()
    assert "DRAFT — AWAITING DATA" in html and "DOES-NOT-CONFORM" not in html


def test_a_withdrawn_measurement_stays_and_no_longer_counts(store):
    """Case 10: a wrong measurement is withdrawn by e-signature; the decision is recomputed."""
    fill_lot(store, "NS-005", particles_per_ml=2.1e10)
    wrong = store.add_measurement("NS-005", lognormal_measurement(particles_per_ml=4e9), by="ana")
    assert store.evaluate("NS-005").decision == "does-not-conform"  # the newest one counts
    from exocheck.lots.signatures import withdraw

    with pytest.raises(StoreError, match="no measurement 999"):
        withdraw(store, "NS-005", 999, user="ana", password=password("ana"), reason="x")
    with pytest.raises(NotAllowed):
        withdraw(store, "NS-005", wrong, user="adam", password=password("adam"), reason="x")
    record = withdraw(
        store, "NS-005", wrong, user="ana", password=password("ana"), reason="wrong dilution"
    )
    assert record["measurement"] == wrong and record["by"] == "Ana Example"
    assert store.evaluate("NS-005").decision == "conforms"
    info = store.lot_info("NS-005")
    kept = {x["id"]: x["withdrawn"] for x in info["measurements"]}
    assert wrong in kept and kept[wrong]["reason"] == "wrong dilution"  # the row stays
    assert [e["action"] for e in store.history("NS-005")][-1] == "measurement.withdraw"
    with pytest.raises(StoreError, match="already withdrawn"):
        withdraw(store, "NS-005", wrong, user="ana", password=password("ana"), reason="x")


def test_one_specification_serves_two_products(store, tmp_path):
    """Case 7: storing the same specification for a second product links it; that product's
    lots are then held against it."""
    store.add_product("EXO-2", particles_per_unit=2e10, fill_volume_ml=1.0, by="qa")
    (tmp_path / "spec.yaml").write_text(SPEC_YAML)
    info = store.add_specification(tmp_path / "spec.yaml", product="EXO-2", by="qa")
    assert info["changed"] and info["serves"] == ["EXO-1", "EXO-2"]
    again = store.add_specification(tmp_path / "spec.yaml", product="EXO-2", by="qa")
    assert again["changed"] is False
    fill_lot(store, "NS-006", product="EXO-2")
    assert store.lot_info("NS-006")["specification"] == "test-release@1"
    assert store.evaluate("NS-006").decision == "conforms"


@pytest.mark.parametrize(
    ("number", "why"),
    [("WEB/002", "'/'"), ("x" * 200, "at most 64"), ("", "needs a number"), ("-A", "starting")],
)
def test_lot_numbers_are_checked_once(store, number, why):
    """Case 8: one rule for every shell."""
    with pytest.raises(ParameterError, match=re.escape(why)):
        actions.create_lot(store, number, "EXO-1", by="ana")
    assert store.list_lots() == []


def test_users_sign_with_passwords_not_names(store):
    """In a store with users, a lot is signed only by electronic signature."""
    fill_lot(store, "NS-007")
    with pytest.raises(NotAllowed, match="sign with their password"):
        store.approve("NS-007", by="bob")
    assert set(USERS) >= {"rita", "quinn"}

"""What the public verification page shows (:func:`verify_certificate_status`): genuine and
released; superseded by a newer certificate; recalled by QA with an electronic signature and a
reason, at once; refused recalls audited; an unknown id; a stored record altered."""

from __future__ import annotations

import pytest
from signing_factories import stock
from sqlalchemy import text

from exocheck.auth import Accounts
from exocheck.certify import Keyring, issue_certificate, recall_lot, verify_certificate_status
from exocheck.errors import AuthError, NotAllowed
from exocheck.store import Store


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """Three released lots, a QA and a reviewer account, and one certificate of each lot (the
    tests each work on their own lot)."""
    folder = tmp_path_factory.mktemp("status")
    with Store.open(f"sqlite:///{folder / 'qc.db'}") as store:
        stock(store, folder, lots=("L-OK", "L-NEW", "L-BAD"))
        accounts = Accounts(store)
        accounts.add_user(
            "quinn",
            role="qa",
            password="correct horse 1",
            by="admin",
            printed_name="Quinn Q. Assurance",
        )
        accounts.add_user("rita", role="reviewer", password="correct horse 2", by="admin")
        keyring = Keyring(folder / "keys")
        keyring.init("Example Biologics")
        certificates = {
            lot: issue_certificate(
                store,
                lot,
                keyring,
                by="bob",
                expiry={
                    "expiry": "2027-11-01",
                    "particles_per_unit": 1.6e10,
                    "lower_95": 1.4e10,
                    "label_claim": 2e10,
                },
            )
            for lot in ("L-OK", "L-NEW", "L-BAD")
        }
        yield store, keyring, certificates


def test_issued_certificate_is_genuine_and_released(released):
    store, _, certificates = released
    certificate = certificates["L-NEW"]
    status = verify_certificate_status(store, certificate.certificate_id)
    assert status["found"] and status["genuine"]
    assert status["status"] == "released" and status["recall"] is None
    assert status["lot"] == "L-NEW" and status["decision"] == "conforms"
    assert status["expiry_prediction"] == {
        "expiry": "2027-11-01",
        "particles_per_unit": 1.6e10,
        "lower_95": 1.4e10,
        "label_claim": 2e10,
    }
    assert [c["result"] for c in status["criteria"]] == ["pass"] * len(status["criteria"])
    assert status["criteria"][0]["printed_value"]


def test_a_newer_certificate_supersedes(released):
    store, keyring, certificates = released
    first = certificates["L-NEW"]
    second = issue_certificate(store, "L-NEW", keyring, by="bob")
    old = verify_certificate_status(store, first.certificate_id)
    assert old["status"] == "superseded" and old["superseded_by"] == second.certificate_id
    assert verify_certificate_status(store, second.certificate_id)["status"] == "released"


def test_recall_needs_qa_and_the_password(released):
    store, _, certificates = released
    with pytest.raises(NotAllowed, match="role reviewer cannot recall"):
        recall_lot(store, "L-OK", user="rita", password="correct horse 2", reason="r")
    with pytest.raises(AuthError):
        recall_lot(store, "L-OK", user="quinn", password="wrong", reason="r")
    actions = [e["action"] for e in store.history("L-OK")]
    assert "signature.refused" in actions and "signature.failed" in actions
    status = verify_certificate_status(store, certificates["L-OK"].certificate_id)
    assert status["status"] == "released"


def test_recall_shows_at_once_with_its_reason(released):
    store, _, certificates = released
    certificate = certificates["L-OK"]
    record = recall_lot(
        store,
        "L-OK",
        user="quinn",
        password="correct horse 1",
        reason="particle count below claim in retained samples",
    )
    status = verify_certificate_status(store, certificate.certificate_id)
    assert status["status"] == "recalled" and status["genuine"]
    assert status["recall"]["reason"] == "particle count below claim in retained samples"
    assert status["recall"]["by"] == "Quinn Q. Assurance" == record["by"]
    assert status["status_since"] == record["at"]
    assert store.history("L-OK")[-1]["action"] == "lot.recall"
    with pytest.raises(NotAllowed, match="already recalled"):
        recall_lot(store, "L-OK", user="quinn", password="correct horse 1", reason="again")


def test_unknown_and_altered_certificates(released):
    store, _, certificates = released
    certificate = certificates["L-BAD"]
    assert verify_certificate_status(store, "COA-0000-0000-0000-0000") == {
        "found": False,
        "certificate_id": "COA-0000-0000-0000-0000",
    }
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE certificates SET coa_json = replace(coa_json, "
                "'\"conforms\"', '\"CONFORMS\"')"
            )
        )
    assert verify_certificate_status(store, certificate.certificate_id)["genuine"] is False

"""What the public verification page shows (:func:`verify_certificate_status`): genuine and
released; superseded by a newer certificate; recalled by QA with an electronic signature and a
reason, at once; refused recalls audited; an unknown id; a stored record altered."""

from __future__ import annotations

import pytest
from conftest import stock
from sqlalchemy import text

from exocheck.auth import Accounts
from exocheck.errors import AuthError, NotAllowed
from exocheck.signing import Keyring, issue_certificate, recall_lot, verify_certificate_status
from exocheck.store import Store


@pytest.fixture
def released(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'qc.db'}") as store:
        stock(store, tmp_path)
        accounts = Accounts(store)
        accounts.add_user(
            "quinn",
            role="qa",
            password="correct horse 1",
            by="admin",
            printed_name="Quinn Q. Assurance",
        )
        accounts.add_user("rita", role="reviewer", password="correct horse 2", by="admin")
        keyring = Keyring(tmp_path / "keys")
        keyring.init("Example Biologics")
        certificate = issue_certificate(
            store,
            "L-OK",
            keyring,
            by="bob",
            expiry={
                "expiry": "2027-11-01",
                "particles_per_unit": 1.6e10,
                "lower_95": 1.4e10,
                "label_claim": 2e10,
            },
        )
        yield store, keyring, certificate


def test_issued_certificate_is_genuine_and_released(released):
    store, _, certificate = released
    status = verify_certificate_status(store, certificate.certificate_id)
    assert status["found"] and status["genuine"]
    assert status["status"] == "released" and status["recall"] is None
    assert status["lot"] == "L-OK" and status["decision"] == "conforms"
    assert status["expiry_prediction"] == {
        "expiry": "2027-11-01",
        "particles_per_unit": 1.6e10,
        "lower_95": 1.4e10,
        "label_claim": 2e10,
    }
    assert [c["result"] for c in status["criteria"]] == ["pass"] * len(status["criteria"])
    assert status["criteria"][0]["printed_value"]


def test_a_newer_certificate_supersedes(released):
    store, keyring, first = released
    second = issue_certificate(store, "L-OK", keyring, by="bob")
    old = verify_certificate_status(store, first.certificate_id)
    assert old["status"] == "superseded" and old["superseded_by"] == second.certificate_id
    assert verify_certificate_status(store, second.certificate_id)["status"] == "released"


def test_recall_shows_at_once_with_its_reason(released):
    store, _, certificate = released
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


def test_recall_needs_qa_and_the_password(released):
    store, _, certificate = released
    with pytest.raises(NotAllowed, match="role reviewer cannot recall"):
        recall_lot(store, "L-OK", user="rita", password="correct horse 2", reason="r")
    with pytest.raises(AuthError):
        recall_lot(store, "L-OK", user="quinn", password="wrong", reason="r")
    actions = [e["action"] for e in store.history("L-OK")]
    assert "signature.refused" in actions and "signature.failed" in actions
    assert verify_certificate_status(store, certificate.certificate_id)["status"] == "released"


def test_unknown_and_altered_certificates(released):
    store, _, certificate = released
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

"""The store on SQLite and PostgreSQL: records, transactions, four-eyes, immutability, audit."""

from __future__ import annotations

import hashlib

import pytest
from alembic.script import ScriptDirectory
from qc_factories import SPEC_YAML, fill_lot, lognormal_measurement
from sqlalchemy import func, select, text

from exocheck.errors import NotAllowed, SpecificationError, StoreError
from exocheck.store import Store
from exocheck.store import models as m
from exocheck.store.session import alembic_config


def _count(store: Store, model) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def test_open_migrates_to_head_and_reopens(db_url):
    with Store.open(db_url) as store:
        with store.engine.connect() as conn:
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    with Store.open(db_url) as store:  # second open: nothing to do, data intact
        assert store.list_products() == []


def test_conforming_and_short_lot(stocked):
    fill_lot(stocked, "L-OK", particles_per_ml=2.1e10)
    fill_lot(stocked, "L-SHORT", particles_per_ml=1.2e10)  # 60 % of the 2e10 claim
    ok, short = stocked.evaluate("L-OK"), stocked.evaluate("L-SHORT")
    assert ok.decision == "conforms", [(c.name, c.result) for c in ok.criteria]
    assert short.decision == "does-not-conform"
    failed = [c.name for c in short.criteria if c.result == "fail"]
    assert failed == ["Particles per vial"]
    assert [(r["lot"], r["status"], r["decision"]) for r in stocked.list_lots()] == [
        ("L-OK", "in review", "conforms"),
        ("L-SHORT", "in review", "does-not-conform"),
    ]


def test_four_eyes_refusal_changes_nothing(stocked):
    fill_lot(stocked, "L1", by="ana")
    events = _count(stocked, m.AuditEvent)
    with pytest.raises(NotAllowed, match="four-eyes"):
        stocked.approve("L1", by="ana")
    assert _count(stocked, m.Release) == 0
    assert _count(stocked, m.AuditEvent) == events
    stocked.approve("L1", by="bob")
    assert _count(stocked, m.Release) == 1
    assert stocked.history("L1")[-1]["action"] == "lot.sign"
    assert stocked.history("L1")[-1]["actor"] == "bob"


def test_released_lot_is_frozen(stocked):
    fill_lot(stocked, "L1")
    signed = stocked.approve("L1", by="bob")
    rows = _count(stocked, m.Measurement)
    with pytest.raises(NotAllowed, match="can no longer change"):
        stocked.add_protein("L1", 3.0, by="ana")
    with pytest.raises(NotAllowed, match="can no longer change"):
        stocked.approve("L1", by="carla")
    assert _count(stocked, m.Measurement) == rows
    again = stocked.evaluate("L1")
    assert again.decision == signed.decision
    assert again.evaluated_at == signed.evaluated_at  # the signed result, not a new evaluation
    assert stocked.lot_info("L1")["approved_by"] == "bob"


def test_incomplete_lot_cannot_be_signed(stocked):
    stocked.add_lot("L1", "EXO-1", by="ana")
    stocked.add_measurement("L1", lognormal_measurement(), by="ana")
    assert stocked.evaluate("L1").decision == "incomplete"
    with pytest.raises(StoreError, match=r"awaiting data \(missing: Endotoxin"):
        stocked.approve("L1", by="bob")
    assert _count(stocked, m.Release) == 0


def test_specification_versions_are_immutable_once_used(stocked, tmp_path):
    changed = tmp_path / "changed.yaml"
    changed.write_text(SPEC_YAML.replace("min: 50, max: 200", "min: 60, max: 190"))
    # unused: the same version may still be corrected
    assert stocked.add_specification(changed, by="qa")["changed"] is True
    assert stocked.add_specification(changed, by="qa")["changed"] is False
    stocked.add_lot("L1", "EXO-1", by="ana")
    original = tmp_path / "orig.yaml"
    original.write_text(SPEC_YAML)
    with pytest.raises(StoreError, match="version 2"):
        stocked.add_specification(original, by="qa")
    assert stocked.get_specification("test-release").criteria[0].min == 60
    original.write_text(SPEC_YAML.replace("version: 1", "version: 2"))
    stocked.add_specification(original, by="qa")
    assert stocked.get_specification("test-release").version == 2
    assert stocked.get_specification("test-release@1").criteria[0].min == 60


def test_bad_specification_leaves_no_rows(stocked, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        SPEC_YAML.replace("version: 1", "version: 3").replace("kind: purity", "kind: purty")
    )
    before = (_count(stocked, m.Specification), _count(stocked, m.AuditEvent))
    with pytest.raises(SpecificationError, match=r"line 12 key 'criteria\[7\]\.kind'"):
        stocked.add_specification(bad, by="qa")
    assert (_count(stocked, m.Specification), _count(stocked, m.AuditEvent)) == before


def test_failure_inside_a_transaction_rolls_back(stocked, monkeypatch):
    stocked.add_lot("L1", "EXO-1", by="ana")
    before = (
        _count(stocked, m.Measurement),
        _count(stocked, m.AuditEvent),
        _count(stocked, m.Attachment),
    )

    def failing_audit(*args, **kwargs):  # fails after the measurement row was flushed
        raise StoreError("audit trail unavailable")

    monkeypatch.setattr(Store, "_audit", staticmethod(failing_audit))
    with pytest.raises(StoreError, match="audit trail unavailable"):
        stocked.add_measurement("L1", lognormal_measurement(), by="ana")
    monkeypatch.undo()
    assert (
        _count(stocked, m.Measurement),
        _count(stocked, m.AuditEvent),
        _count(stocked, m.Attachment),
    ) == before


def test_attachments_are_content_addressed(stocked, tmp_path):
    stocked.add_lot("L1", "EXO-1", by="ana")
    raw = tmp_path / "L1.json"
    lognormal_measurement().save(raw)
    content = raw.read_bytes()
    stocked.add_measurement("L1", lognormal_measurement(), by="ana", original_file=raw)
    stocked.add_measurement("L1", lognormal_measurement(), by="ana", original_file=raw)
    sha = hashlib.sha256(content).hexdigest()
    assert _count(stocked, m.Attachment) == 1
    assert stocked.attachment(sha) == ("L1.json", content)
    shown = stocked.lot_info("L1")["attachments"]
    assert [a["sha256"] for a in shown] == [sha, sha]


def test_audit_events_are_append_only_in_the_database(stocked):
    with pytest.raises(Exception, match="append-only"), stocked.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory'"))
    with pytest.raises(Exception, match="append-only"), stocked.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events"))
    assert {e["actor"] for e in stocked.history()} == {"ana", "qa"}


def test_unknown_names_are_clear_errors(stocked):
    with pytest.raises(StoreError, match="unknown lot 'L9'"):
        stocked.evaluate("L9")
    with pytest.raises(StoreError, match="unknown product 'NOPE'"):
        stocked.add_lot("L1", "NOPE", by="ana")
    with pytest.raises(StoreError, match="already exists"):
        stocked.add_product("EXO-1", by="ana")
    stocked.add_lot("L2", "EXO-1", by="ana")
    with pytest.raises(StoreError, match="not a qualitative"):
        stocked.add_markers("L2", {"CD9": "maybe"}, by="ana")
    with pytest.raises(StoreError, match="greater than 0"):
        stocked.add_protein("L2", -1.0, by="ana")

"""The rows a decision rests on are in the audit chain: every write records its rows' hashes;
``verify_audit_trail`` recomputes them and names each row edited, deleted or inserted in the
database directly, or no longer consistent; ``check_lot_records`` does it for one lot and
``require_intact_lot`` refuses it. Rows written before row hashing are "not sealed", never
tampered; chains written before RFC 8785 still verify. SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from signing_factories import stock
from sqlalchemy import text

from exocheck.auth import Accounts, Signing
from exocheck.canonical import canonical_json, canonical_sha256
from exocheck.certify import (
    Keyring,
    RecordsAltered,
    check_lot_records,
    issue_certificate,
    recall_lot,
    require_intact_lot,
    verify_audit_trail,
)
from exocheck.store import Store, chain, rowhash


def _sql(store: Store, statement: str, **params) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


def _one(store: Store, statement: str, **params):
    with store.engine.begin() as conn:
        return conn.execute(text(statement), params).first()


def _json(value):
    """A JSON column read by plain SQL: text from SQLite, parsed by PostgreSQL's driver."""
    return json.loads(value) if isinstance(value, str) else value


def _nta_id(store: Store, lot: str) -> int:
    return _one(
        store,
        "SELECT m.id FROM measurements m JOIN lots l ON l.id = m.lot_id "
        "WHERE l.number = :lot AND m.kind = 'nta' ORDER BY m.id LIMIT 1",
        lot=lot,
    ).id


def _recorded_at(store: Store, key: str) -> int:
    """The id of the event that recorded the row ``key`` last."""
    return [e["id"] for e in store.history() if key in ((e["after"] or {}).get("rows") or {})][-1]


@pytest.fixture
def worked(db_url, tmp_path):
    """Two released lots, L-1 with its raw file stored."""
    with Store.open(db_url) as store:
        stock(store, tmp_path, lots=("L-1", "L-2"))
        yield store


def test_canonical_json_is_rfc8785():
    assert canonical_json({"b": 1e11, "a": [2.0, "é"], "c": None}) == (
        '{"a":[2,"é"],"b":100000000000,"c":null}'.encode()
    )
    assert (
        canonical_json({"x": float("nan"), "big": 2**60})
        == b'{"big":"1152921504606846976","x":"NaN"}'
    )
    assert canonical_sha256({"a": 1}) == canonical_sha256({"a": 1.0})


def test_every_write_records_its_rows(worked):
    """Each event that wrote a row carries its hash, and an untouched store verifies with every
    row sealed."""
    events = worked.history()
    nta = _nta_id(worked, "L-1")
    measurement = next(e for e in events if e["key"] == f"L-1/{nta}")
    assert list(measurement["after"]["rows"]) == [f"measurements/{nta}"]
    with_file = next(
        e
        for e in events
        if e["action"] == "measurement.add.nta" and e["after"]["attachment_sha256"]
    )
    assert f"attachments/{with_file['after']['attachment_sha256']}" in with_file["after"]["rows"]
    sign = next(e for e in events if e["action"] == "lot.sign")
    assert [k.split("/")[0] for k in sign["after"]["rows"]] == ["releases"]
    assert all("rows" in (e["after"] or {}) for e in events)  # every one of them wrote a row
    check = verify_audit_trail(worked)
    assert check.intact, check.lines()
    assert check.rows.unsealed == () and check.rows.unsealed_rows == 0
    rows = sum(_one(worked, f"SELECT count(*) AS n FROM {t}").n for t in rowhash.SEALED)
    assert check.rows.rows == rows >= 15
    assert check_lot_records(worked, "L-1") == [] and check_lot_records(worked, "L-2") == []


def test_signatures_recalls_and_certificates_are_sealed(db_url, tmp_path):
    """Electronic signatures, the release they make, a certificate with its keys and a recall:
    each recorded by its event; an edit of any of them is named."""
    with Store.open(db_url) as store:
        stock(store, tmp_path, lots=("L-1",))
        accounts = Accounts(store)
        accounts.add_user("rita", role="reviewer", password="correct horse 2", by="admin")
        accounts.add_user("quinn", role="qa", password="correct horse 1", by="admin")
        from qc_factories import fill_lot

        fill_lot(store, "L-E", particles_per_ml=2.1e10)
        signing = Signing(store, accounts)
        signing.sign(
            "L-E", user="rita", password="correct horse 2", meaning="reviewed", reason="ok"
        )
        signing.sign(
            "L-E", user="quinn", password="correct horse 1", meaning="approved", reason="ok"
        )
        keyring = Keyring(tmp_path / "keys")
        keyring.init("Example Biologics")
        certificate = issue_certificate(store, "L-E", keyring, by="bob")
        recall_lot(store, "L-E", user="quinn", password="correct horse 1", reason="label misprint")
        recorded = {
            k.split("/")[0] for e in store.history() for k in (e["after"] or {}).get("rows", {})
        }
        assert {
            "signatures",
            "releases",
            "certificates",
            "certificate_keys",
            "lot_recalls",
        } <= recorded
        check = verify_audit_trail(store)
        assert check.intact and not check.rows.unsealed, check.lines()
        _sql(store, "UPDATE signatures SET reason = 'rubber stamp' WHERE meaning = 'approved'")
        _sql(store, "UPDATE lot_recalls SET reason = 'none'")
        _sql(
            store,
            "UPDATE certificates SET issued_by = 'mallory' WHERE certificate_id = :c",
            c=certificate.certificate_id,
        )
        findings = verify_audit_trail(store).rows.findings
        assert any(f.startswith("signature ") and "of lot L-E" in f for f in findings), findings
        assert any(f.startswith("recall of lot L-E") and "event #" in f for f in findings)
        assert any(f.startswith(f"certificate {certificate.certificate_id}") for f in findings)
        assert any("recall of lot L-E: its signed content no longer matches" in f for f in findings)
        assert len(check_lot_records(store, "L-E")) == len(findings)
        assert check_lot_records(store, "L-1") == []


def test_an_edited_measurement_is_named_and_its_lot_refused(worked):
    """Case 5 of the lot lifecycle: a signed lot's measurement edited in the database (the
    temperature to 37 °C)."""
    nta = _nta_id(worked, "L-1")
    at = _recorded_at(worked, f"measurements/{nta}")
    data = _json(_one(worked, "SELECT data FROM measurements WHERE id = :i", i=nta).data)
    data["temperature_c"] = 37.0
    _sql(worked, "UPDATE measurements SET data = :d WHERE id = :i", d=json.dumps(data), i=nta)
    check = verify_audit_trail(worked)
    assert not check.intact and check.chain_intact
    assert check.failures() == [
        f"measurement {nta} of lot L-1: its stored content no longer matches the hash "
        f"recorded at event #{at}"
    ]
    assert check_lot_records(worked, "L-1") == check.failures()
    assert check_lot_records(worked, "L-2") == []
    with pytest.raises(RecordsAltered, match=f"measurement {nta} of lot L-1") as refused:
        require_intact_lot(worked, "L-1")
    assert "\n" not in str(refused.value)
    require_intact_lot(worked, "L-2")


CHANGED = "its stored content no longer matches the hash recorded at event #"


@pytest.mark.parametrize(
    ("statement", "named", "expected"),
    [
        (
            "UPDATE measurements SET particles_per_ml = 9e10 WHERE id = {nta}",
            "measurement {nta} of lot L-1",
            [CHANGED, "its particles_per_ml column (90000000000.0) is not its record's"],
        ),
        (
            "UPDATE measurements SET lot_id = {other} WHERE id = {nta}",
            "measurement {nta} of lot L-2",
            [CHANGED],
        ),
        (
            "UPDATE specifications SET yaml_text = yaml_text || ' '",
            "specification test-release@1",
            [CHANGED, "its text no longer matches its SHA-256"],
        ),
        (
            "UPDATE releases SET approved_by = 'ana' WHERE lot_id = {lot}",
            "release of lot L-1",
            [CHANGED],
        ),
        (
            "UPDATE releases SET decision = 'does-not-conform' WHERE lot_id = {lot}",
            "release of lot L-1",
            [CHANGED, "its decision 'does-not-conform' is not its result's 'conforms'"],
        ),
        ("UPDATE products SET particles_per_unit = 1e9", "product EXO-1", [CHANGED]),
        (
            "UPDATE lots SET expiry = '2099-01-01 00:00:00' WHERE id = {lot}",
            "lot L-1",
            [CHANGED],
        ),
        (  # the row's hash covers its key, the SHA-256 the content must still have
            "UPDATE attachments SET content = :junk",
            "attachment ",
            ["its content no longer matches its SHA-256 key"],
        ),
    ],
)
def test_each_kind_of_record_edited_is_named(worked, statement, named, expected):
    nta = _nta_id(worked, "L-1")
    lot = _one(worked, "SELECT id FROM lots WHERE number = 'L-1'").id
    other = _one(worked, "SELECT id FROM lots WHERE number = 'L-2'").id
    fill = {"nta": nta, "lot": lot, "other": other}
    params = {"junk": b"not the original file"} if ":junk" in statement else {}
    _sql(worked, statement.format(**fill), **params)
    findings = verify_audit_trail(worked).rows.findings
    label = named.format(**fill)
    for words in expected:
        assert any(f.startswith(label) and words in f for f in findings), findings
    assert check_lot_records(worked, "L-1"), "the lot the record belongs to is refused"


def test_deleted_and_inserted_rows_are_named(worked):
    protein = _one(
        worked,
        "SELECT m.id FROM measurements m JOIN lots l ON l.id = m.lot_id "
        "WHERE l.number = 'L-2' AND m.kind = 'protein'",
    ).id
    at = _recorded_at(worked, f"measurements/{protein}")
    _sql(worked, "DELETE FROM measurements WHERE id = :i", i=protein)
    nta = _nta_id(worked, "L-2")
    _sql(
        worked,
        "INSERT INTO measurements (id, lot_id, kind, data, particles_per_ml, d50_nm, "
        "created_at, created_by) SELECT 900, lot_id, kind, data, particles_per_ml, d50_nm, "
        "created_at, created_by FROM measurements WHERE id = :i",
        i=nta,
    )
    _sql(worked, "UPDATE measurements SET created_at = :t WHERE id = 900", t="2099-01-01 00:00:00")
    findings = verify_audit_trail(worked).rows.findings
    assert (
        f"measurement {protein} of lot L-2: recorded at event #{at}, no longer in the database (deleted past exocheck)"
        in findings
    )
    assert (
        "measurement 900 of lot L-2: no audit event recorded it (written past exocheck)" in findings
    )
    assert set(check_lot_records(worked, "L-2")) == set(findings)
    assert check_lot_records(worked, "L-1") == []


def test_an_unreadable_record_is_a_finding_not_an_exception(worked):
    nta = _nta_id(worked, "L-1")
    if worked.engine.dialect.name == "sqlite":  # PostgreSQL's JSON type refuses invalid text
        _sql(worked, "UPDATE measurements SET data = '{\"schema\": ' WHERE id = :i", i=nta)
        expected = "its data is no longer valid JSON"
    else:
        _sql(worked, "UPDATE measurements SET data = '{\"schema\": 1}' WHERE id = :i", i=nta)
        expected = "its data is not a valid nta record"
    findings = check_lot_records(worked, "L-1")
    assert any(f.startswith(f"measurement {nta} of lot L-1: {expected}") for f in findings), (
        findings
    )
    assert not verify_audit_trail(worked).intact


def test_an_edit_of_the_recorded_hash_breaks_the_chain(worked):
    """Editing the measurement and the hash its event recorded: the chain names the event."""
    from test_audit_chain import _drop_trigger

    nta = _nta_id(worked, "L-1")
    at = _recorded_at(worked, f"measurements/{nta}")
    _sql(worked, "UPDATE measurements SET d50_nm = 80.0 WHERE id = :i", i=nta)
    with worked._read() as session:
        from exocheck.store.rowhash import read_rows

        forged = read_rows(session, "measurements", [nta])[0].sha256
    after = _json(_one(worked, "SELECT after FROM audit_events WHERE id = :i", i=at).after)
    after["rows"][f"measurements/{nta}"] = forged
    with worked.engine.begin() as conn:
        _drop_trigger(conn)
        conn.execute(
            text("UPDATE audit_events SET after = :a WHERE id = :i"),
            {"a": json.dumps(after), "i": at},
        )
    check = verify_audit_trail(worked)
    assert check.broken_id == at
    problems = check_lot_records(worked, "L-1")
    assert problems[0].startswith(f"audit trail broken at event #{at}")
    assert check_lot_records(worked, "L-2")  # a broken chain vouches for no lot


def test_rows_written_before_row_hashing_are_not_sealed_not_tampered(db_url, tmp_path, monkeypatch):
    """A store written by an exocheck without row hashing: its rows are listed as not sealed,
    the trail still verifies, its lots are still certified; rows written since are sealed, and
    a row inserted past exocheck after that is a finding, not "not sealed"."""
    with Store.open(db_url) as store:
        with monkeypatch.context() as patch:
            patch.setattr(rowhash, "seal_written", lambda session: {})
            stock(store, tmp_path, lots=("L-OLD",))
        assert not any("rows" in (e["after"] or {}) for e in store.history())
        check = verify_audit_trail(store)
        assert check.intact and check.rows.findings == ()
        assert check.rows.unsealed_rows == check.rows.rows
        assert any(
            line.startswith("not sealed (written before row hashing): ") and "measurements" in line
            for line in check.lines()
        ), check.lines()
        assert "1 product: product EXO-1" in " ".join(check.rows.unsealed)
        assert check_lot_records(store, "L-OLD") == []

        from qc_factories import fill_lot

        fill_lot(store, "L-NEW")
        check = verify_audit_trail(store)
        assert check.intact and 0 < check.rows.unsealed_rows < check.rows.rows
        new = _nta_id(store, "L-NEW")
        assert f"measurement {new} " not in " ".join(check.rows.unsealed)

        old = _nta_id(store, "L-OLD")
        _sql(store, "UPDATE measurements SET data = '{\"schema\": 1}' WHERE id = :i", i=old)
        _sql(
            store,
            "INSERT INTO measurements (id, lot_id, kind, data, created_at, created_by) "
            "SELECT 700, lot_id, kind, data, created_at, created_by FROM measurements WHERE id = :i",
            i=new,
        )
        findings = verify_audit_trail(store).rows.findings
        assert any(
            f.startswith(f"measurement {old} of lot L-OLD: its data is not a valid nta record")
            for f in findings
        )
        assert (
            "measurement 700 of lot L-NEW: no audit event recorded it (written past exocheck)"
            in findings
        )
        assert not any("not sealed" in f for f in findings)


def test_a_chain_written_before_rfc8785_still_verifies(db_url, tmp_path, monkeypatch):
    """Events linked the old way, then the canonical way: intact. An old-style link after a
    canonical one is a break."""
    with Store.open(db_url) as store:
        with monkeypatch.context() as patch:
            patch.setattr(chain, "link", chain.legacy_link)
            store.add_product("P-OLD", particles_per_unit=1e10, by="ana")
            store.add_product("P-OLD-2", particles_per_unit=1.5e10, by="ana")
        store.add_product("P-NEW", particles_per_unit=1e10, by="ana")
        check = verify_audit_trail(store)
        assert check.intact and check.events == 3, check.lines()
        with monkeypatch.context() as patch:
            patch.setattr(chain, "link", chain.legacy_link)
            store.add_product("P-LATE", particles_per_unit=1.5e10, by="ana")
        check = verify_audit_trail(store)
        assert check.broken_id == 4, check.lines()

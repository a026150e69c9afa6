"""The audit trail's hash chain: intact after ordinary work; an UPDATE, DELETE or INSERT made
in the database directly (the append-only trigger dropped first), or events swapped, are found
by ``exocheck audit verify``, which names the first broken event; a chain rewritten
consistently is found by the head a certificate signed. SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from signing_factories import stock
from sqlalchemy import text

from exocheck.certify import Keyring, issue_certificate, verify_audit_trail
from exocheck.store import Store, chain
from exocheck.store import models as m


def _drop_trigger(conn) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
    else:
        conn.execute(text("DROP TRIGGER audit_events_no_update"))
        conn.execute(text("DROP TRIGGER audit_events_no_delete"))


@pytest.fixture
def worked(db_url, tmp_path):
    """A store with a few dozen audit events (products, lots, measurements, releases)."""
    with Store.open(db_url) as store:
        stock(store, tmp_path, lots=("L-1", "L-2"))
        yield store


def test_ordinary_work_leaves_an_intact_chain(worked):
    check = verify_audit_trail(worked)
    assert check.intact, check.line()
    assert check.events == len(worked.history()) >= 10
    assert check.head_id == worked.history()[-1]["id"]


def test_the_database_refuses_changes_while_the_trigger_stands(worked):
    with pytest.raises(Exception, match="append-only"), worked.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 3"))


@pytest.mark.parametrize("tamper", ["update", "delete", "insert", "swap"])
def test_direct_sql_is_found_and_named(worked, tamper):
    with worked.engine.begin() as conn:
        _drop_trigger(conn)
        if tamper == "update":
            conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 5"))
            expected = 5
        elif tamper == "delete":
            conn.execute(text("DELETE FROM audit_events WHERE id = 5"))
            expected = 6
        elif tamper == "insert":
            last = conn.execute(text("SELECT max(id) FROM audit_events")).scalar()
            conn.execute(
                text(
                    "INSERT INTO audit_events (id, at, actor, action, entity, entity_key) "
                    "VALUES (:id, CURRENT_TIMESTAMP, 'mallory', 'lot.sign', 'lot', 'L-1')"
                ),
                {"id": last + 1},
            )
            expected = last + 1
        else:  # the actions of events 4 and 5 exchanged
            a, b = (
                conn.execute(
                    text("SELECT action FROM audit_events WHERE id = :i"), {"i": i}
                ).scalar()
                for i in (4, 5)
            )
            assert a != b
            conn.execute(text("UPDATE audit_events SET action = :a WHERE id = 4"), {"a": b})
            conn.execute(text("UPDATE audit_events SET action = :a WHERE id = 5"), {"a": a})
            expected = 4
    check = verify_audit_trail(worked)
    assert not check.intact
    assert check.broken_id == expected, check.line()
    assert f"#{expected}" in check.line()


def test_a_consistently_rewritten_chain_is_found_by_a_certificate(worked, tmp_path):
    """Event 3 edited and every later hash recomputed: the chain alone looks whole, but the
    certificate issued afterwards signed the old head."""
    keyring = Keyring(tmp_path / "keys")
    keyring.init("Example Biologics")
    certificate = issue_certificate(worked, "L-1", keyring, by="bob")
    anchor = json.loads(certificate.coa_json)["audit_chain_head"]["event_id"]
    with worked.engine.begin() as conn:
        _drop_trigger(conn)
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 3"))
    with worked._read() as session:
        rows = session.execute(m.AuditEvent.__table__.select().order_by(m.AuditEvent.id)).all()
    previous = chain.GENESIS_SHA256
    with worked.engine.begin() as conn:
        for row in rows:
            previous = chain.link(previous, chain.event_payload(row))
            conn.execute(
                text("UPDATE audit_events SET chain_sha256 = :h WHERE id = :i"),
                {"h": previous, "i": row.id},
            )
    check = verify_audit_trail(worked)
    assert not check.intact
    assert check.broken_id == anchor and certificate.certificate_id in check.line()


def test_existing_events_are_chained_by_the_migration(db_url, tmp_path):
    """A store made before the chain (schema 0004) is chained on upgrade and stays verifiable;
    the append-only trigger is back afterwards."""
    from alembic import command
    from sqlalchemy import inspect

    from exocheck.store.session import alembic_config

    with Store.open(db_url) as store:
        stock(store, tmp_path)
        config = alembic_config()
        with store.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0004")
        columns = {c["name"] for c in inspect(store.engine).get_columns("audit_events")}
        assert "chain_sha256" not in columns
    with Store.open(db_url) as store:
        check = verify_audit_trail(store)
        assert check.intact and check.events >= 8, check.line()
        with pytest.raises(Exception, match="append-only"), store.engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_events WHERE id = 1"))


def test_concurrent_writers_keep_one_chain(db_url):
    """Four connections adding products at once: every event lands in one unbroken chain."""
    import threading

    errors: list[str] = []

    def work(i: int) -> None:
        with Store.open(db_url) as store:
            for j in range(8):
                try:
                    store.add_product(f"P{i}-{j}", particles_per_unit=1e10, by="ana")
                except Exception as exc:  # reported below
                    errors.append(str(exc))

    with Store.open(db_url):
        pass
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store.open(db_url) as store:
        check = verify_audit_trail(store)
    assert check.intact and check.events == 32, check.line()

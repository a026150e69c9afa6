"""The hash chain of the audit trail.

Each audit event stores ``chain_sha256 = SHA-256(previous event's chain_sha256 || event)``, where
*event* is the canonical JSON of everything the event says (id, time, actor, action, record,
lot, before, after). Editing, deleting, inserting or reordering an event changes the chain from
that event on, so :func:`first_break` finds it even when the change was made in the database
directly, past exocheck and its append-only trigger. A signed certificate carries the chain head
at its issue, which also pins the history before it against a rewrite of the whole chain.

The event is serialised by :func:`exocheck.canonical.canonical_json` (RFC 8785). Chains written
by earlier versions of exocheck serialised it with Python's ``json`` (sorted keys, no spaces);
their events still verify (:func:`legacy_link`), but only up to the first event linked the
canonical way: once a chain has switched, every later event must be canonical.

Events that record a write of a row a decision rests on carry that row's hash
(:mod:`exocheck.store.rowhash`) in ``after["rows"]``, so the chain protects the rows too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from exocheck.canonical import canonical_json, utc_text

#: the "previous hash" of the first event
GENESIS_SHA256 = "0" * 64


def event_payload(row: Any) -> dict[str, Any]:
    """What the chain binds of an audit event row (JSON as the database returns it)."""

    def stored(value: Any) -> Any:
        return None if value is None else json.loads(json.dumps(value))

    return {
        "id": int(row.id),
        "at": utc_text(row.at),
        "actor": row.actor,
        "action": row.action,
        "entity": row.entity,
        "entity_key": row.entity_key,
        "lot_id": row.lot_id,
        "before": stored(row.before),
        "after": stored(row.after),
    }


def link(previous_sha256: str, payload: dict[str, Any]) -> str:
    """The chain hash of an event whose predecessor's chain hash is ``previous_sha256``."""
    return hashlib.sha256(previous_sha256.encode("ascii") + canonical_json(payload)).hexdigest()


def legacy_link(previous_sha256: str, payload: dict[str, Any]) -> str:
    """:func:`link` as exocheck wrote it before RFC 8785 (Python ``json``, sorted keys): only
    for verifying chains written then."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(previous_sha256.encode("ascii") + text.encode("utf-8")).hexdigest()


def first_break(rows: Iterable[Any]) -> tuple[int, int | None, str, str]:
    """Walk the chain over ``rows`` (audit events in id order).

    Returns ``(events, broken_id, head_sha256, why)``: the number of events, the id of the
    first event whose stored hash is not the chain's (``None`` when intact), the chain head
    recomputed up to the break (or the end), and why it broke.
    """
    previous = GENESIS_SHA256
    count = 0
    last_id = 0
    canonical = False  # has an event been linked the canonical way yet?
    for row in rows:
        count += 1
        if row.id <= last_id:
            return count, row.id, previous, "out of order"
        payload = event_payload(row)
        expected = link(previous, payload)
        if row.chain_sha256 == expected:
            canonical = True
        elif not canonical and row.chain_sha256 == legacy_link(previous, payload):
            expected = row.chain_sha256
        else:
            why = (
                "no chain hash (inserted past exocheck)"
                if not row.chain_sha256
                else "its content or its place in the chain changed (edited, or an event "
                "before it was deleted, inserted or moved)"
            )
            return count, row.id, previous, why
        previous, last_id = expected, row.id
    return count, None, previous, ""

"""The audit trail searched, paged and exported (exocheck.store.audit): one filter for the page,
its CSV and the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from qc_factories import fill_lot

from exocheck.errors import ParameterError
from exocheck.paging import Page, check_paging
from exocheck.store import models as m
from exocheck.store.audit import (
    CSV_COLUMNS,
    AuditFilter,
    audit_actions,
    audit_csv,
    changes,
    csv_cell,
    iter_audit,
    search_audit,
)


def _actions(page: Page) -> list[str]:
    return [e["action"] for e in page.items]


@pytest.fixture
def trail(stocked):
    """Two complete lots by ana and ben, and ten bare lots by Carla: 22 events in all."""
    fill_lot(stocked, "L-1", by="ana")
    fill_lot(stocked, "L-2", by="ben")
    for i in range(10):
        stocked.add_lot(f"B-{i}", "EXO-1", by="Carla")
    return stocked


def test_filters_by_lot_user_and_action_family(trail):
    everything = search_audit(trail, per_page=500)
    assert everything.total == len(trail.history()) == 22
    assert [e["id"] for e in everything.items] == [e["id"] for e in trail.history()]

    lot = search_audit(trail, AuditFilter.parse(lot="L-1"))
    assert lot.total == 5 and {e["lot"] for e in lot.items} == {"L-1"}
    assert _actions(lot) == [e["action"] for e in trail.history("L-1")]
    assert search_audit(trail, AuditFilter.parse(lot="L-")).total == 0  # a lot, not a prefix

    ben = search_audit(trail, AuditFilter.parse(user="BEN"))  # user names ignore case
    assert ben.total == 5 and {e["actor"] for e in ben.items} == {"ben"}

    family = search_audit(trail, AuditFilter.parse(action="measurement.add"))
    assert family.total == 8 and all(a.startswith("measurement.add.") for a in _actions(family))
    exact = search_audit(trail, AuditFilter.parse(action="measurement.add.nta"))
    assert _actions(exact) == ["measurement.add.nta"] * 2
    # a dotted family, not a substring: "measure" is no action, "add" is none either
    assert search_audit(trail, AuditFilter.parse(action="measure")).total == 0
    assert search_audit(trail, AuditFilter.parse(action="add")).total == 0
    # "_" and "%" are plain characters, not wildcards
    assert search_audit(trail, AuditFilter.parse(action="lot_add")).total == 0
    assert search_audit(trail, AuditFilter.parse(action="%")).total == 0

    both = search_audit(trail, AuditFilter.parse(lot="L-2", user="ben", action="lot"))
    assert _actions(both) == ["lot.add"]
    assert "measurement.add.nta" in audit_actions(trail)


def test_date_window_is_utc_and_a_date_until_includes_its_day(stocked, monkeypatch):
    times = (
        datetime(2025, 2, 28, 23, 59, 59, tzinfo=UTC),
        datetime(2025, 3, 1, 0, 0, 0, tzinfo=UTC),
        datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC),
        datetime(2025, 3, 2, 0, 0, 0, tzinfo=UTC),
    )
    for i, at in enumerate(times):  # events written at these instants
        monkeypatch.setattr(m, "utcnow", lambda at=at: at)
        stocked.add_lot(f"T-{i}", "EXO-1", by="ana")
    monkeypatch.undo()

    def found(**kw) -> list[str]:
        wanted = AuditFilter.parse(action="lot.add", **kw)
        return [e["lot"] for e in search_audit(stocked, wanted).items]

    assert found(since="2025-03-01", until="2025-03-01") == ["T-1", "T-2"]
    assert found(until="2025-02-28") == ["T-0"]
    assert found(since="2025-03-01T12:00", until="2025-03-02") == ["T-2", "T-3"]
    # an offset is honoured: 01:00 at +01:00 is midnight UTC
    assert found(since="2025-03-02T01:00+01:00", until="2025-12-31") == ["T-3"]
    assert found(since="2025-03-01T00:00:00Z", until="2025-03-01T00:00:00Z") == ["T-1"]
    assert found(since="2025-03-03") == []


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"since": "yesterday"}, "since: not a date"),
        ({"until": "2025-13-01"}, "until: not a date"),
        ({"since": "2025-03-02", "until": "2025-03-01"}, "is before since"),
        ({"user": "x" * 201}, "user: at most 200 characters"),
    ],
)
def test_a_filter_that_cannot_run_is_one_line(kw, words):
    with pytest.raises(ParameterError) as caught:
        AuditFilter.parse(**kw)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_pages_newest_first_and_beyond_the_last(trail):
    first = search_audit(trail, page=1, per_page=10, newest_first=True)
    second = search_audit(trail, page=2, per_page=10, newest_first=True)
    third = search_audit(trail, page=3, per_page=10, newest_first=True)
    ids = [e["id"] for p in (first, second, third) for e in p.items]
    assert ids == sorted((e["id"] for e in trail.history()), reverse=True)
    assert (first.total, first.pages, len(third.items)) == (22, 3, 2)
    assert (third.first, third.last) == (21, 22)
    beyond = search_audit(trail, page=4, per_page=10)
    assert beyond.items == [] and beyond.total == 22 and beyond.first == 0
    assert Page([], 240, 7, 10).numbers() == [1, None, 5, 6, 7, 8, 9, None, 24]
    assert Page([], 0, 1, 50).pages == 1


@pytest.mark.parametrize(
    ("page", "per_page", "words"),
    [("0", None, "page must be ≥ 1"), ("two", None, "whole number"), ("1", "501", "between")],
)
def test_paging_bounds(page, per_page, words):
    with pytest.raises(ParameterError, match=words):
        check_paging(page, per_page)
    assert check_paging(None, None) == (1, 50) and check_paging(" 3 ", "20") == (3, 20)


def test_export_reads_every_match_in_batches(trail):
    wanted = AuditFilter.parse(action="lot")
    exported = list(iter_audit(trail, wanted, batch=3))
    assert [e["id"] for e in exported] == [
        e["id"] for e in search_audit(trail, wanted, per_page=500).items
    ]
    assert len(exported) == 12


def test_changes_lists_only_what_differs():
    assert changes({"a": 1, "b": "x", "c": None}, {"a": 1, "b": "y", "d": [1]}) == [
        changes_row("b", '"x"', '"y"'),
        changes_row("d", None, "[1]"),
    ]
    created = changes(None, {"lot": "L-1", "expiry": None, "rows": {"lots/1": "ab"}})
    assert [c.field for c in created] == ["lot", "rows"]  # a null field is not news
    assert [c.field for c in changes(None, {"lot": "L", "rows": {}}, leave_out=("rows",))] == [
        "lot"
    ]
    assert changes({"a": 1}, {"a": 1}) == []
    assert changes({"a": 1}, None) == [changes_row("a", "1", None)]


def changes_row(field: str, before: str | None, after: str | None):
    from exocheck.store.audit import Change

    return Change(field, before, after)


def test_csv_is_safe_to_open_in_a_spreadsheet(stocked):
    for name in ('=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "plain"):
        stocked.add_lot(f"C-{len(name)}-{ord(name[0])}", "EXO-1", by=name)
    text = "".join(audit_csv(iter_audit(stocked, AuditFilter.parse(action="lot.add"))))
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    actors = [r[CSV_COLUMNS.index("actor")] for r in rows[1:]]
    assert actors == ['\'=HYPERLINK("http://x")', "'+1", "'-2", "'@SUM(A1)", "plain"]
    after = rows[1][CSV_COLUMNS.index("after")]
    assert after.startswith("{") and '"lot": "C-' in after
    assert rows[1][CSV_COLUMNS.index("lot")].startswith("C-")
    assert csv_cell(None) == "" and csv_cell(-3) == "'-3" and csv_cell({"a": 1}) == '{"a": 1}'
    assert csv_cell("\tx") == "'\tx" and csv_cell("\r=1") == "'\r=1"

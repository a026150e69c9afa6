"""The lots list searched and paged (exocheck.lots.listing): it picks and orders overview rows,
newest lot first, and decides nothing about a lot."""

from __future__ import annotations

import pytest

from exocheck.errors import ParameterError
from exocheck.lots.listing import LotFilter, search_lots, status_counts
from exocheck.lots.status import STATUSES


def _rows() -> list[dict]:
    """Overview rows, oldest first: 120 lots of two products in every status, and a legacy lot
    with a 200-character number."""
    rows = [
        {
            "lot": f"24-{i:03d}",
            "product": "EXO-1" if i % 2 else "MSC-EV Vesicles",
            "status": STATUSES[i % len(STATUSES)],
        }
        for i in range(120)
    ]
    rows.append({"lot": "LEGACY-" + "X" * 193, "product": "P" * 200, "status": "rejected"})
    return rows


def test_search_by_part_of_the_number_product_and_status():
    rows = _rows()
    assert [r["lot"] for r in search_lots(rows, LotFilter.parse(lot="24-00")).items] == [
        f"24-00{i}" for i in range(9, -1, -1)
    ]
    assert search_lots(rows, LotFilter.parse(lot="legacy")).items == [rows[-1]]  # any case
    vesicles = search_lots(rows, LotFilter.parse(product="vesicles"), per_page=500)
    assert vesicles.total == 60 and {r["product"] for r in vesicles.items} == {"MSC-EV Vesicles"}
    review = search_lots(rows, LotFilter.parse(status="in review", product="EXO"), per_page=500)
    assert review.total == 12
    assert all(r["status"] == "in review" and r["product"] == "EXO-1" for r in review.items)
    assert search_lots(rows, LotFilter.parse(lot="nothing-like-it")).total == 0


def test_pages_newest_first():
    rows = _rows()
    first = search_lots(rows, LotFilter(), page=1)
    third = search_lots(rows, LotFilter(), page=3)
    assert (first.total, first.pages, len(first.items), len(third.items)) == (121, 3, 50, 21)
    assert first.items[0] == rows[-1] and third.items[-1] == rows[0]
    assert search_lots(rows, LotFilter(), page=4).items == []


def test_status_counts_follow_the_text_search_not_its_status():
    rows = _rows()
    counts = status_counts(rows, LotFilter.parse(product="EXO-1", status="released"))
    assert list(counts) == list(STATUSES) and sum(counts.values()) == 60
    assert status_counts(rows)["rejected"] == 25  # 24 of the numbered lots, and the legacy one


@pytest.mark.parametrize(
    ("kw", "words"),
    [({"status": "shipped"}, "is not one of"), ({"lot": "x" * 201}, "at most 200")],
)
def test_a_bad_search_is_one_line(kw, words):
    with pytest.raises(ParameterError, match=words):
        LotFilter.parse(**kw)

"""The lots list searched and paged: which lots a person looking for one is shown.

It filters the rows of :meth:`exocheck.lots.signatures.Signing.overview` (a lot's status is
computed there, once, by :func:`exocheck.lots.status.lot_status`), so it decides nothing about a
lot: it only picks and orders rows. Example::

    wanted = LotFilter.parse(lot="24-0", status="in review")
    page = search_lots(signing.overview(), wanted, page=1)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from exocheck.errors import ParameterError
from exocheck.lots.status import STATUSES
from exocheck.paging import PER_PAGE, Page, page_of

#: the longest search text taken (a lot number or product name is at most 200 characters)
MAX_SEARCH_CHARS = 200


@dataclass(frozen=True)
class LotFilter:
    """Which lots are wanted; a field left ``None`` matches every lot.

    Attributes
    ----------
    lot : str or None
        Part of the lot number, ignoring case.
    product : str or None
        Part of the product's name, ignoring case.
    status : str or None
        One of :data:`exocheck.lots.status.STATUSES`.
    """

    lot: str | None = None
    product: str | None = None
    status: str | None = None

    @classmethod
    def parse(
        cls, *, lot: str | None = None, product: str | None = None, status: str | None = None
    ) -> LotFilter:
        """The filter from a form's text (blank: no condition); :class:`ParameterError` (one
        line) for a text over :data:`MAX_SEARCH_CHARS` characters or an unknown status."""
        values = []
        for name, value in (("lot", lot), ("product", product)):
            text = (value or "").strip()
            if len(text) > MAX_SEARCH_CHARS:
                raise ParameterError(f"{name}: at most {MAX_SEARCH_CHARS} characters")
            values.append(text or None)
        state = (status or "").strip() or None
        if state is not None and state not in STATUSES:
            raise ParameterError(f"status {state[:40]!r} is not one of: {', '.join(STATUSES)}")
        return cls(values[0], values[1], state)

    def matches(self, row: dict[str, Any]) -> bool:
        """True when the overview row ``row`` is wanted."""
        if self.lot is not None and self.lot.casefold() not in str(row["lot"]).casefold():
            return False
        if (
            self.product is not None
            and self.product.casefold() not in str(row["product"]).casefold()
        ):
            return False
        return self.status is None or row["status"] == self.status


def status_counts(rows: list[dict[str, Any]], wanted: LotFilter | None = None) -> dict[str, int]:
    """How many of ``rows`` have each status (every status listed, in lifecycle order), among
    those that the filter's lot and product parts match (its status part left aside)."""
    wanted = wanted or LotFilter()
    others = LotFilter(wanted.lot, wanted.product, None)
    counted = Counter(r["status"] for r in rows if others.matches(r))
    return {status: counted.get(status, 0) for status in STATUSES}


def search_lots(
    rows: list[dict[str, Any]],
    wanted: LotFilter | None = None,
    *,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Page:
    """One page of the overview rows that ``wanted`` matches, newest lot first.

    Parameters
    ----------
    rows
        :meth:`~exocheck.lots.signatures.Signing.overview`, oldest lot first.
    wanted
        The filter (default: every lot).
    page, per_page
        Which page (from 1) of how many lots (see :func:`exocheck.paging.check_paging`).
    """
    wanted = wanted or LotFilter()
    return page_of([r for r in reversed(rows) if wanted.matches(r)], page, per_page)


__all__ = ["LotFilter", "search_lots", "status_counts"]

"""Pages of a long list: which rows page ``n`` holds, and how many pages there are.

Every shell pages the same way (the audit trail, the lots list): pages are numbered from 1, a
page past the last is empty (its ``total`` still says how many rows match), and a page size is
bounded so that no request asks the server for everything at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exocheck.errors import ParameterError

#: rows per page unless asked otherwise
PER_PAGE = 50
#: the most rows one page may hold
MAX_PER_PAGE = 500


@dataclass(frozen=True)
class Page:
    """One page of a filtered list.

    Attributes
    ----------
    items : list
        The rows of this page, in the list's order.
    total : int
        How many rows match the filter, on every page together.
    page : int
        This page's number (from 1).
    per_page : int
        Rows per page.
    """

    items: list[Any] = field(default_factory=list)
    total: int = 0
    page: int = 1
    per_page: int = PER_PAGE

    @property
    def pages(self) -> int:
        """How many pages the matching rows fill (at least 1)."""
        return max(1, -(-self.total // self.per_page))

    @property
    def first(self) -> int:
        """The position (from 1) of this page's first row among all matching rows; 0 if none."""
        return (self.page - 1) * self.per_page + 1 if self.items else 0

    @property
    def last(self) -> int:
        """The position of this page's last row among all matching rows; 0 if none."""
        return self.first + len(self.items) - 1 if self.items else 0

    def numbers(self, around: int = 2) -> list[int | None]:
        """Page numbers to offer as links: the first, the last and ``around`` either side of this
        one, with ``None`` where numbers are left out (shown as an ellipsis)."""
        wanted = {1, self.pages, *range(self.page - around, self.page + around + 1)}
        shown = sorted(n for n in wanted if 1 <= n <= self.pages)
        out: list[int | None] = []
        for n in shown:
            if out and n - (out[-1] or 0) > 1:
                out.append(None)
            out.append(n)
        return out


def check_paging(
    page: int | str | None, per_page: int | str | None = None, *, max_per_page: int = MAX_PER_PAGE
) -> tuple[int, int]:
    """``(page, per_page)`` as whole numbers within bounds; :class:`ParameterError` (one line)
    otherwise. ``None`` or blank: page 1, :data:`PER_PAGE` rows."""

    def number(value: int | str | None, name: str, default: int) -> int:
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        text = str(value).strip()
        if not text.isdigit() or len(text) > 9:
            raise ParameterError(f"{name} must be a whole number ≥ 1, not {text[:20]!r}")
        return int(text)

    n = number(page, "page", 1)
    size = number(per_page, "per_page", PER_PAGE)
    if n < 1:
        raise ParameterError(f"page must be ≥ 1, not {n}")
    if not 1 <= size <= max_per_page:
        raise ParameterError(f"per_page must be between 1 and {max_per_page}, not {size}")
    return n, size


def page_of(rows: list[Any], page: int, per_page: int) -> Page:
    """Page ``page`` of ``rows`` (a list already filtered and ordered)."""
    start = (page - 1) * per_page
    return Page(rows[start : start + per_page], len(rows), page, per_page)


__all__ = ["MAX_PER_PAGE", "PER_PAGE", "Page", "check_paging", "page_of"]

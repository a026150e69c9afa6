"""Stability studies as plain data: storage conditions, time points and results linked to lots.

A study is a tidy table, one row per result: lot, time, storage condition (temperature,
container / tube type, buffer) and the measured value. :func:`read_study_csv` imports one from
CSV; :class:`StabilityStudy` is the plain record the store persists and the shelf-life engine
reads (:meth:`StabilityStudy.frame`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from exocheck.errors import StabilityError
from exocheck.qc.ich_q1e import MONTH_IN_UNIT

if TYPE_CHECKING:
    import pandas as pd


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudyCondition(_Record):
    """One storage condition of a study."""

    temperature_c: float | None = None
    container: str | None = Field(default=None, description="tube / container type")
    buffer: str | None = None

    @property
    def label(self) -> str:
        """A short human-readable name, e.g. ``"4 °C, polypropylene, PBS"``."""
        parts = []
        if self.temperature_c is not None:
            parts.append(f"{self.temperature_c:g} °C")
        parts += [p for p in (self.container, self.buffer) if p]
        return ", ".join(parts) or "unspecified"


class StudyResult(_Record):
    """One result: a lot measured at a time point under a condition."""

    lot: str
    time: float
    value: float
    condition: int = Field(description="index into StabilityStudy.conditions")


class StabilityStudy(_Record):
    """A stability study: the attribute measured, its conditions and its results."""

    name: str
    attribute: str
    unit: str | None = None
    time_unit: str = "month"
    conditions: list[StudyCondition]
    results: list[StudyResult]

    def frame(self, condition: StudyCondition | int | None = None) -> pd.DataFrame:
        """Tidy table ``lot, time, value, condition, temperature_c, container, buffer``.

        With ``condition`` only that condition's rows are returned.
        """
        import pandas as pd  # imported on use: the store reads studies without pandas

        rows = pd.DataFrame([r.model_dump() for r in self.results])
        cond = pd.DataFrame([c.model_dump() for c in self.conditions])
        cond["condition_label"] = [c.label for c in self.conditions]
        out = rows.join(cond, on="condition")
        if condition is not None:
            index = condition if isinstance(condition, int) else self.conditions.index(condition)
            out = out[out["condition"] == index].reset_index(drop=True)
        return out


def read_study_csv(
    path: str | Path,
    *,
    response_col: str,
    lot_col: str = "lot",
    time_col: str = "time",
    temperature_col: str | None = "temperature_c",
    container_col: str | None = "container",
    buffer_col: str | None = "buffer",
    time_unit: str = "month",
    unit: str | None = None,
    name: str | None = None,
) -> StabilityStudy:
    """Import a stability study from a tidy CSV table (one row per result).

    Condition columns that are absent from the file are ignored; the lot, time and response
    columns are required.
    """
    path = Path(path)
    if time_unit not in MONTH_IN_UNIT:
        raise StabilityError(
            f"unknown time unit {time_unit!r}: use one of {', '.join(MONTH_IN_UNIT)}"
        )
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StabilityError(f"{path}: not a readable CSV table ({exc})") from exc
    missing = [c for c in (lot_col, time_col, response_col) if c not in table.columns]
    if missing:
        raise StabilityError(f"{path}: missing column(s) {', '.join(missing)}")
    for col in (time_col, response_col):
        values = pd.to_numeric(table[col], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0]) + 2
            raise StabilityError(f"{path}: line {row}: column {col} is not a number")
        table[col] = values
    present = {
        "temperature_c": temperature_col if temperature_col in table.columns else None,
        "container": container_col if container_col in table.columns else None,
        "buffer": buffer_col if buffer_col in table.columns else None,
    }
    conditions: list[StudyCondition] = []
    results: list[StudyResult] = []
    for record in table.to_dict("records"):
        fields = {}
        for key, col in present.items():
            value = record[col] if col else None
            fields[key] = None if value is None or pd.isna(value) else value
        if fields["temperature_c"] is not None:
            fields["temperature_c"] = float(fields["temperature_c"])
        for key in ("container", "buffer"):
            if fields[key] is not None:
                fields[key] = str(fields[key])
        condition = StudyCondition(**fields)
        if condition not in conditions:
            conditions.append(condition)
        results.append(
            StudyResult(
                lot=str(record[lot_col]),
                time=float(record[time_col]),
                value=float(record[response_col]),
                condition=conditions.index(condition),
            )
        )
    if not results:
        raise StabilityError(f"{path}: no results")
    return StabilityStudy(
        name=name or path.stem,
        attribute=response_col,
        unit=unit,
        time_unit=time_unit,
        conditions=conditions,
        results=results,
    )

"""Instrument imports: vendor NTA / nano-flow exports into the one measurement record.

One module per format (:mod:`.nanosight`, :mod:`.zetaview`, :mod:`.viewsizer`, :mod:`.fcs`);
:func:`read_measurement` recognises the format from the content and dispatches;
:mod:`.export` writes a measurement back as a NanoSight-style summary CSV or JSON.
"""

from __future__ import annotations

from exocheck.instruments.detect import FORMATS, detect_format, read_measurement
from exocheck.instruments.export import to_json, to_nanosight_csv

__all__ = ["FORMATS", "detect_format", "read_measurement", "to_json", "to_nanosight_csv"]

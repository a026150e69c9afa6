"""Instruments, checked bead calibrations and analytical methods, as records of the store.

A GMP laboratory analyses with a validated method on a qualified instrument with a current
calibration, and its certificate cites all three. This package keeps them:

* :mod:`~exocheck.methods.instruments`: the instrument register (serial, model, optics, when the
  qualification and the calibration fall due); imports matched by the serial they state;
* :mod:`~exocheck.methods.calibrations`: bead calibrations accepted only on one narrow peak of
  the certified size, from a standard within its expiry; stored, and expiring after the
  method's interval;
* :mod:`~exocheck.methods.methods`: versioned methods (:mod:`~exocheck.methods.document`)
  approved by QA (four eyes); :mod:`~exocheck.methods.apply`: an analysis under a method uses
  its settings, and its record carries the method's name and version, the instrument and the
  calibration (:mod:`~exocheck.methods.stamps`);
* :mod:`~exocheck.methods.units`: values outside physical sense for their unit, and the unit
  probably meant.

What pages and the certificate call::

    from exocheck.methods import approved_methods, calibration_of, instrument_of, method_of

    approved_methods(store)          # [{"method": "nta-ev@1", "status": "approved", ...}]
    method_of(record)                # {"name", "version", "instrument_serial", ...} or None
    method_label(record)             # "nta-ev@1" or "no method"
    lacks_method(record, kind)       # "no method": a particle measurement made without one
    calibration_of(record)           # the calibration the record's concentration rests on
    instrument_of(store, record)     # the register's entry of the record's instrument

The shells (``exocheck instrument|method|calibration``, ``analyze --method``, the REST API) call
these functions and only map their errors.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: the public names, by the module that defines them (imported on first use: the units check is
#: used by ``exocheck analyze``, whose start-up should not load the store)
_WHERE = {
    "approved_methods": "methods",
    "get_method": "methods",
    "list_methods": "methods",
    "lacks_method": "stamps",
    "method_label": "stamps",
    "method_of": "stamps",
    "calibration_of": "calibrations",
    "get_calibration": "calibrations",
    "list_calibrations": "calibrations",
    "load_calibration": "calibrations",
    "get_instrument": "instruments",
    "instrument_of": "instruments",
    "list_instruments": "instruments",
    "check_value": "units",
    "check_values": "units",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'exocheck.methods' has no attribute {name!r}")
    return getattr(import_module(f"exocheck.methods.{_WHERE[name]}"), name)

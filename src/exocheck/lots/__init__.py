"""The lot lifecycle, written once: what a lot's status is, what may happen to it and who may do
it, and which certificate it gets. The command line, the REST API, the pages and the batch runner
call these functions and only map their errors (to exit codes or HTTP statuses).

- :mod:`exocheck.lots.status` — :func:`~exocheck.lots.status.lot_status`, the one function that
  decides a lot's status; :func:`~exocheck.lots.status.lot_state`, every list's rows;
- :mod:`exocheck.lots.actions` — create a lot, add and withdraw measurements;
- :mod:`exocheck.lots.signatures` — review, approve, reject, accept a deviation, recall, with
  electronic signatures and the four-eyes rule;
- :mod:`exocheck.lots.certificate` — which certificate a lot gets, and its bytes.
"""

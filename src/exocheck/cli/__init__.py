"""The ``exocheck`` command: thin shells over the library, one module per command group.

The program runs BLAS (numpy's linear algebra) on one thread unless the environment says
otherwise; this is set here, before numpy is loaded. The analysis parallelises its own work (the
detection over frames, a batch over videos), and multithreaded BLAS made the sizing slower and its
last digits depend on the number of cores: with one thread, ``exocheck analyze`` and the
single-threaded workers of ``exocheck batch`` give the same numbers on any machine.
"""

import os as _os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_name, "1")

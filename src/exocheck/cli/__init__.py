"""The ``exocheck`` command: thin shells over the library, one module per command group."""

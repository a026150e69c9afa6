"""exocheck: open, reproducible verification of extracellular-vesicle products."""

__version__ = "0.1.0"

"""rowstat: a generator of row-stationary DNN accelerators."""

__version__ = "0.1.0"

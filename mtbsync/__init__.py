"""mtbsync: align repeated mountain-bike runs and carry markers from a reference run onto new runs."""

__version__ = "0.1.0"

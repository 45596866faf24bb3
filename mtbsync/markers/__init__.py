"""Markers of the reference run: reading them, carrying them onto a new run, writing the result."""

from mtbsync.markers.io import parse_time, read_new_markers, read_reference_markers, write_new_markers
from mtbsync.markers.model import Marker, TransferredMarker
from mtbsync.markers.transfer import TransferSummary, transfer_markers

__all__ = [
    "Marker",
    "TransferSummary",
    "TransferredMarker",
    "parse_time",
    "read_new_markers",
    "read_reference_markers",
    "transfer_markers",
    "write_new_markers",
]

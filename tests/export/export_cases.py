"""Marker lists shared by the export tests (plain constants: the markers are frozen)."""

from __future__ import annotations

from mtbsync.markers.model import TransferredMarker

# Names that stress every format: commas, quotes, pipes, line breaks, XML specials, non-Latin
# letters and a 200-character name.
AWKWARD_NAMES = (
    'comma, "quoted" name',
    "pipe | and |C:ResolveColorRed |M:fake |D:9",
    "line one\nline two\r\nthree\ttabbed",
    "<tag> & 'apostrophe' > less",
    "Лесная тропа — корни",
    "森林小道 跳跃",
    "12 starts with a digit",
    "x" * 200,
)

# Three placed markers (one needs review) and one not placed.
SMALL_MARKERS = (
    TransferredMarker("gap jump", 10.0, 5.0, 0.9, False, "#00ff00", "big one"),
    TransferredMarker("rock garden", 20.0, 12.34, 0.41, True, "sky", ""),
    TransferredMarker("missed", 30.0, None, 0.0, True, "", "not covered"),
    TransferredMarker("berm", 40.0, 59.0, 0.8, False, "", ""),
)

_COLOURS = ("#e6194b", "purple", "", "not-a-colour", "Lavender", "#abc", "orange", "cream")
# One marker per awkward name, one second apart, in odd colours.
AWKWARD_MARKERS = tuple(
    TransferredMarker(name, float(k), 1.0 + k, 0.9, k % 3 == 0, _COLOURS[k], f"note {k}\nsecond line")
    for k, name in enumerate(AWKWARD_NAMES)
)

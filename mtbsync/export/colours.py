"""Marker colours: what a marker's free-text colour becomes in each editor's fixed palette.

A marker's colour is written by people (``#e6194b``, ``red``, ``ResolveColorSky``). It is read as
``#rrggbb`` / ``rrggbb`` / ``#rgb``, or as a name from `NAMED_COLOURS` (case and spaces ignored,
Resolve's ``ResolveColor`` prefix allowed), then mapped to the nearest colour (RGB distance) of the
editor's palette; a name that is itself in the palette maps to itself. Empty and unknown colours
map to `DEFAULT_COLOUR`; markers that need review get `REVIEW_COLOUR`, whatever their colour.

| editor | palette |
|---|---|
| DaVinci Resolve | 16 colours (`RESOLVE_COLOURS`) |
| Avid / CMX ``* LOC:`` | WHITE RED GREEN BLUE CYAN MAGENTA YELLOW BLACK (`AVID_COLOURS`) |
| Premiere Pro | 8 colours by index (`PREMIERE_COLOURS`), written as ``pproColor`` |
| Final Cut Pro | none: the colour's name goes into the marker's note |

The RGB values of the palettes are approximations of what each editor shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RGB = tuple[int, int, int]

DEFAULT_COLOUR = "blue"
"""Colour of markers with no colour or one mtbsync cannot read (Resolve's own default marker colour)."""
REVIEW_COLOUR = "red"
"""Colour of markers that need review, in every editor."""

RESOLVE_COLOURS: dict[str, RGB] = {
    "Blue": (0, 112, 255),
    "Cyan": (0, 206, 208),
    "Green": (0, 173, 0),
    "Yellow": (240, 200, 0),
    "Red": (230, 30, 30),
    "Pink": (255, 64, 196),
    "Purple": (144, 19, 254),
    "Fuchsia": (192, 46, 111),
    "Rose": (255, 161, 185),
    "Lavender": (161, 147, 200),
    "Sky": (146, 226, 253),
    "Mint": (114, 219, 0),
    "Lemon": (220, 233, 90),
    "Sand": (196, 145, 94),
    "Cocoa": (110, 81, 67),
    "Cream": (245, 235, 225),
}

AVID_COLOURS: dict[str, RGB] = {
    "WHITE": (255, 255, 255),
    "RED": (255, 0, 0),
    "GREEN": (0, 255, 0),
    "BLUE": (0, 0, 255),
    "CYAN": (0, 255, 255),
    "MAGENTA": (255, 0, 255),
    "YELLOW": (255, 255, 0),
    "BLACK": (0, 0, 0),
}


@dataclass(frozen=True)
class PremiereColour:
    """One of Premiere Pro's 8 marker colours.

    Attributes:
        index: Premiere's colour index (0 green ... 7 cyan).
        name: What the swatch looks like.
        rgb: Its RGB value.
        ppro_color: The ``<pproColor>`` integer (ABGR) Premiere writes in FCP XML.
    """

    index: int
    name: str
    rgb: RGB
    ppro_color: int


PREMIERE_COLOURS: tuple[PremiereColour, ...] = (
    PremiereColour(0, "Green", (113, 134, 55), 4281828977),
    PremiereColour(1, "Red", (210, 44, 54), 4281740498),
    PremiereColour(2, "Magenta", (175, 139, 177), 4289825711),
    PremiereColour(3, "Orange", (233, 111, 36), 4280578025),
    PremiereColour(4, "Yellow", (208, 161, 43), 4281049552),
    PremiereColour(5, "White", (255, 255, 255), 4294967295),
    PremiereColour(6, "Blue", (66, 141, 252), 4294741314),
    PremiereColour(7, "Cyan", (25, 244, 214), 4292277273),
)

# Names people write, with the RGB they mean (Resolve's names use Resolve's RGB).
NAMED_COLOURS: dict[str, RGB] = {
    **{name.lower(): rgb for name, rgb in RESOLVE_COLOURS.items()},
    "red": (230, 30, 30),
    "green": (0, 173, 0),
    "blue": (0, 112, 255),
    "orange": (255, 140, 0),
    "violet": (144, 19, 254),
    "magenta": (255, 0, 255),
    "turquoise": (48, 191, 191),
    "teal": (0, 128, 128),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "brown": (110, 81, 67),
    "lime": (114, 219, 0),
}

_HEX6 = re.compile(r"#?([0-9a-fA-F]{6})")
_HEX3 = re.compile(r"#([0-9a-fA-F]{3})")


def parse_colour(text: str) -> RGB | None:
    """The RGB a marker's colour text means, or None when empty or not a colour mtbsync knows.

    Args:
        text: ``#rrggbb``, ``rrggbb``, ``#rgb`` or a name (``red``, ``Sky``, ``ResolveColorSky``).

    Returns:
        The colour, or None.
    """
    s = text.strip()
    if match := _HEX6.fullmatch(s):
        value = int(match.group(1), 16)
        return (value >> 16, (value >> 8) & 0xFF, value & 0xFF)
    if match := _HEX3.fullmatch(s):
        r, g, b = (int(c * 2, 16) for c in match.group(1))
        return (r, g, b)
    return NAMED_COLOURS.get(_name_key(s))


def _name_key(text: str) -> str:
    """A colour name as looked up: lower case, no spaces, ``_`` or ``-``, no ``ResolveColor`` prefix."""
    return re.sub(r"[\s_-]+", "", text.lower()).removeprefix("resolvecolor")


def is_known_colour(text: str) -> bool:
    """True when ``text`` is empty or a colour mtbsync can map (see `parse_colour`)."""
    return not text.strip() or parse_colour(text) is not None


def _nearest(rgb: RGB, palette: dict[str, RGB]) -> str:
    return min(palette, key=lambda name: sum((a - b) ** 2 for a, b in zip(rgb, palette[name], strict=True)))


def _wanted(colour: str, needs_review: bool) -> tuple[str, RGB]:
    """The colour text to map and its RGB, after the review and default rules."""
    if needs_review:
        return REVIEW_COLOUR, NAMED_COLOURS[REVIEW_COLOUR]
    rgb = parse_colour(colour)
    if rgb is None:
        return DEFAULT_COLOUR, NAMED_COLOURS[DEFAULT_COLOUR]
    return colour, rgb


def resolve_colour(colour: str, needs_review: bool = False) -> str:
    """DaVinci Resolve's marker colour for a marker (one of `RESOLVE_COLOURS`, e.g. ``Sky``).

    Args:
        colour: The marker's colour text.
        needs_review: The marker needs review (gets `REVIEW_COLOUR`).

    Returns:
        The Resolve colour name, without the ``ResolveColor`` prefix.
    """
    text, rgb = _wanted(colour, needs_review)
    key = _name_key(text)
    for name in RESOLVE_COLOURS:
        if name.lower() == key:
            return name
    return _nearest(rgb, RESOLVE_COLOURS)


def avid_colour(colour: str, needs_review: bool = False) -> str:
    """The Avid locator colour (``* LOC:`` lines) for a marker, e.g. ``BLUE``.

    Args:
        colour: The marker's colour text.
        needs_review: The marker needs review (gets `REVIEW_COLOUR`).

    Returns:
        One of `AVID_COLOURS`.
    """
    text, rgb = _wanted(colour, needs_review)
    name = text.strip().upper()
    return name if name in AVID_COLOURS else _nearest(rgb, AVID_COLOURS)


def premiere_colour(colour: str, needs_review: bool = False) -> PremiereColour:
    """Premiere Pro's marker colour for a marker.

    Args:
        colour: The marker's colour text.
        needs_review: The marker needs review (gets `REVIEW_COLOUR`).

    Returns:
        One of `PREMIERE_COLOURS`.
    """
    text, rgb = _wanted(colour, needs_review)
    by_name = {c.name.lower(): c for c in PREMIERE_COLOURS}
    key = text.strip().lower()
    if key in by_name:
        return by_name[key]
    palette = {c.name: c.rgb for c in PREMIERE_COLOURS}
    return by_name[_nearest(rgb, palette).lower()]

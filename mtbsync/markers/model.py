"""Markers: named moments of the reference run, and the same moments carried onto a new run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Marker:
    """A named moment of the reference run ("gap jump", "rock garden").

    Attributes:
        name: What the editor sees; need not be unique.
        t_ref: Seconds from the start of the reference run.
        colour: Free text passed through to exports (``#e6194b``, ``red``).
        comment: Free text passed through to exports.
    """

    name: str
    t_ref: float
    colour: str = ""
    comment: str = ""


@dataclass(frozen=True)
class TransferredMarker:
    """A reference marker carried onto the new run through the warp.

    Attributes:
        name: The reference marker's name.
        t_ref: The reference marker's time (seconds).
        t_new: Where it happens in the new run (seconds), or None when it was not placed.
        confidence: The warp's confidence at ``t_new`` in [0, 1]; 0 when not placed.
        needs_review: True when an editor should check it (low confidence, not aligned, not placed).
        colour: The reference marker's colour.
        comment: The reference marker's comment, with the reasons for review appended after `` | ``.
    """

    name: str
    t_ref: float
    t_new: float | None
    confidence: float
    needs_review: bool
    colour: str = ""
    comment: str = ""

    @property
    def placed(self) -> bool:
        """True when the marker has a time in the new run."""
        return self.t_new is not None

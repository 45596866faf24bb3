"""Carrying the reference run's markers onto the new run through the warp."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mtbsync.align.warp import Warp
from mtbsync.errors import ConfigError
from mtbsync.markers.model import Marker, TransferredMarker


def transfer_markers(
    markers: Sequence[Marker], warp: Warp, *, review_threshold: float = 0.6
) -> list[TransferredMarker]:
    """Place each reference marker in the new run: the first moment the new run reaches its place.

    A marker is placed only when the runs are aligned (``warp.ok``) and its reference time lies in
    the covered part; otherwise ``t_new`` is None, the confidence 0, and the reason is appended to
    its comment (``not placed: ...``). A placed marker needs review when the warp's confidence there
    is under ``review_threshold`` (its comment then says so too).

    Args:
        markers: The reference run's markers.
        warp: The fitted warp new -> reference.
        review_threshold: Confidence under which a placed marker needs review, in [0, 1].

    Returns:
        One transferred marker per input marker, in input order.

    Raises:
        ConfigError: ``review_threshold`` is outside [0, 1].
    """
    if not 0.0 <= review_threshold <= 1.0:
        raise ConfigError(f"review threshold must be from 0 to 1, not {review_threshold}")
    if not warp.ok or warp.is_empty:
        why = warp.reason or ("no covered part" if warp.is_empty else "quality gates failed")
        return [_not_placed(m, f"not placed: runs not aligned ({why})") for m in markers]

    # The warp's inverse and confidence over all markers at once (a marker file may hold 300,000);
    # the loop below only assembles the results.
    t_ref = np.fromiter((m.t_ref for m in markers), np.float64, count=len(markers))
    t_new = warp.to_new(t_ref)
    confidence = np.clip(warp.confidence_at(t_new), 0.0, 1.0)
    lo, hi = warp.ref_range
    # A warp from GPS alone (vision verified too little) places every marker for review.
    gps_only = warp.metrics.get("model") == "gps"
    accuracy = float(warp.metrics.get("accuracy_s") or 0.0)
    low = (confidence < review_threshold) | gps_only
    gps_note = f"placed by GPS alone (about +-{accuracy:.1f} s): check it"
    outside = {
        side: f"not placed: {side} the new run's covered part (ref {lo:.1f}–{hi:.1f} s)"
        for side in ("before", "after")
    }
    out = []
    for m, tr, tn, conf, is_low in zip(
        markers, t_ref.tolist(), t_new.tolist(), confidence.tolist(), low.tolist(), strict=True
    ):
        if not math.isfinite(tr):
            out.append(_not_placed(m, "not placed: its reference time is not a number"))
        elif math.isnan(tn):
            out.append(_not_placed(m, outside["before" if tr < lo else "after"]))
        else:
            if gps_only:
                comment = _append(m.comment, gps_note)
            elif is_low:
                comment = _append(m.comment, f"low confidence ({conf:.2f} < {review_threshold:.2f})")
            else:
                comment = m.comment
            out.append(TransferredMarker(m.name, tr, tn, conf, is_low, m.colour, comment))
    return out


def _not_placed(marker: Marker, reason: str) -> TransferredMarker:
    return TransferredMarker(
        marker.name, float(marker.t_ref), None, 0.0, True, marker.colour, _append(marker.comment, reason)
    )


def _append(comment: str, reason: str) -> str:
    return f"{comment} | {reason}" if comment else reason


@dataclass(frozen=True)
class TransferSummary:
    """How a transfer went, in numbers a rider reads at a glance.

    Attributes:
        total: Markers transferred.
        placed: Markers with a time in the new run.
        not_placed: Markers without one.
        needs_review: Markers an editor should check (placed or not).
    """

    total: int
    placed: int
    not_placed: int
    needs_review: int

    @classmethod
    def of(cls, markers: Sequence[TransferredMarker]) -> TransferSummary:
        """Count ``markers``.

        Args:
            markers: The result of `transfer_markers`.

        Returns:
            The counts.
        """
        placed = sum(m.placed for m in markers)
        return cls(len(markers), placed, len(markers) - placed, sum(m.needs_review for m in markers))

    def __str__(self) -> str:
        return f"placed {self.placed} of {self.total} markers ({self.needs_review} need review)"

"""How far to trust a transferred marker once full-rate timing has (or has not) found its place.

Whether full-rate timing runs at all is decided here too (`wants_full_rate_timing`). A marker timed
at full frame rate gets the calibrated confidence (`marker_confidence`), capped by the warp's own;
one whose place was not found rests on keyframes alone and asks for review, and at the extrapolated
ends of the covered part, or below `MIN_UNCONFIRMED_CONFIDENCE`, is not placed.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from mtbsync.align.fit import pin_warp
from mtbsync.align.pairs import AlignmentPair
from mtbsync.align.warp import Warp
from mtbsync.config import SyncConfig
from mtbsync.io.video import VideoSource
from mtbsync.markers.confidence import GUARD_CAP, marker_confidence, review_guards
from mtbsync.markers.model import Marker, TransferredMarker
from mtbsync.markers.refine import THROUGH_WARP, MarkerRefinement

# An unconfirmed marker below this confidence (e.g. in the half keyframe by which the covered part is
# extended at its ends) is not placed: a guess is worse than a gap the editor can see.
MIN_UNCONFIRMED_CONFIDENCE = 0.25


def wants_full_rate_timing(
    markers: list[Marker],
    warp: Warp,
    *,
    reference: VideoSource | None,
    new: VideoSource | None,
    config: SyncConfig,
) -> bool:
    """Whether the markers are timed at full frame rate before they are transferred.

    Args:
        markers: The reference markers.
        warp: The alignment's warp.
        reference: The reference run's video, or None (not at hand).
        new: The new run's video, or None.
        config: Parameters (``config.refine``).

    Returns:
        True when refinement is on, there are markers, both videos are given and the warp is
        aligned by vision (a GPS-only warp has nothing vision could time).
    """
    vision = warp.metrics.get("model") != "gps"
    return bool(
        config.refine and warp.ok and vision and reference is not None and new is not None and markers
    )


def pin_at_refinement(warp: Warp, refinement: MarkerRefinement) -> tuple[Warp, list[AlignmentPair]]:
    """Pin the warp at the markers found at full frame rate.

    Args:
        warp: The alignment's warp.
        refinement: The markers' full-rate timing.

    Returns:
        The pinned warp, and one ``marker`` anchor pair per marker found (for pairs.csv).
    """
    found = np.isfinite(refinement.t_new)
    t_new, t_ref = refinement.t_new[found], refinement.t_ref[found]
    warp = pin_warp(warp, t_new, t_ref)
    confidence = warp.confidence_at(t_new) if t_new.size else np.zeros(0)
    anchors = [
        AlignmentPair(tn, tr, 0, conf, True, "marker")
        for tn, tr, conf in zip(t_new.tolist(), t_ref.tolist(), confidence.tolist(), strict=True)
    ]
    return warp, anchors


def apply_refinement(
    transferred: list[TransferredMarker], refinement: MarkerRefinement, warp: Warp, review_threshold: float
) -> list[TransferredMarker]:
    """Set each placed marker's confidence and notes from whether full-rate timing found it.

    Args:
        transferred: The markers transferred through ``warp`` (in the refinement's order).
        refinement: Their full-rate timing.
        warp: The warp they were transferred through (pinned at the refinement).
        review_threshold: Confidence under which a marker needs review.

    Returns:
        The markers: found ones with the calibrated confidence (`timed_confidence`), the others
        timed from keyframes only or not placed (`keyframes_only`); those left to the warp because
        of `REFINE_MAX_MARKERS` (method `THROUGH_WARP`) as transferred through the pinned warp.
    """
    # Not looked for is not "not found": a marker past the limit keeps the pinned warp's placing.
    left_to_warp = np.array([method == THROUGH_WARP for method in refinement.method], bool)
    found = np.isfinite(refinement.t_new) | left_to_warp
    transferred = [
        timed_confidence(m, timing, warp, refinement, review_threshold)
        if m.t_new is not None and ok and timing is not None
        else m
        for m, ok, timing in zip(transferred, found, refinement.timings, strict=True)
    ]
    # A placed marker whose place was not found at full frame rate rests on keyframes alone:
    # say so, and trust it less; at the extrapolated ends of the covered part, do not place it.
    residual_ms = 1000 * float((warp.metrics.get("residuals_s") or {}).get("p90", 0.0) or 0.0)
    verified = warp.metrics.get("verified_ref_range") or [-math.inf, math.inf]
    return [
        keyframes_only(m, residual_ms, review_threshold, verified) if m.t_new is not None and not ok else m
        for m, ok in zip(transferred, found, strict=True)
    ]


def timed_confidence(
    marker: TransferredMarker, timing: Any, warp: Warp, refinement: MarkerRefinement, review_threshold: float
) -> TransferredMarker:
    """A marker timed at full rate gets the calibrated confidence; a stop at its place is said.

    Args:
        marker: The transferred marker (placed).
        timing: Its `MomentTiming`.
        warp: The warp it was transferred through.
        refinement: The full-rate timing it belongs to (frame length, features).
        review_threshold: Confidence under which a marker needs review.

    Returns:
        The marker with its confidence, review flag and notes.
    """
    speed = float(np.nan_to_num(warp.speed_ratio(marker.t_new)[0], nan=1.0))
    confidence = marker_confidence(
        timing, new_frame_s=refinement.new_frame_s, speed=speed, learned=refinement.learned
    )
    # The warp says how sure the alignment is here; the timing cannot be surer than that.
    confidence = min(confidence, max(float(marker.confidence), 0.0) + 0.3)
    notes = []
    if timing.stop:
        notes.append("the new run stops at this place: timed at its arrival")
    guards = review_guards(
        timing, new_frame_s=refinement.new_frame_s, ref_frame_s=refinement.ref_frame_s, speed=speed
    )
    if guards:
        confidence = min(confidence, GUARD_CAP)
        notes.extend(guards)
    if confidence < review_threshold:
        notes.append(f"low confidence ({confidence:.2f} < {review_threshold:.2f})")
    comment = marker.comment.split(" | low confidence")[0]
    for note in notes:
        comment = f"{comment} | {note}" if comment else note
    return replace(marker, confidence=confidence, needs_review=confidence < review_threshold, comment=comment)


def keyframes_only(
    marker: TransferredMarker, residual_ms: float, review_threshold: float, verified_ref: list[float]
) -> TransferredMarker:
    """A placed marker whose place full-rate timing did not find: trusted less, or not placed.

    Args:
        marker: The transferred marker (placed).
        residual_ms: The warp's p90 residual (ms), for the note.
        review_threshold: Confidence under which a marker needs review.
        verified_ref: The reference range the warp verified ``[start, end]``.

    Returns:
        The marker timed from keyframes only (asking for review), or not placed when beyond the
        verified range or below `MIN_UNCONFIRMED_CONFIDENCE`.
    """
    at_edge = not verified_ref[0] <= marker.t_ref <= verified_ref[1]
    if marker.confidence < MIN_UNCONFIRMED_CONFIDENCE or at_edge:
        why = "beyond the last matched keyframe" if at_edge else f"confidence {marker.confidence:.2f}"
        note = f"not placed: its place was not found at full frame rate and the warp is unsure here ({why})"
        comment = f"{marker.comment} | {note}" if marker.comment else note
        return replace(marker, t_new=None, confidence=0.0, needs_review=True, comment=comment)
    # Not confirmed at full frame rate: a frame-accurate place is unlikely, so it asks for review.
    confidence = min(0.7 * marker.confidence, 0.5)
    note = f"timed from keyframes only (warp p90 {residual_ms:.0f} ms), not confirmed at full frame rate"
    comment = f"{marker.comment} | {note}" if marker.comment else note
    return replace(
        marker,
        confidence=confidence,
        needs_review=marker.needs_review or confidence < review_threshold,
        comment=comment,
    )

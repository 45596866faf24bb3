"""The markers stage: markers timed at full frame rate where the videos allow, then carried onto the new run.

`transfer_with_refinement` is the stage's entry point (``mtbsync sync``, ``mtbsync transfer`` and the
library's re-transfer all call it): whether to time the markers is `wants_full_rate_timing`'s call,
the timing itself `refine_at_reference_times` (`mtbsync.markers.refine`), and how far each marker is
trusted afterwards `mtbsync.markers.policy`. Its parts run as the stages ``refine markers`` and
``transfer`` of the caller's `StageTimer`.
"""

from __future__ import annotations

import logging

from mtbsync.align.pairs import AlignmentPair
from mtbsync.align.warp import Warp
from mtbsync.config import SyncConfig
from mtbsync.io.video import VideoSource
from mtbsync.markers.model import Marker, TransferredMarker
from mtbsync.markers.policy import apply_refinement, pin_at_refinement, wants_full_rate_timing
from mtbsync.markers.refine import MarkerRefinement, plan_refinement, refine_markers
from mtbsync.markers.transfer import transfer_markers
from mtbsync.timing import StageTimer

log = logging.getLogger("mtbsync")


def transfer_with_refinement(
    markers: list[Marker],
    warp: Warp,
    *,
    reference: VideoSource | None,
    new: VideoSource | None,
    config: SyncConfig,
    review_threshold: float,
    timer: StageTimer,
) -> tuple[Warp, list[TransferredMarker], list[AlignmentPair]]:
    """Transfer markers through ``warp``, first timing them at full frame rate when the videos are given.

    Full-rate timing runs where `wants_full_rate_timing` says so; the warp is then pinned at the
    markers found and their confidence follows what was found (`apply_refinement`).

    Returns:
        The warp pinned at the refined markers, the transferred markers, and the anchor pairs added.
    """
    anchors: list[AlignmentPair] = []
    refined = wants_full_rate_timing(markers, warp, reference=reference, new=new, config=config)
    if refined:
        refinement = refine_at_reference_times(
            reference, new, warp, [m.t_ref for m in markers], config, timer=timer
        )
        warp, anchors = pin_at_refinement(warp, refinement)
    with timer.stage("transfer", frames=len(markers)):
        transferred = transfer_markers(markers, warp, review_threshold=review_threshold)
    if refined:
        transferred = apply_refinement(transferred, refinement, warp, review_threshold)
    return warp, transferred, anchors


def refine_at_reference_times(
    reference: VideoSource,
    new: VideoSource,
    warp: Warp,
    ref_times: list[float],
    config: SyncConfig,
    *,
    timer: StageTimer,
) -> MarkerRefinement:
    """Time reference moments (markers) in the new run to about one frame (`refine_markers`).

    Only short windows around each moment are decoded, timed as the stage ``refine markers``; of
    more than `mtbsync.markers.refine.REFINE_MAX_MARKERS` moments, only that many are timed (a
    warning says so).
    Either video may be the chapter files of one recording: times are on its joined timeline.

    Args:
        reference: The reference run's video.
        new: The new run's video.
        warp: The alignment's warp.
        ref_times: Reference times (markers), seconds.
        config: Parameters.
        timer: Stage timer.

    Returns:
        Their new-run times (NaN where not found) and how each was timed.
    """
    plan = plan_refinement(reference, new, warp, ref_times, config)
    if plan.limit_note:
        log.warning("%s", plan.limit_note)
    if not plan.todo:
        return plan.unrefined()
    with timer.stage("refine markers", frames=len(plan.todo)) as rec:
        refinement, figures = refine_markers(reference, new, warp, plan, config)
        rec.extra.update(figures)
    return refinement

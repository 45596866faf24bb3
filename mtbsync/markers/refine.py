"""Full-frame-rate timing of markers: each reference moment located among the new run's frames.

The warp places a marker to within a fraction of a keyframe step. Here the reference frames just
before and after the marker and the new run's frames in a short window around the warp's estimate
are decoded at full rate; each reference frame is located among the new frames where the inliers
peak and the zoom between the views crosses the cameras' own level (`locate_in_window`), and the
results are combined at the exact reference time (`time_moment`). Only those short windows are
decoded.

`plan_refinement` decides the windows (cheap: a probe of each video); `refine_markers` decodes and
times them (`mtbsync.markers.full_rate` times that part as the stage ``refine markers``). A marker costs a few
hundred frame comparisons, so at most `REFINE_MAX_MARKERS` are timed: of a larger file (a generated
or exported list of thousands), those timed are spread over its reference times, the warp is pinned
at them, and the others are placed through that pinned warp (method ``warp``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtbsync.align.refine import locate_windows, time_moment
from mtbsync.align.warp import Warp
from mtbsync.config import SyncConfig
from mtbsync.features.extractors import Extractor, make_extractor
from mtbsync.features.keyframes import stack_features, window_features
from mtbsync.io.video import VideoSource, probe
from mtbsync.match.verify import verify_block_pairs

# Reference frames on each side of a marker that are located in the new run; their timings are
# combined by a line fit, which averages out the error of single frames.
REFINE_REF_FRAMES = 2
# More keypoints than keyframes get: frames compared at full rate are near-identical views, and the
# extra points sharpen the inlier peak and the zoom estimate.
REFINE_FEATURES = 1200
REFINE_MAX_WINDOW_S = 1.0
# Reference times this far past the covered part (s of reference time) are looked for at full rate.
BEYOND_REACH_S = 1.0
# The pace carried past an end is the warp's over this long (s of new-run time) before that end.
BEYOND_PACE_S = 2.0
# Fewest reference frames located on one line for a place past the covered part to be believed.
BEYOND_MIN_LOCATED = 3
# Fewest inliers at a window's peak for ORB's homography to say the reference frame is there.
REFINE_MIN_INLIERS = 20
# Most markers timed at full frame rate in one transfer (each decodes a window and verifies a few
# hundred frame pairs): a rider's file of a run's features stays well under it, and a file of
# 300,000 is placed in seconds, its markers past the limit through the warp pinned at those timed.
REFINE_MAX_MARKERS = 100
# `MarkerRefinement.method` of a marker left to the warp because of `REFINE_MAX_MARKERS`.
THROUGH_WARP = "warp"


@dataclass(frozen=True)
class MarkerRefinement:
    """Full-frame-rate timing of reference times (markers) in the new run.

    Attributes:
        t_ref: (k,) the reference times.
        t_new: (k,) their new-run times (NaN where not found).
        method: How each was located.
        timings: Each one's `MomentTiming` (how many frames agreed, how well), None where not tried.
            Where not tried because of `REFINE_MAX_MARKERS`, the method is `THROUGH_WARP`.
        learned: Whether learned features timed them.
        new_frame_s: One frame of the new run (s).
        ref_frame_s: One frame of the reference (s).
    """

    t_ref: np.ndarray
    t_new: np.ndarray
    method: list[str]
    timings: list[Any] = field(default_factory=list)
    learned: bool = False
    new_frame_s: float = 1 / 30
    ref_frame_s: float = 1 / 30

    @property
    def through_warp(self) -> int:
        """How many times were left to the warp because of `REFINE_MAX_MARKERS`."""
        return sum(method == THROUGH_WARP for method in self.method)


@dataclass(frozen=True)
class RefinementPlan:
    """Which reference times to time at full rate, and the windows to decode for them.

    Attributes:
        t_ref: (k,) the reference times.
        predicted: (k,) the warp's new-run time of each.
        todo: Indices of the times to refine (the warp places them); empty: nothing to decode.
        through_warp: Indices of the times the warp places but that are not refined (beyond
            `REFINE_MAX_MARKERS`).
        windows: (k,) half-width of each one's new-run window (s); empty when ``todo`` is.
        past_ends: (k,) the time lies past the warp's covered part (`_beyond_the_ends` gave its
            window); empty when ``todo`` is.
        ref_frame_s: One frame of the reference run (s).
        new_frame_s: One frame of the new run (s).
        long_side: Long side of the decoded images (px).
        kind: The features the runs were aligned with.
        extractor: Their extractor (more ORB keypoints than keyframes get).
        min_peak: Fewest inliers at a window's peak.
        reproj_px: Geometric threshold for the decoded images' size.
    """

    t_ref: np.ndarray
    predicted: np.ndarray
    todo: list[int]
    through_warp: list[int] = field(default_factory=list)
    windows: np.ndarray = field(default_factory=lambda: np.zeros(0))
    past_ends: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    ref_frame_s: float = 1 / 30
    new_frame_s: float = 1 / 30
    long_side: int = 0
    kind: str = "orb"
    extractor: Extractor | None = None
    min_peak: int = REFINE_MIN_INLIERS
    reproj_px: float = 0.0

    @property
    def limit_note(self) -> str | None:
        """The warning that markers past `REFINE_MAX_MARKERS` were left to the warp, else None."""
        if not self.through_warp:
            return None
        return (
            f"full-rate timing is limited to {len(self.todo)} markers: the other "
            f"{len(self.through_warp)} were placed through the warp pinned at those timed"
        )

    def unrefined(self) -> MarkerRefinement:
        """The result when nothing is refined: every time not found."""
        n = len(self.t_ref)
        return MarkerRefinement(self.t_ref, np.full(n, np.nan), self.methods(), [None] * n)

    def methods(self) -> list[str]:
        """Each time's method before timing: `THROUGH_WARP` for those past the limit, else ``none``."""
        methods = ["none"] * len(self.t_ref)
        for k in self.through_warp:
            methods[k] = THROUGH_WARP
        return methods


def plan_refinement(
    reference: VideoSource,
    new: VideoSource,
    warp: Warp,
    ref_times: list[float],
    config: SyncConfig,
    *,
    max_markers: int | None = REFINE_MAX_MARKERS,
) -> RefinementPlan:
    """Decide which reference times to time at full rate, and how far around the warp to search.

    The search reaches as far as the warp may be off: twice its worst residual, and at least most of
    a keyframe step (the keyframe a place was matched to can be the neighbour), which lasts longer
    in new-run time where the new rider is slow; within ``config.refine_window_s`` and
    `REFINE_MAX_WINDOW_S`.

    Args:
        reference: The reference run's video (one file or its chapter files).
        new: The new run's video, the same way.
        warp: The alignment's warp.
        ref_times: Reference times (markers), seconds.
        config: Parameters.
        max_markers: Most times to refine (None: all); the others are placed through the warp.

    Returns:
        The plan (``todo`` empty when the warp places none of the times: nothing is probed then).
    """
    ref_times_arr = np.asarray(ref_times, np.float64)
    predicted = warp.to_new(ref_times_arr) if len(ref_times_arr) else np.zeros(0)
    beyond = warp.ok and not warp.is_empty and bool(np.any(~np.isfinite(predicted)))
    if not beyond and not any(np.isfinite(predicted)):
        return RefinementPlan(ref_times_arr, predicted, [])
    ref_info, new_info = probe(reference), probe(new)
    spans = np.full((len(ref_times_arr), 2), np.nan)
    if beyond:
        spans = _beyond_the_ends(warp, ref_times_arr, predicted, config, new_info.duration)
    past_ends = np.isfinite(spans[:, 0])
    predicted = np.where(past_ends, spans.mean(axis=1), predicted)
    placeable = np.flatnonzero(np.isfinite(predicted)) if warp.ok else np.zeros(0, np.int64)
    todo, through_warp = _within_limit(placeable, ref_times_arr, max_markers)
    if not todo:
        return RefinementPlan(ref_times_arr, predicted, todo, through_warp)
    ref_frame_s, new_frame_s = ref_info.frame_duration, new_info.frame_duration
    long_side = min(config.features.feature_side, config.decode.max_side)
    # The features the runs were aligned with: where ORB could not align them, it cannot time them.
    kind = str(warp.meta.get("features") or "orb")
    extractor = make_extractor(kind, config.features, n_features=REFINE_FEATURES if kind == "orb" else None)
    min_peak = config.match.learned_min_inliers if kind != "orb" else REFINE_MIN_INLIERS
    worst = float((warp.metrics.get("residuals_s") or {}).get("max", config.refine_window_s) or 0.0)
    keyframe_step = 1.0 / float(warp.meta.get("keyframe_fps") or config.decode.sample_fps)
    speed = np.clip(np.nan_to_num(warp.speed_ratio(np.nan_to_num(predicted)), nan=1.0), 0.3, 3.0)
    windows = np.clip(
        np.maximum(2.0 * worst + 2 * new_frame_s, 0.75 * keyframe_step / speed), 0.25, REFINE_MAX_WINDOW_S
    )
    windows = np.maximum(windows, min(config.refine_window_s, REFINE_MAX_WINDOW_S))
    # Past the covered part the warp's pace is a guess: the whole span where the place can be is searched.
    windows = np.where(past_ends, 0.5 * (spans[:, 1] - spans[:, 0]), windows)
    return RefinementPlan(
        ref_times_arr,
        predicted,
        todo,
        through_warp=through_warp,
        windows=windows,
        past_ends=past_ends,
        ref_frame_s=ref_frame_s,
        new_frame_s=new_frame_s,
        long_side=long_side,
        kind=kind,
        extractor=extractor,
        min_peak=min_peak,
        reproj_px=config.match.ransac_reproj_px * long_side / 640.0,
    )


def _within_limit(
    placeable: np.ndarray, ref_times: np.ndarray, max_markers: int | None
) -> tuple[list[int], list[int]]:
    """The times to refine: at most ``max_markers``, spread evenly over their order in time.

    Spread by rank rather than by time: where markers crowd, so do the pins of the warp.

    Returns:
        The indices to refine and those left to the warp, each in input order.
    """
    if max_markers is None or len(placeable) <= max_markers:
        return placeable.tolist(), []
    by_time = placeable[np.argsort(ref_times[placeable], kind="stable")]
    picks = np.zeros(len(placeable), bool)
    picks[np.round(np.linspace(0, len(placeable) - 1, max(max_markers, 0))).astype(np.int64)] = True
    return np.sort(by_time[picks]).tolist(), np.sort(by_time[~picks]).tolist()


def _end_paces(warp: Warp) -> tuple[float, float]:
    """The warp's pace (reference s per new s) over its first and its last `BEYOND_PACE_S`.

    Over seconds, not the end knots alone: the last knots are the weakest evidence.
    """
    (new_lo, new_hi), (ref_lo, ref_hi) = warp.new_range, warp.ref_range
    span = max(min(new_hi - new_lo, BEYOND_PACE_S), 1e-9)
    head = (float(warp.to_ref(new_lo + span)[0]) - ref_lo) / span
    tail = (ref_hi - float(warp.to_ref(new_hi - span)[0])) / span
    return head, tail


def _believed_past_the_ends(located: list[tuple[float, float, int, str]], tau: float, warp: Warp) -> bool:
    """Whether reference frames located past the covered part place the moment there.

    Nothing else vouches for the place: at least `BEYOND_MIN_LOCATED` frames must lie on one line,
    and the pace along it must be within a third to three times the warp's at that end (whose last
    knots often lag). A rider standing at the start gate (or after the finish) matches a nearby
    place in every frame, at no pace.
    """
    if len(located) < BEYOND_MIN_LOCATED:
        return False
    ref_t = np.array([f[0] for f in located])
    new_t = np.array([f[1] for f in located])
    if np.ptp(ref_t) <= 0 or np.ptp(new_t) <= 0:
        return False
    slope = float(np.polyfit(ref_t, new_t, 1)[0])  # new s per reference s
    head, tail = _end_paces(warp)
    end_pace = tail if tau > warp.ref_range[1] else head
    if slope <= 0 or end_pace <= 0:
        return False
    return end_pace / 3.0 <= 1.0 / slope <= 3.0 * end_pace


def _beyond_the_ends(
    warp: Warp, ref_times: np.ndarray, predicted: np.ndarray, config: SyncConfig, new_duration: float
) -> np.ndarray:
    """Where to look, at full rate, for reference times just past the covered part.

    The covered part ends at the last keyframe the path kept, and the last keyframes are the
    weakest evidence (the runs part there): a marker the new run passes after them would be left
    unplaced. A reference time up to `BEYOND_REACH_S` past either end (and at least one keyframe
    step) is looked for between the covered end and where the end's pace, at half its speed, puts
    it (the pace of the last knots is noisy), inside the new video and at most
    ``2 * REFINE_MAX_WINDOW_S`` long; only a place actually found there, a peak with shoulders
    (`locate_in_window`), is placed. A new run that ends (or starts) before the place gives none.

    Returns:
        (k, 2) the span of new-run time to search for each reference time past the ends; NaN
        rows for the others.
    """
    spans = np.full((len(ref_times), 2), np.nan)
    step = 1.0 / float(warp.meta.get("keyframe_fps") or config.decode.sample_fps)
    reach = max(step, BEYOND_REACH_S)
    (new_lo, new_hi), (ref_lo, ref_hi) = warp.new_range, warp.ref_range
    head_slope, tail_slope = _end_paces(warp)
    max_span = 2 * REFINE_MAX_WINDOW_S
    margin = 0.25 * step
    missing = ~np.isfinite(predicted)
    for k in np.flatnonzero(missing):
        tau = float(ref_times[k])
        if ref_hi < tau <= ref_hi + reach and tail_slope > 0.2:
            lo = new_hi - margin
            hi = min(new_duration, new_hi + 2.0 * (tau - ref_hi) / tail_slope + margin, lo + max_span)
        elif ref_lo - reach <= tau < ref_lo and head_slope > 0.2:
            hi = new_lo + margin
            lo = max(0.0, new_lo - 2.0 * (ref_lo - tau) / head_slope - margin, hi - max_span)
        else:
            continue
        if hi - lo >= 2 * margin:
            spans[k] = (lo, hi)
    return spans


def refine_markers(
    reference: VideoSource, new: VideoSource, warp: Warp, plan: RefinementPlan, config: SyncConfig
) -> tuple[MarkerRefinement, dict[str, Any]]:
    """Time the planned reference moments (markers) in the new run to about one frame.

    For each reference time, the reference frames just before and after it and the new run's frames
    within the plan's window of the warp's estimate are decoded at full rate; each reference frame
    is located among the new frames (`locate_in_window`) and the results are combined at the exact
    reference time (`time_moment`). Either video may be the chapter files of one recording: times
    are on its joined timeline, and a window across a chapter boundary takes its frames from both.

    Args:
        reference: The reference run's video.
        new: The new run's video.
        warp: The alignment's warp (the plan's).
        plan: `plan_refinement`'s plan, with something to do.
        config: Parameters.

    Returns:
        The refinement, and the figures of the work: ``frames_decoded``, ``zoom_bias`` (the zoom
        between the cameras) and ``refined`` (how many times were found).
    """
    if not plan.todo or plan.extractor is None:
        return plan.unrefined(), {}
    ref_times_arr, predicted, todo, windows = plan.t_ref, plan.predicted, plan.todo, plan.windows
    new_frame_s, kind = plan.new_frame_s, plan.kind
    result_t = np.full(len(ref_times_arr), np.nan)
    methods = plan.methods()
    figures: dict[str, Any] = {}
    if plan.through_warp:
        figures["through_warp"] = len(plan.through_warp)
    reach = REFINE_REF_FRAMES * plan.ref_frame_s + 0.01 * plan.ref_frame_s
    ref_windows = [(ref_times_arr[k] - reach, ref_times_arr[k] + reach) for k in todo]
    new_windows = [(predicted[k] - windows[k], predicted[k] + windows[k]) for k in todo]
    ref_t, ref_feats = window_features(reference, ref_windows, plan.long_side, plan.extractor)
    new_t, new_feats = window_features(new, new_windows, plan.long_side, plan.extractor)
    figures["frames_decoded"] = len(ref_feats) + len(new_feats)
    plan_pairs: list[tuple[int, int, np.ndarray]] = []  # (marker, ref frame, new frames in window)
    for k in todo:
        bracket = np.nonzero(np.abs(ref_t - ref_times_arr[k]) <= reach)[0]
        in_window = np.nonzero(np.abs(new_t - predicted[k]) <= windows[k] + 0.5 * new_frame_s)[0]
        plan_pairs.extend((k, int(r), in_window) for r in bracket)
    pairs = np.array([(n, r) for _, r, window_frames in plan_pairs for n in window_frames], np.int64)
    stacked = (*stack_features(new_feats, kind), *stack_features(ref_feats, kind))
    geometry = verify_block_pairs(*stacked, pairs, config.match, reproj_px=plan.reproj_px)
    # The zoom between the cameras at the same place (another lens, another mount) is read at
    # each window's inlier peak, where the two views are closest; their median is the level the
    # zoom crosses when the new run passes a reference frame. The same camera gives about 0.
    found = locate_windows(
        [new_t[w] for _, _, w in plan_pairs],
        geometry,
        min_inliers=plan.min_peak,
        with_epipoles=lambda: verify_block_pairs(
            *stacked, pairs, config.match, reproj_px=plan.reproj_px, epipoles=True
        ),
    )
    figures["zoom_bias"] = found.cameras.lens
    figures["epipoles"] = found.cameras.differ
    located: dict[int, list[tuple[float, float, int, str]]] = {k: [] for k in todo}
    for (k, r, _), timing in zip(plan_pairs, found.timings, strict=True):
        guess = predicted[k]
        if np.isfinite(timing.t_new) and abs(timing.t_new - guess) <= windows[k] - new_frame_s:
            located[k].append((float(ref_t[r]), timing.t_new, timing.peak_inliers, timing.method))
    timings: list[Any] = [None] * len(ref_times_arr)
    for k in todo:
        timings[k] = time_moment(located[k], float(ref_times_arr[k]), warp, new_frame_s=new_frame_s)
        result_t[k] = timings[k].t_new
        methods[k] = timings[k].method
        if plan.past_ends[k] and not _believed_past_the_ends(located[k], float(ref_times_arr[k]), warp):
            result_t[k], methods[k] = np.nan, "none"
    figures["refined"] = int(np.isfinite(result_t).sum())
    refinement = MarkerRefinement(
        ref_times_arr,
        result_t,
        methods,
        timings,
        learned=kind != "orb",
        new_frame_s=new_frame_s,
        ref_frame_s=plan.ref_frame_s,
    )
    return refinement, figures

"""Sub-keyframe timing from the relative zoom between views.

A path point pairs new keyframe i with reference keyframe j, so its reference time is only known to
within half a keyframe interval. Riding forward enlarges everything ahead: the zoom z of reference
keyframe j relative to new keyframe i says how far ahead (z > 0) or behind (z < 0) reference j is,
and the zoom between consecutive reference keyframes says how much zoom one keyframe interval makes
there. Their ratio places the new keyframe between the reference keyframes:

    t_ref(i) = t_j - z(i, j) / z(j-1 -> j) * (t_j - t_{j-1})        (z > 0; mirror for z < 0)

The estimate is depth-independent to first order because both zooms are measured on the same scene.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mtbsync.align.warp import Warp

# Below this zoom per keyframe interval the reference is (nearly) standing still or the scene is
# far away: the ratio is then too noisy to use, and the keyframe time is kept.
_MIN_STEP_ZOOM = 0.01
# The cameras differ (zoom between them at the same place, log units) from this level on: the
# epipole locator replaces the inlier peak, which another lens shifts. One camera gives about 0.
EPIPOLE_MIN_ZOOM_BIAS = 0.03
# An epipole crossing further than this many frames from the inlier peak is not believed.
_EPIPOLE_MAX_FROM_PEAK = 8
# A located frame's neighbours keep at least this share of its inliers (else it sits at a cut).
_PEAK_SHOULDER = 0.2
# At the place itself the zoom between the views is the cameras' own (the bias); farther than this
# (log units, about 10 %) the best frame is not at the place.
_MAX_PEAK_ZOOM = 0.1


@dataclass(frozen=True)
class RefinedPoints:
    """Path points with refined reference times.

    Attributes:
        t_new: (n,) new keyframe times.
        t_ref: (n,) refined reference times.
        t_ref_keyframe: (n,) the reference keyframe times before refinement.
        refined: (n,) whether the zoom refinement applied.
        outside: (n,) the new keyframe shows a place before the reference's first keyframe or after
            its last one (e.g. waiting behind the start gate): not part of the covered trail.
        zoom_bias: The constant log-zoom removed (different cameras).
    """

    t_new: np.ndarray
    t_ref: np.ndarray
    t_ref_keyframe: np.ndarray
    refined: np.ndarray
    outside: np.ndarray
    zoom_bias: float


def refine_reference_times(
    t_new: np.ndarray,
    ref_times: np.ndarray,
    ref_idx: np.ndarray,
    pair_zoom: np.ndarray,
    step_zoom: np.ndarray,
    zoom_bias: float = 0.0,
) -> RefinedPoints:
    """Refine each path point's reference time between its neighbouring reference keyframes.

    Args:
        t_new: (n,) new keyframe times of the path points.
        ref_times: (m,) all reference keyframe times.
        ref_idx: (n,) reference keyframe of each path point.
        pair_zoom: (n,) log zoom of reference keyframe ``ref_idx`` relative to the new keyframe.
        step_zoom: (m,) log zoom from reference keyframe j-1 to j (``step_zoom[0]`` unused, NaN ok).
        zoom_bias: Constant log zoom between the two cameras at the same place. It cannot be told from
            keyframe pairs (which keyframe wins a place is itself biased), so it is measured where
            frames are compared at full rate (`zoom_at_peaks`) and is 0 for one camera model.

    Returns:
        The refined points.
    """
    t_new = np.asarray(t_new, np.float64)
    ref_idx = np.asarray(ref_idx, np.int64)
    base = ref_times[ref_idx].astype(np.float64) if len(ref_idx) else np.zeros(0)
    bias = zoom_bias
    refined_t = base.copy()
    refined = np.zeros(len(base), bool)
    outside = np.zeros(len(base), bool)
    m = len(ref_times)
    for k, (j, z) in enumerate(zip(ref_idx, pair_zoom, strict=True)):
        if not math.isfinite(z):
            continue
        z -= bias
        if z > 0 and j > 0:  # reference keyframe is ahead: the place lies between j-1 and j
            step, interval = step_zoom[j], ref_times[j] - ref_times[j - 1]
            sign = -1.0
        elif z <= 0 and j + 1 < m:  # behind: between j and j+1
            step, interval = step_zoom[j + 1], ref_times[j + 1] - ref_times[j]
            sign = 1.0
        else:
            # Ahead of the first reference keyframe or behind the last: outside the reference
            # when the zoom exceeds half of a neighbouring keyframe step.
            edge = step_zoom[1] if j == 0 and m > 1 else step_zoom[j] if j > 0 else math.nan
            if math.isfinite(edge) and edge >= _MIN_STEP_ZOOM and abs(z) > 0.5 * edge:
                outside[k] = True
            continue
        if not math.isfinite(step) or step < _MIN_STEP_ZOOM:
            continue
        fraction = abs(z) / step
        if fraction > 1.0:
            # More zoom than a whole keyframe step: the zoom is off (a head turn, a different pose),
            # not the keyframe, which won on inliers. Keep the keyframe time.
            continue
        refined_t[k] = ref_times[j] + sign * fraction * interval
        refined[k] = True
    return RefinedPoints(t_new, refined_t, base, refined, outside, float(bias))


@dataclass(frozen=True)
class FrameTiming:
    """Where, at full frame rate, a new run passes the place one reference frame shows.

    Attributes:
        t_new: Estimated new-run time (NaN when not found).
        peak_inliers: Most inliers of any new frame in the window.
        method: ``peak+zoom``, ``peak`` or ``none``.
    """

    t_new: float
    peak_inliers: int
    method: str


# The epipole's along-view ratio must fall or rise this consistently (rank correlation with time)
# over the strong frames of a window to be trusted, and be measured on at least this many frames.
_EPIPOLE_MIN_CORRELATION = 0.85
_EPIPOLE_MIN_FRAMES = 6
_EPIPOLE_MAX_RATIO = 25.0


def epipole_crossing(times: np.ndarray, inliers: np.ndarray, epipoles: np.ndarray, min_inliers: int) -> float:
    """When the other camera's centre crosses the view plane of this one: the cameras stand level.

    Each pair's epipole (`mtbsync.match.learned.epipole_vector`) gives the ratio of the other
    camera's offset along the view direction to its offset across it; along a pass it changes sign
    where the two cameras stand level, and near there it runs almost straight in time. The signs of
    the epipoles are arbitrary, so they are first oriented along the window's common direction.
    Returns NaN unless the ratio is measured on enough strong frames and runs consistently one way
    (a plane-dominated scene or cameras at the same height and line give no usable epipole).

    Args:
        times: (k,) frame times.
        inliers: (k,) inliers of each frame against the frame being located.
        epipoles: (k, 3) epipole vectors (NaN rows: none).
        min_inliers: Frames with fewer inliers are left out.
    """
    times = np.asarray(times, np.float64)
    inliers = np.asarray(inliers, np.float64)
    if epipoles is None or times.size < _EPIPOLE_MIN_FRAMES:
        return math.nan
    strong = np.isfinite(epipoles).all(axis=1) & (inliers >= max(min_inliers, 0.4 * inliers.max(initial=0)))
    if strong.sum() < _EPIPOLE_MIN_FRAMES:
        return math.nan
    across = epipoles[strong, :2]
    _, _, vt = np.linalg.svd(across, full_matrices=False)
    sign = np.sign(across @ vt[0])
    sign[sign == 0] = 1.0
    ratio = sign * epipoles[strong, 2] / np.maximum(np.linalg.norm(across, axis=1), 1e-9)
    t = times[strong]
    usable = np.abs(ratio) < _EPIPOLE_MAX_RATIO
    if usable.sum() < _EPIPOLE_MIN_FRAMES:
        return math.nan
    t, ratio = t[usable], ratio[usable]
    ranks_t = np.argsort(np.argsort(t))
    ranks_r = np.argsort(np.argsort(ratio))
    correlation = float(np.corrcoef(ranks_t, ranks_r)[0, 1]) if np.ptp(ranks_r) > 0 else 0.0
    if abs(correlation) < _EPIPOLE_MIN_CORRELATION or not (ratio.min() < 0 < ratio.max()):
        return math.nan
    # Theil-Sen line through the ratios: robust to a frame with a bad F.
    tn, rn = t, ratio
    slopes = [
        (rn[j] - rn[i]) / (tn[j] - tn[i])
        for i in range(len(tn))
        for j in range(i + 1, len(tn))
        if tn[j] != tn[i]
    ]
    if not slopes:
        return math.nan
    slope = float(np.median(slopes))
    if slope == 0 or np.sign(slope) != np.sign(correlation):
        return math.nan
    intercept = float(np.median(rn - slope * tn))
    crossing = -intercept / slope
    return crossing if t.min() <= crossing <= t.max() else math.nan


def _zoom_line(
    times: np.ndarray, inliers: np.ndarray, zooms: np.ndarray, min_inliers: int, *, level: float = 0.0
) -> tuple[float, float] | None:
    """(slope, intercept) of ``zooms - level`` against time over a window's strong frames.

    Strong: a zoom measured and at least 30 % of the window's best inliers; weighted by the square
    root of the inliers. None with fewer than four strong frames.
    """
    strong = np.isfinite(zooms) & (inliers >= max(min_inliers, 0.3 * inliers.max(initial=0)))
    if strong.sum() < 4:
        return None
    slope, intercept = np.polyfit(times[strong], zooms[strong] - level, 1, w=np.sqrt(inliers[strong]))
    return float(slope), float(intercept)


def locate_in_window(
    times: np.ndarray,
    inliers: np.ndarray,
    zooms: np.ndarray,
    *,
    zoom_bias: float = 0.0,
    min_inliers: int = 20,
    epipoles: np.ndarray | None = None,
    peak_zoom: float | None = None,
) -> FrameTiming:
    """Locate the moment a reference frame's place is passed, from the new frames of a window.

    Two estimates are combined: the peak of the inlier count (parabola through the best frame and
    its neighbours) and the zero crossing of the zoom (a weighted line fit of zoom against time,
    zoom falling as the new rider passes the place). They fail differently - the peak is flat on
    slow passages, the zoom is noisy on far scenes - so their mean is used when they agree.

    Args:
        times: (k,) new frame times, increasing, full frame rate.
        inliers: (k,) inliers of each new frame against the reference frame.
        zooms: (k,) log zoom of the reference frame relative to each new frame.
        zoom_bias: Constant log zoom between the two cameras (see `refine_reference_times`).
        min_inliers: Below this the reference frame is not found in the window.
        epipoles: (k, 3) epipoles of the pairs, when measured: where they cross the view plane
            (`epipole_crossing`) is used instead of the peak and zoom, whose levels another lens or
            mount moves.
        peak_zoom: The zoom the cameras' inlier peaks typically show (`zoom_at_peaks`: the lenses'
            and a blurrier camera's lean); None: ``zoom_bias``.
    """
    times = np.asarray(times, np.float64)
    inliers = np.asarray(inliers, np.float64)
    if times.size < 3 or inliers.max(initial=0) < min_inliers:
        return FrameTiming(math.nan, int(inliers.max(initial=0)), "none")
    best = int(np.argmax(inliers))
    # A true pass is a peak with shoulders. A best frame at the window's edge, or next to a frame that
    # barely matches (a cut: the new video starts or ends near this place), or whose zoom says the
    # views are far apart, only means "the closest this video gets", not "here".
    if best == 0 or best == times.size - 1:
        return FrameTiming(math.nan, int(inliers[best]), "edge")
    if min(inliers[best - 1], inliers[best + 1]) < _PEAK_SHOULDER * inliers[best]:
        return FrameTiming(math.nan, int(inliers[best]), "cut")
    at_peak = zoom_bias if peak_zoom is None else peak_zoom
    if math.isfinite(zooms[best]) and abs(zooms[best] - at_peak) > _MAX_PEAK_ZOOM:
        return FrameTiming(math.nan, int(inliers[best]), "zoom")
    peak = times[best]
    crossing = epipole_crossing(times, inliers, epipoles, min_inliers) if epipoles is not None else math.nan
    frame = float(np.median(np.diff(times)))
    if math.isfinite(crossing) and abs(crossing - peak) <= _EPIPOLE_MAX_FROM_PEAK * frame:
        return FrameTiming(float(crossing), int(inliers[best]), "epipole")
    y0, y1, y2 = inliers[best - 1 : best + 2]
    denom = y0 - 2 * y1 + y2
    if denom < 0:
        offset = 0.5 * (y0 - y2) / denom
        peak = times[best] + float(np.clip(offset, -1, 1)) * 0.5 * (times[best + 1] - times[best - 1])
    method = "peak"
    estimate = peak
    line = _zoom_line(times, inliers, zooms, min_inliers, level=zoom_bias)
    if line is not None:
        slope, intercept = line
        if slope < 0:
            crossing = -intercept / slope
            frame = float(np.median(np.diff(times)))
            if abs(crossing - peak) <= 3 * frame:
                estimate = 0.5 * (peak + crossing)
                method = "peak+zoom"
    return FrameTiming(float(estimate), int(inliers[best]), method)


def zoom_at_peaks(windows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], min_inliers: int = 20) -> float:
    """Median zoom at the inlier peak of each window: the zoom between the two cameras at one place.

    Args:
        windows: (times, inliers, zooms) of each located reference frame.
        min_inliers: Windows whose best frame has fewer inliers are ignored.
    """
    values = []
    for _, inliers, zooms in windows:
        inliers = np.asarray(inliers)
        if inliers.size == 0 or inliers.max() < min_inliers:
            continue
        best = int(np.argmax(inliers))
        if np.isfinite(zooms[best]):
            values.append(float(zooms[best]))
    return float(np.median(values)) if len(values) >= 3 else 0.0


def zoom_at_level(
    windows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], min_inliers: int = 20
) -> float:
    """Median zoom where the cameras stand level (`epipole_crossing`): the zoom between the lenses.

    The inlier peak is not a neutral place to read it: a blurrier or lower-resolution camera
    matches a sharper one best a little closer to the scene, where everything looks bigger, so
    the zoom at the peaks carries that lean as well as the lenses'. Where the two camera centres
    stand level (the epipole crosses the view plane) the scene is as far from both, and the zoom
    there is the lenses' own.

    Args:
        windows: (times, inliers, zooms, epipoles) of each window.
        min_inliers: Fewest inliers for a frame to count.

    Returns:
        The median over the windows whose epipole crossing and zoom line are measured, or NaN
        with fewer than three such windows.
    """
    values = []
    for times, inliers, zooms, epipoles in windows:
        times, inliers = np.asarray(times, np.float64), np.asarray(inliers, np.float64)
        if times.size < 3:
            continue
        crossing = epipole_crossing(times, inliers, epipoles, min_inliers)
        line = _zoom_line(times, inliers, zooms, min_inliers)
        if not math.isfinite(crossing) or line is None:
            continue
        slope, intercept = line
        values.append(float(slope * crossing + intercept))
    return float(np.median(values)) if len(values) >= 3 else math.nan


def interpolate_located(located: list[tuple[float, float]], tau: float, warp: Warp) -> float:
    """New-run time of reference time ``tau`` from reference frames located in the new run.

    A line through the located (t_ref, t_new) frames around ``tau`` averages out single-frame
    errors (the worst frame is dropped when it disagrees); with fewer frames, the nearest one is
    carried to ``tau`` at the warp's local pace. NaN when nothing was located.
    """
    if not located:
        return math.nan
    ref_t = np.array([r for r, _ in located])
    new_t = np.array([n for _, n in located])
    if len(located) >= 3 and np.ptp(ref_t) > 0:
        slope, intercept = np.polyfit(ref_t, new_t, 1)
        if slope > 0:
            # Drop the worst frame if it disagrees with the others by more than a frame's worth.
            residual = np.abs(new_t - (slope * ref_t + intercept))
            if len(located) >= 4 and residual.max() > 3 * np.median(residual) + 1e-3:
                keep = residual < residual.max()
                slope, intercept = np.polyfit(ref_t[keep], new_t[keep], 1)
            if slope > 0:
                return float(slope * tau + intercept)
    nearest = int(np.argmin(np.abs(ref_t - tau)))
    speed = float(warp.speed_ratio(new_t[nearest])[0])
    if np.isfinite(speed) and speed > 0.05:
        return float(new_t[nearest] + (tau - ref_t[nearest]) / speed)
    return float(new_t[nearest])


@dataclass(frozen=True)
class MomentTiming:
    """Where the new run reaches one reference moment (a marker), timed at full frame rate.

    Attributes:
        t_new: The first new-run time at the moment's place (NaN when not found).
        located: Reference frames around the moment that were found in the new run.
        spread_s: Scatter (s of new-run time) of the located frames about their common line: how
            much the frames disagree (NaN with fewer than three).
        peak_inliers: Median inliers at the located frames' peaks.
        shift_s: How far the full-rate time lies from the keyframe warp's (s of new-run time).
        stop: The located frames jump forward: the new rider stood still at the place, and the
            first arrival was taken.
        method: How the frames were located (``peak+zoom``, ``peak``, ``none``).
    """

    t_new: float
    located: int
    spread_s: float
    peak_inliers: int
    shift_s: float
    stop: bool
    method: str


def time_moment(
    located: list[tuple[float, float, int, str]],
    tau: float,
    warp: Warp,
    *,
    new_frame_s: float,
) -> MomentTiming:
    """Combine the located reference frames around reference time ``tau`` into one new-run time.

    Each located frame is (its reference time, its new-run time, peak inliers, method). A line
    through them averages out single-frame errors (`interpolate_located`). Where the new rider
    stood still at the place, the frames after it are found a stop later than those before: the
    line would put the moment in the middle of the stop, while a marker belongs where the rider
    arrives, so only the frames up to ``tau`` are used then (``stop``).

    Args:
        located: The located frames.
        tau: The moment's reference time.
        warp: The keyframe warp (its pace carries a single frame to ``tau``).
        new_frame_s: One frame of the new run (s).
    """
    if not located:
        return MomentTiming(math.nan, 0, math.nan, 0, math.nan, False, "none")
    frames = sorted(located)
    ref_t = np.array([f[0] for f in frames])
    new_t = np.array([f[1] for f in frames])
    stop = False
    if len(frames) >= 2:
        speed = float(np.nan_to_num(warp.speed_ratio(float(np.median(new_t)))[0], nan=1.0))
        expected = np.diff(ref_t) / max(speed, 0.05)
        jumps = np.diff(new_t) - expected > max(4 * new_frame_s, 0.15)
        if jumps.any():
            # The stop splits the frames into stretches; the moment belongs to the stretch that
            # reaches it (the earlier one when it lies between them: the first arrival).
            stop = True
            segment = np.concatenate([[0], np.cumsum(jumps)])
            distance = [
                max(ref_t[segment == g].min() - tau, tau - ref_t[segment == g].max(), 0.0)
                for g in range(int(segment.max()) + 1)
            ]
            keep = segment == int(np.argmin(distance))
            frames = [f for f, k in zip(frames, keep, strict=True) if k]
            ref_t, new_t = ref_t[keep], new_t[keep]
    pairs = [(float(a), float(b)) for a, b in zip(ref_t, new_t, strict=True)]
    t_new = interpolate_located(pairs, tau, warp)
    spread = math.nan
    if len(pairs) >= 3 and np.ptp(ref_t) > 0:
        slope, intercept = np.polyfit(ref_t, new_t, 1)
        spread = float(np.sqrt(np.mean((new_t - (slope * ref_t + intercept)) ** 2)))
    predicted = float(warp.to_new(tau)[0])
    methods = [f[3] for f in frames]
    return MomentTiming(
        t_new=float(t_new),
        located=len(located),
        spread_s=spread,
        peak_inliers=int(np.median([f[2] for f in frames])),
        shift_s=abs(t_new - predicted) if math.isfinite(predicted) and math.isfinite(t_new) else math.nan,
        stop=stop,
        method=max(set(methods), key=methods.count),
    )


@dataclass(frozen=True)
class CameraZoom:
    """How the two cameras' views compare in scale, as the full-rate windows measured it.

    Attributes:
        lens: The zoom between the lenses (log units): read where the cameras stand level
            (`zoom_at_level`), or at the inlier peaks where that could not be measured; 0 for one
            camera model.
        at_peaks: The zoom at the windows' inlier peaks (`zoom_at_peaks`): the lenses' and a
            blurrier camera's lean together.
        differ: Whether the cameras differ (the epipole locator is used).
    """

    lens: float
    at_peaks: float
    differ: bool


@dataclass(frozen=True)
class WindowTimings:
    """Every window's `FrameTiming`, and how they were found.

    Attributes:
        timings: One per window, in order.
        cameras: The zoom between the cameras used.
    """

    timings: list[FrameTiming]
    cameras: CameraZoom


def locate_windows(
    window_times: list[np.ndarray],
    geometry: Any,
    *,
    min_inliers: int,
    with_epipoles: Callable[[], Any],
    zoom_sign: float = 1.0,
    cameras: CameraZoom | None = None,
) -> WindowTimings:
    """Locate one frame in each window of frames: the one loop of marker timing and the dense pass.

    The zoom at the windows' inlier peaks (`zoom_at_peaks`) says whether the cameras differ. Where
    they do, the pairs are verified again with their epipoles (``with_epipoles``, unless
    ``geometry`` has them), `locate_in_window` uses the epipole crossing, and the zoom between the
    lenses is read where the cameras stand level (`zoom_at_level`); one camera model has none.

    Args:
        window_times: Each window's frame times, in the order of ``geometry``'s pairs.
        geometry: `mtbsync.match.verify.PairGeometry` of all windows' pairs, concatenated.
        min_inliers: Fewest inliers at a peak.
        with_epipoles: Verifies the same pairs again, measuring epipoles.
        zoom_sign: -1 when the searched frames are the reference's (their zoom grows as they pass
            the place, where `locate_in_window` expects it falling).
        cameras: The cameras' zoom when already measured (a second search of a few windows reads
            it less surely than the first of many); None: measured here.
    """
    spans = np.cumsum([0] + [len(t) for t in window_times])
    bounds = list(zip(window_times, spans[:-1], spans[1:], strict=True))
    zooms = zoom_sign * geometry.log_zoom
    if cameras is None:
        at_peaks = zoom_at_peaks(
            [(t, geometry.inliers[a:b], zooms[a:b]) for t, a, b in bounds], min_inliers=min_inliers
        )
        # One camera model: what the peaks read is their own lean (see `zoom_at_level`), and the
        # zoom crosses 0 where the rider passes the place.
        cameras = CameraZoom(0.0, at_peaks, abs(at_peaks) >= EPIPOLE_MIN_ZOOM_BIAS)
        measure_lens = cameras.differ
    else:
        measure_lens = False
    epipoles = None
    if cameras.differ:
        # Another lens or mount: inlier peaks and zoom levels move, so places are located by where
        # the epipole crosses the view plane (learned features measured it already), and the
        # lenses' zoom is read where the cameras stand level.
        if geometry.epipole is None:
            geometry = with_epipoles()
            zooms = zoom_sign * geometry.log_zoom
        epipoles = geometry.epipole
    if measure_lens:
        level = zoom_at_level(
            [(t, geometry.inliers[a:b], zooms[a:b], epipoles[a:b]) for t, a, b in bounds],
            min_inliers=min_inliers,
        )
        cameras = replace(cameras, lens=level if math.isfinite(level) else cameras.at_peaks)
    timings = [
        locate_in_window(
            t,
            geometry.inliers[a:b],
            zooms[a:b],
            zoom_bias=cameras.lens,
            min_inliers=min_inliers,
            epipoles=None if epipoles is None else epipoles[a:b],
            peak_zoom=cameras.at_peaks,
        )
        for t, a, b in bounds
    ]
    return WindowTimings(timings, cameras)

"""Aligning two keyframe indexes by what they show, one function per stage of the alignment.

Guided by GPS where both runs have it (`gps_guide`); then the candidate pairs and their match
counts (`match_candidates`), the monotone path through the geometrically verified band around the
counts' path (`verified_path`), sub-keyframe reference times from the zoom between the views
(`refine_path`), and the warp fitted to them (`path_warp`, `path_pairs`), with what it rests on
(`gps_summary`, `described_warp`); and whether to align again by vision alone when nothing
consistent lay inside the GPS band (`band_retry_reason`, `mark_vision_retry`). The pipeline
composes and times them (`mtbsync.pipeline.align_indexes`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtbsync import __version__
from mtbsync.align.candidates import band_pairs, candidate_pairs, count_score, verification_score
from mtbsync.align.fit import fit_warp
from mtbsync.align.gps import (
    GpsMapping,
    band_mask,
    calibrate_mapping,
    fill_gaps,
    flatten_stops,
    gps_mapping,
    stop_intervals,
)
from mtbsync.align.pairs import AlignmentPair
from mtbsync.align.path import KeyframePath, monotone_path
from mtbsync.align.refine import RefinedPoints, refine_reference_times
from mtbsync.align.warp import Warp
from mtbsync.config import SyncConfig
from mtbsync.errors import IN_RESULT
from mtbsync.features.extractors import is_learned
from mtbsync.features.index import FeatureIndex
from mtbsync.features.keyframes import index_feature_kind
from mtbsync.ingest.track import GpsTrack
from mtbsync.match.verify import match_counts, verify_pairs

log = logging.getLogger("mtbsync")


@dataclass(frozen=True)
class PathSteps:
    """How far the path may move per keyframe, and what verifies a pair.

    Attributes:
        new_step: Median new keyframe step (s).
        max_step: Most reference keyframes the path may advance per new keyframe.
        min_inliers: Fewest inliers that verify a pair (learned features need more).
    """

    new_step: float
    max_step: int
    min_inliers: int


def path_steps(new: FeatureIndex, ref: FeatureIndex, config: SyncConfig) -> PathSteps:
    """The path's step limit and verification threshold for two indexes.

    Args:
        new: The new run's keyframe index.
        ref: The reference run's keyframe index.
        config: Parameters.

    Returns:
        The steps.
    """
    learned = is_learned(ref.descriptors)
    min_inliers = config.match.learned_min_inliers if learned else config.match.min_inliers
    ref_step = float(np.median(np.diff(ref.times))) if len(ref) > 1 else 1.0
    new_step = float(np.median(np.diff(new.times))) if len(new) > 1 else 1.0
    max_step = max(2, math.ceil(config.path.max_speed_ratio * new_step / ref_step))
    return PathSteps(new_step, max_step, min_inliers)


@dataclass(frozen=True)
class GpsGuide:
    """What GPS contributes before vision runs.

    Attributes:
        facts: Figures for the alignment's ``gps`` summary (map, band, stops), in their order.
        notes: Notes for the summary.
        mapping: The GPS map of the two runs when both have a fix, else None.
        allowed: (n_new, n_ref) the pairs the GPS band allows, or None (no band).
        new_stops: The new run's stops (s) when only it has GPS.
    """

    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    mapping: GpsMapping | None = None
    allowed: np.ndarray | None = None
    new_stops: list[tuple[float, float]] = field(default_factory=list)


def gps_guide(
    reference_gps: GpsTrack | None, new_gps: GpsTrack | None, new_times: np.ndarray, ref_times: np.ndarray
) -> GpsGuide:
    """Map the runs by position along the trail (both with GPS), or find the stops (one with GPS).

    Args:
        reference_gps: The reference run's GPS on its video's timeline, or None.
        new_gps: The new run's GPS on its video's timeline, or None.
        new_times: (n_new,) new keyframe times.
        ref_times: (n_ref,) reference keyframe times.

    Returns:
        The guide: with a band of allowed pairs when both tracks share enough trail.
    """
    ref_fix = reference_gps is not None and reference_gps.has_fix
    new_fix = new_gps is not None and new_gps.has_fix
    facts: dict[str, Any] = {}
    notes: list[str] = []
    mapping, allowed, new_stops = None, None, []
    if ref_fix and new_fix:
        mapping = gps_mapping(reference_gps, new_gps)
        facts["map"] = mapping.summary()
        if mapping.same_trail and mapping.valid.any():
            allowed, has_gps = band_mask(mapping, new_times, ref_times)
            facts["band_rows"] = int(has_gps.sum())
            facts["band_fraction"] = round(float(allowed[has_gps].mean()), 3) if has_gps.any() else 1.0
        elif mapping.same_trail:
            notes.append("the GPS tracks share too little trail to guide the alignment")
    elif new_fix:
        new_stops = stop_intervals(new_gps)
        facts["new_stops_s"] = [[round(a, 2), round(b, 2)] for a, b in new_stops]
    elif ref_fix:
        facts["reference_stops_s"] = [[round(a, 2), round(b, 2)] for a, b in stop_intervals(reference_gps)]
        notes.append("reference-only GPS: its stops are reported, the path is found by vision")
    return GpsGuide(facts, notes, mapping, allowed, new_stops)


@dataclass(frozen=True)
class Candidates:
    """The keyframe pairs examined and their match counts.

    Attributes:
        pairs: (k, 2) (new keyframe, reference keyframe) candidates.
        counts: (n_new, n_ref) ratio-test match counts (NaN where not computed).
        mapping: The GPS map, moved onto the keyframes' appearance where that helped.
        allowed: The GPS band after that move, or None.
        notes: Notes for the GPS summary.
        map_shift_s: How far the map was moved (s), None without a band.
    """

    pairs: np.ndarray
    counts: np.ndarray
    mapping: GpsMapping | None
    allowed: np.ndarray | None
    notes: list[str]
    map_shift_s: float | None


def match_candidates(
    new: FeatureIndex,
    ref: FeatureIndex,
    similarity: np.ndarray,
    config: SyncConfig,
    *,
    max_step: int,
    mapping: GpsMapping | None,
    allowed: np.ndarray | None,
) -> Candidates:
    """The candidate pairs around a coarse path through appearance, and their match counts.

    Within a GPS band, the map is first moved onto the keyframes that look alike (a track's time
    offset may be off); vision decides within the band, and what lies outside is not examined.

    Args:
        new: The new run's keyframe index.
        ref: The reference run's keyframe index.
        similarity: (n_new, n_ref) `appearance_similarity` of ``new`` to ``ref``.
        config: Parameters.
        max_step: `PathSteps.max_step`.
        mapping: The GPS map, or None.
        allowed: The GPS band, or None.

    Returns:
        The candidates and their counts.
    """
    notes: list[str] = []
    map_shift_s = None
    coarse_score = np.clip(similarity - 2.0, -1.0, 4.0)
    looks = similarity
    if allowed is not None:
        mapping, calibration = calibrate_mapping(mapping, new.times, ref.times, similarity)
        if calibration.applied:
            allowed, _ = band_mask(mapping, new.times, ref.times)
            notes.append(
                f"GPS map moved by {-calibration.shift_s:+.2f} s to agree with the keyframes' "
                "appearance (a track's time offset was off)"
            )
        map_shift_s = round(-calibration.shift_s, 3)
        # Vision decides within the GPS band; what lies outside it is not examined at all.
        coarse_score = np.where(allowed, coarse_score, -1.0)
        looks = np.where(allowed, similarity, float(np.nanmin(similarity)) - 1.0)
    coarse = monotone_path(coarse_score, max_step=max_step, stop_penalty=0.1)
    candidates = candidate_pairs(looks, coarse, k=4, around=max_step)
    if allowed is not None:
        candidates = candidates[allowed[candidates[:, 0], candidates[:, 1]]]
    counts = np.full((len(new), len(ref)), np.nan)
    counts[candidates[:, 0], candidates[:, 1]] = match_counts(new, ref, candidates, config.match)
    return Candidates(candidates, counts, mapping, allowed, notes, map_shift_s)


@dataclass(frozen=True)
class VerifiedPath:
    """The monotone path through geometrically verified pairs.

    Attributes:
        path: The path (new keyframe, reference keyframe) pairs.
        inliers: (n_new, n_ref) RANSAC inliers of the verified band (-1 elsewhere).
        zoom: (n_new, n_ref) log zoom between the views of the band (NaN elsewhere).
        verified_pairs: Pairs verified.
    """

    path: KeyframePath
    inliers: np.ndarray
    zoom: np.ndarray
    verified_pairs: int


def verified_path(
    new: FeatureIndex,
    ref: FeatureIndex,
    counts: np.ndarray,
    config: SyncConfig,
    *,
    steps: PathSteps,
    allowed: np.ndarray | None,
) -> VerifiedPath:
    """Path through the match counts, geometric verification of a band around it, then the final
    path through the verified scores.

    Args:
        new: The new run's keyframe index.
        ref: The reference run's keyframe index.
        counts: `Candidates.counts`.
        config: Parameters.
        steps: `path_steps`.
        allowed: The GPS band, or None.

    Returns:
        The path with the band's inliers and zooms.
    """
    n_new, n_ref = len(new), len(ref)
    penalty = config.path.stop_penalty
    first = monotone_path(count_score(counts), max_step=steps.max_step, stop_penalty=penalty)
    band = band_pairs(first, n_ref, width=1)
    geometry = verify_pairs(new, ref, band, config.match)
    inliers = np.full((n_new, n_ref), -1.0)
    zoom = np.full((n_new, n_ref), np.nan)
    inliers[band[:, 0], band[:, 1]] = geometry.inliers
    zoom[band[:, 0], band[:, 1]] = geometry.log_zoom
    score = np.where(inliers >= 0, verification_score(inliers, steps.min_inliers), -1.0)
    if allowed is not None:
        score = np.where(allowed, score, -1.0)
    path = monotone_path(score, max_step=steps.max_step, stop_penalty=penalty)
    return VerifiedPath(path, inliers, zoom, len(band))


def refine_path(
    new: FeatureIndex, ref: FeatureIndex, verified: VerifiedPath, config: SyncConfig
) -> tuple[RefinedPoints, np.ndarray]:
    """Sub-keyframe reference times of the path's points from the zoom between the views.

    Args:
        new: The new run's keyframe index.
        ref: The reference run's keyframe index.
        verified: `verified_path`'s path.
        config: Parameters.

    Returns:
        The refined points and the path's inliers.
    """
    path, n_ref = verified.path, len(ref)
    path_inliers = verified.inliers[path.new_idx, path.ref_idx] if len(path) else np.zeros(0)
    path_zoom = verified.zoom[path.new_idx, path.ref_idx] if len(path) else np.zeros(0)
    steps = np.full(n_ref, np.nan)
    if len(path):
        lo, hi = max(1, int(path.ref_idx.min()) - 1), min(n_ref - 1, int(path.ref_idx.max()) + 1)
        ref_pairs = np.stack([np.arange(lo - 1, hi), np.arange(lo, hi + 1)], axis=1)
        step_geometry = verify_pairs(ref, ref, ref_pairs, config.match)
        steps[ref_pairs[:, 1]] = step_geometry.log_zoom
    refined = refine_reference_times(new.times[path.new_idx], ref.times, path.ref_idx, path_zoom, steps)
    return refined, path_inliers


@dataclass(frozen=True)
class PathWarp:
    """The warp fitted to the path.

    Attributes:
        warp: The warp (not aligned when the GPS tracks lie far apart).
        verified: (n,) which path points were verified.
        stop_pairs_held: Pairs held still in the new run's stops, None without stops.
        filled_knots: Knots GPS filled in, None when it filled nothing.
    """

    warp: Warp
    verified: np.ndarray
    stop_pairs_held: int | None = None
    filled_knots: int | None = None


def path_warp(
    new: FeatureIndex,
    ref: FeatureIndex,
    refined: RefinedPoints,
    path_inliers: np.ndarray,
    config: SyncConfig,
    *,
    steps: PathSteps,
    new_stops: list[tuple[float, float]],
    mapping: GpsMapping | None,
) -> PathWarp:
    """Fit the warp to the refined path; GPS holds stops still, vetoes other trails, fills gaps.

    Args:
        new: The new run's keyframe index.
        ref: The reference run's keyframe index.
        refined: `refine_path`'s points.
        path_inliers: Their inliers.
        config: Parameters.
        steps: `path_steps`.
        new_stops: The new run's stops (GPS on the new run only).
        mapping: The GPS map of the two runs, or None.

    Returns:
        The warp and which points were verified.
    """
    n_new, n_ref = len(new), len(ref)
    verified = (path_inliers >= steps.min_inliers) & ~refined.outside
    new_duration = float(new.video.get("duration") or (new.times[-1] if n_new else 0.0))
    ref_duration = float(ref.video.get("duration") or (ref.times[-1] if n_ref else 0.0))
    t_ref_fit = refined.t_ref
    held = filled = None
    if new_stops:
        # While the new rider stands, the place cannot move: one reference time for the stop.
        t_ref_fit, held = flatten_stops(refined.t_new, refined.t_ref, new_stops)
    warp = fit_warp(
        refined.t_new,
        t_ref_fit,
        path_inliers,
        verified,
        gates=config.gates,
        new_duration=new_duration,
        ref_duration=ref_duration,
        path_points=len(refined.t_new),
        extend_s=0.5 * steps.new_step,
    )
    if mapping is not None and not mapping.same_trail:
        # GPS is evidence against too: tracks far apart are different trails, whatever looks alike.
        why = (
            f"the GPS tracks lie far apart (median {mapping.median_distance_m:.0f} m, "
            f"{mapping.near_fraction:.0%} of the new run near the reference's path): different trails"
        )
        warp.ok = False
        warp.reason = f"{warp.reason}; {why}" if warp.reason else why
    elif mapping is not None and warp.ok:
        warp, filled = fill_gaps(warp, mapping)
    return PathWarp(warp, verified, held, filled)


def path_pairs(refined: RefinedPoints, path_inliers: np.ndarray, fitted: PathWarp) -> list[AlignmentPair]:
    """The path's points as pairs (pairs.csv), with the warp's confidence at each.

    Args:
        refined: `refine_path`'s points.
        path_inliers: Their inliers.
        fitted: `path_warp`'s warp.

    Returns:
        One pair per path point.
    """
    warp, verified = fitted.warp, fitted.verified
    return [
        AlignmentPair(
            t_new=float(refined.t_new[k]),
            t_ref=float(refined.t_ref[k]),
            inliers=int(max(path_inliers[k], 0)),
            confidence=float(warp.confidence_at(refined.t_new[k])[0]) if warp.ok else 0.0,
            verified=bool(verified[k]),
            source="refined" if refined.refined[k] else "path",
        )
        for k in range(len(refined.t_new))
    ]


def gps_summary(
    mode: str, notes: tuple[str, ...], guide: GpsGuide, candidates: Candidates, fitted: PathWarp
) -> dict[str, Any]:
    """What GPS did in the alignment: the alignment's ``gps`` summary (``warp.metrics["gps"]``).

    Args:
        mode: How GPS was used (`mtbsync.align.gps_tracks.gps_mode`).
        notes: Why GPS is missing or how it was timed.
        guide: `gps_guide`'s guide.
        candidates: `match_candidates`' candidates.
        fitted: `path_warp`'s warp.

    Returns:
        The mode, the notes of every stage, the guide's figures, then how far the map moved, the
        pairs held in stops, the knots GPS filled (where they apply) and the candidates examined.
    """
    gps: dict[str, Any] = {"mode": mode, "notes": [*notes, *guide.notes, *candidates.notes], **guide.facts}
    if candidates.map_shift_s is not None:
        gps["map_shift_s"] = candidates.map_shift_s
    if fitted.stop_pairs_held is not None:
        gps["stop_pairs_held"] = fitted.stop_pairs_held
    if fitted.filled_knots is not None:
        gps["filled_knots"] = fitted.filled_knots
    gps["candidates"] = len(candidates.pairs)
    return gps


def band_retry_reason(allowed: np.ndarray | None, warp: Warp) -> str | None:
    """Why to align again by vision alone: no consistent visual path inside the GPS band.

    The band rests on the tracks' timing (a wrong track offset shifts it): when vision finds no
    consistent path inside it, GPS must not be what makes the runs "not aligned".

    Args:
        allowed: The GPS band the warp was aligned in (`match_candidates`), or None: no band.
        warp: The warp aligned inside it (`described_warp`).

    Returns:
        The reason, a note for the retry's GPS summary (the failure is logged as a warning that
        goes into the result), or None: the warp stands.
    """
    if allowed is None or warp.ok:
        return None
    log.warning(
        "no consistent visual path inside the GPS band (%s); retrying by vision alone",
        warp.reason,
        extra=IN_RESULT,
    )
    return "the GPS map disagreed with vision (check the track offset)"


def mark_vision_retry(retry_gps: dict[str, Any], banded_gps: dict[str, Any], why: str) -> None:
    """Say in the retry's GPS summary that it was aligned by vision alone, and keep the GPS map.

    Args:
        retry_gps: The retry's `gps_summary`, updated in place (it is its ``warp.metrics["gps"]``).
        banded_gps: The summary of the alignment inside the GPS band (its ``map``).
        why: `band_retry_reason`'s reason.
    """
    retry_gps["mode"] = f"none: {why}; aligned by vision alone"
    retry_gps["map"] = banded_gps.get("map")


def described_warp(
    fitted: PathWarp,
    refined: RefinedPoints,
    new: FeatureIndex,
    ref: FeatureIndex,
    *,
    gps: dict[str, Any],
    device: str,
) -> Warp:
    """The fitted warp with what it rests on: its GPS summary and the alignment's facts.

    Args:
        fitted: `path_warp`'s warp (updated in place).
        refined: `refine_path`'s points (their zoom bias).
        new: The new run's keyframe index.
        ref: The reference run's keyframe index.
        gps: `gps_summary` (kept as ``metrics["gps"]`` itself, not a copy).
        device: The backend the alignment ran on.

    Returns:
        The warp, with ``metrics["gps"]`` and ``meta`` (the videos, keyframe rate, device, version,
        zoom bias and features).
    """
    warp = fitted.warp
    warp.metrics["gps"] = gps
    warp.meta.update(
        reference=ref.video,
        new=new.video,
        keyframe_fps=ref.params.get("sample_fps"),
        device=device,
        mtbsync_version=__version__,
        zoom_bias=refined.zoom_bias,
        features=index_feature_kind(ref),
    )
    return warp

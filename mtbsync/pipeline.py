"""The pipeline: composes the stages, times each one, and writes the hand-off files.

The CLI (and later the API and the service) call these functions; they hold no logic of their own.
Every stage runs inside ``timer.stage(...)`` (or publishes its busy time when it overlaps another
stage), so one `StageTimer` sees everything.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mtbsync import __version__
from mtbsync.align.candidates import band_pairs, candidate_pairs, count_score, verification_score
from mtbsync.align.fit import fit_warp
from mtbsync.align.pairs import AlignmentPair, write_pairs_csv
from mtbsync.align.path import KeyframePath, monotone_path
from mtbsync.align.refine import interpolate_located, refine_reference_times
from mtbsync.align.warp import Warp, save_warp, write_dense_warp_csv, write_timewarp_json
from mtbsync.config import SyncConfig
from mtbsync.errors import IN_RESULT, IndexFileError
from mtbsync.features.extractors import FEATURE_KINDS, Extractor, empty_features, is_learned, make_extractor
from mtbsync.features.index import THUMB_SIZE, FeatureIndex, load_index, save_index
from mtbsync.gpu import backend_name
from mtbsync.ingest.track import GpsTrack
from mtbsync.io.video import (
    DecodeReport,
    VideoInfo,
    VideoSource,
    chapter_paths,
    find_proxy,
    iter_sampled_frames,
    prefetch,
    probe,
    video_label,
)
from mtbsync.markers import Marker, TransferredMarker, transfer_markers
from mtbsync.match.retrieval import appearance_similarity
from mtbsync.match.verify import match_counts, verify_pairs
from mtbsync.telemetry import stage_sample  # noqa: F401  (importing it makes every stage sample the GPU)
from mtbsync.timing import BusyClock, StageTimer

log = logging.getLogger("mtbsync")

Progress = Callable[[str, int, int | None], None]


def _no_progress(stage: str, done: int, total: int | None) -> None:
    return None


@dataclass
class KeyframeResult:
    """Keyframe features of one video and how they were decoded."""

    index: FeatureIndex
    info: VideoInfo
    report: DecodeReport


def extract_keyframes(
    video: VideoSource,
    config: SyncConfig,
    *,
    timer: StageTimer,
    progress: Progress = _no_progress,
    label: str = "",
    kind: str | None = None,
) -> KeyframeResult:
    """Decode ``video`` once, sampling keyframes by time, and compute their local features.

    Decoding runs in a background thread, overlapped with feature extraction; memory stays bounded.
    The decode and feature busy times are published as the stages ``decode`` and ``features``.

    Args:
        video: The run's video: one file, or the chapter files of one recording in order (then
            keyframe times are on the joined timeline, as the recording's GPS is).
        config: Parameters.
        timer: Stage timer.
        progress: Progress callback.
        label: Prefix of the progress stage and of the timing records (``"reference "``).
        kind: ``orb`` or ``xfeat``; None: the configured kind (``auto`` starts with ORB).

    Raises:
        MediaError: The video cannot be read.
    """
    kind = kind or first_feature_kind(config)
    info = probe(video)
    name = video_label(video) if info.is_chaptered else str(info.path)
    # A recording of chapters is decoded on the timeline its probe measured (no second probe).
    source: VideoSource = info.timeline if info.is_chaptered else info.path
    report = DecodeReport()
    if config.decode.prefer_proxy:
        proxies = [find_proxy(p) for p in info.chapters]
        if all(proxy is not None for proxy in proxies):
            # Proxies of chapters play on the main files' timeline (their own lengths may differ).
            source = info.timeline.with_paths(proxies) if info.is_chaptered else proxies[0]
            report.mode = "proxy"
            log.info("%s: using the GoPro proxy %s", video_label(video), video_label(proxies))
    keyframes_only = choose_keyframes_only(source, config)
    report.mode = "keyframes" if keyframes_only else report.mode
    long_side = min(config.features.feature_side, config.decode.max_side)
    decode_clock, feature_clock = BusyClock(), BusyClock()
    expected = max(1, int(info.duration * config.decode.sample_fps) + 1) if info.duration else None

    def decoded():
        frames = iter_sampled_frames(
            source,
            sample_fps=config.decode.sample_fps,
            long_side=long_side,
            keyframes_only=keyframes_only,
            threads=config.decode.threads,
            report=report,
        )
        while True:
            with decode_clock:
                frame = next(frames, None)
            if frame is None:
                return
            yield frame

    extractor = make_extractor(kind, config.features)
    times, features, thumbs = [], [], []
    image_size = (0, 0)
    for frame in prefetch(decoded(), depth=6):
        with feature_clock:
            image_size = (frame.image.shape[1], frame.image.shape[0])
            features.append(extractor(frame.image))
            thumbs.append(cv2.resize(frame.image, THUMB_SIZE, interpolation=cv2.INTER_AREA))
            times.append(frame.t)
        progress(f"{label}features", len(times), expected)
    timer.add_busy(
        "decode",
        decode_clock,
        frames=report.decoded_frames,
        device="gpu" if report.decoder == "nvdec" else "cpu",
        extra={"video": label or name, "decoder": report.decoder},
    )
    timer.add_busy(
        "features" if kind == "orb" else f"features {kind}",
        feature_clock,
        frames=len(times),
        extra={"video": label or name, "kind": kind},
    )
    params = {
        "sample_fps": config.decode.sample_fps,
        "long_side": long_side,
        "keyframes_only": keyframes_only,
        "decode_mode": report.mode,
        "decoded_from": ", ".join(str(p) for p in chapter_paths(source)),
        "truncated": report.truncated,
        "features": _feature_params(config, kind),
        "mtbsync_version": __version__,
    }
    video_facts = {
        "path": str(info.path.resolve()),
        "identity": info.identity,
        "width": info.width,
        "height": info.height,
        "fps": [info.fps.numerator, info.fps.denominator],
        "duration": info.duration,
        "codec": info.codec,
        **_chapter_facts(info),
    }
    index = FeatureIndex.from_frames(times, features, thumbs, image_size, video_facts, params)
    return KeyframeResult(index, info, report)


def first_feature_kind(config: SyncConfig) -> str:
    """The features an alignment starts with: the configured kind, ORB for ``auto`` (the cascade
    adds learned features only where ORB verifies too little).

    Raises:
        ConfigError: An unknown kind.
    """
    from mtbsync.errors import ConfigError

    kind = config.features.kind
    if kind not in {"auto", *FEATURE_KINDS}:
        raise ConfigError(f"unknown feature kind {kind!r}; choose auto, {', '.join(FEATURE_KINDS)}")
    return "orb" if kind == "auto" else kind


def _feature_params(config: SyncConfig, kind: str) -> dict[str, Any]:
    """The feature parameters an index records (ORB's as before, so older indexes still compare)."""
    if kind == "orb":
        return {
            "n_features": config.features.n_features,
            "clahe": config.features.clahe,
            "fast_threshold": config.features.fast_threshold,
        }
    return {"kind": kind, "n_features": config.features.learned_features}


def _chapter_facts(info: VideoInfo) -> dict[str, Any]:
    """The chapter files and their starts, for the index's and the warp's video facts (none for one file)."""
    if not info.is_chaptered:
        return {}
    return {
        "chapters": [str(p.resolve()) for p in info.chapters],
        "chapter_starts": [float(t) for t in info.chapter_starts],
    }


def video_of_facts(facts: dict[str, Any]) -> VideoSource | None:
    """The video that index or warp facts name: the chapter list, else the single path (None if none).

    Facts written before chapters were supported name one ``path``; they still read as that file.
    """
    chapters = facts.get("chapters")
    if chapters:
        return [Path(p) for p in chapters]
    return Path(facts["path"]) if facts.get("path") else None


def choose_keyframes_only(video: VideoSource, config: SyncConfig) -> bool:
    """Whether decoding key frames only samples ``video`` densely enough (see `DecodeConfig.mode`).

    Raises:
        ConfigError: An unknown decode mode.
    """
    from mtbsync.errors import ConfigError
    from mtbsync.io.video import keyframe_interval

    mode = config.decode.mode
    if mode not in {"auto", "full", "keyframes"}:
        raise ConfigError(f"unknown decode mode {mode!r}; choose auto, full or keyframes")
    if mode != "auto":
        return mode == "keyframes"
    interval = keyframe_interval(video)
    # Key frames at least ~60% as frequent as the requested sampling rate are dense enough: the path
    # only needs a place every half second or so, and markers are timed at full rate anyway.
    return interval is not None and interval <= 1.0 / (0.6 * config.decode.sample_fps) + 1e-6


def build_index(
    reference: VideoSource,
    out: str | Path,
    config: SyncConfig,
    *,
    timer: StageTimer,
    progress: Progress = _no_progress,
) -> KeyframeResult:
    """Build and save the reference run's feature index (``mtbsync index``).

    ``reference`` is one file or the chapter files of one recording in order; the index then names
    the chapters and the recording's identity (`chapters_identity`).
    """
    result = extract_keyframes(reference, config, timer=timer, progress=progress, label="reference ")
    with timer.stage("save", frames=len(result.index)):
        save_index(result.index, out)
    return result


def config_for_index(config: SyncConfig, index: FeatureIndex) -> SyncConfig:
    """The configuration a new run must be decoded with to be comparable with ``index``."""
    params = index.params
    feats = params.get("features", {})
    if feats.get("kind", "orb") != "orb":
        return config.with_overrides(
            decode={"sample_fps": params.get("sample_fps", config.decode.sample_fps)},
            features={
                "learned_features": feats.get("n_features", config.features.learned_features),
                "feature_side": params.get("long_side", config.features.feature_side),
            },
        )
    return config.with_overrides(
        decode={"sample_fps": params.get("sample_fps", config.decode.sample_fps)},
        features={
            "n_features": feats.get("n_features", config.features.n_features),
            "clahe": feats.get("clahe", config.features.clahe),
            "fast_threshold": feats.get("fast_threshold", config.features.fast_threshold),
            "feature_side": params.get("long_side", config.features.feature_side),
        },
    )


def index_feature_kind(index: FeatureIndex) -> str:
    """The kind of features an index holds (``orb`` for indexes written before learned features)."""
    return str(index.params.get("features", {}).get("kind", "orb"))


@dataclass
class Alignment:
    """Everything the alignment of two runs produced."""

    warp: Warp
    pairs: list[AlignmentPair]
    path: KeyframePath
    similarity: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)
    gps_map: Any = None  # the GPS map of the two runs (mtbsync.align.gps.GpsMapping), when both had GPS
    new_index: FeatureIndex | None = None  # the new run's keyframes the alignment was made from


def align_indexes(
    ref: FeatureIndex,
    new: FeatureIndex,
    config: SyncConfig,
    *,
    timer: StageTimer,
    progress: Progress = _no_progress,
    reference_gps: GpsTrack | None = None,
    new_gps: GpsTrack | None = None,
    gps_notes: tuple[str, ...] = (),
    similarity: np.ndarray | None = None,
) -> Alignment:
    """Align the new run's keyframes to the reference's: retrieval, verification, path, refine, warp.

    With GPS on both runs (on the videos' timelines), the runs are first mapped by position along the
    trail (`mtbsync.align.gps`): only keyframe pairs within a band around that map are examined,
    long stretches without visual evidence are filled from it (at a confidence that asks for
    review), and tracks that lie far apart make the result "not aligned". With GPS on the new run
    only, its stops hold the path still; otherwise vision works alone. ``extra["gps"]`` and
    ``warp.metrics["gps"]`` say which.

    Args:
        ref: The reference run's keyframe index.
        new: The new run's keyframe index.
        config: Parameters.
        timer: Stage timer.
        progress: Progress callback.
        reference_gps: The reference run's GPS on its video's timeline, or None.
        new_gps: The new run's GPS on its video's timeline, or None.
        gps_notes: Why GPS is missing or how it was timed (carried into the summary).
        similarity: `appearance_similarity` of ``new`` to ``ref`` when already computed (the retry
            without GPS reuses it: it does not depend on GPS); None: computed here.
    """
    from mtbsync.align.gps import (
        band_mask,
        calibrate_mapping,
        fill_gaps,
        flatten_stops,
        gps_mapping,
        stop_intervals,
    )

    device = backend_name(config.match.device)
    learned = is_learned(ref.descriptors)
    min_inliers = config.match.learned_min_inliers if learned else config.match.min_inliers
    n_new, n_ref = len(new), len(ref)
    ref_step = float(np.median(np.diff(ref.times))) if n_ref > 1 else 1.0
    new_step = float(np.median(np.diff(new.times))) if n_new > 1 else 1.0
    max_step = max(2, math.ceil(config.path.max_speed_ratio * new_step / ref_step))

    ref_fix = reference_gps is not None and reference_gps.has_fix
    new_fix = new_gps is not None and new_gps.has_fix
    gps: dict[str, Any] = {"mode": _gps_mode(reference_gps, new_gps, gps_notes), "notes": list(gps_notes)}
    mapping, allowed, new_stops = None, None, []
    with timer.stage("gps") as rec:
        if ref_fix and new_fix:
            mapping = gps_mapping(reference_gps, new_gps)
            gps["map"] = mapping.summary()
            if mapping.same_trail and mapping.valid.any():
                allowed, has_gps = band_mask(mapping, new.times, ref.times)
                gps["band_rows"] = int(has_gps.sum())
                gps["band_fraction"] = round(float(allowed[has_gps].mean()), 3) if has_gps.any() else 1.0
            elif mapping.same_trail:
                gps["notes"].append("the GPS tracks share too little trail to guide the alignment")
        elif new_fix:
            new_stops = stop_intervals(new_gps)
            gps["new_stops_s"] = [[round(a, 2), round(b, 2)] for a, b in new_stops]
        elif ref_fix:
            gps["reference_stops_s"] = [[round(a, 2), round(b, 2)] for a, b in stop_intervals(reference_gps)]
            gps["notes"].append("reference-only GPS: its stops are reported, the path is found by vision")
        rec.extra["mode"] = gps["mode"]

    with timer.stage("matching", device=device) as rec:
        if similarity is None:
            similarity = appearance_similarity(
                new, ref, vocabulary_size=config.path.vocabulary_size, device=device
            )
        coarse_score = np.clip(similarity - 2.0, -1.0, 4.0)
        looks = similarity
        if allowed is not None:
            mapping, calibration = calibrate_mapping(mapping, new.times, ref.times, similarity)
            if calibration.applied:
                allowed, _ = band_mask(mapping, new.times, ref.times)
                gps["notes"].append(
                    f"GPS map moved by {-calibration.shift_s:+.2f} s to agree with the keyframes' "
                    "appearance (a track's time offset was off)"
                )
            gps["map_shift_s"] = round(-calibration.shift_s, 3)
            # Vision decides within the GPS band; what lies outside it is not examined at all.
            coarse_score = np.where(allowed, coarse_score, -1.0)
            looks = np.where(allowed, similarity, float(np.nanmin(similarity)) - 1.0)
        coarse = monotone_path(coarse_score, max_step=max_step, stop_penalty=0.1)
        candidates = candidate_pairs(looks, coarse, k=4, around=max_step)
        if allowed is not None:
            candidates = candidates[allowed[candidates[:, 0], candidates[:, 1]]]
        counts = np.full((n_new, n_ref), np.nan)
        counts[candidates[:, 0], candidates[:, 1]] = match_counts(new, ref, candidates, config.match)
        rec.frames = len(candidates)
        rec.device = backend_name(device)  # "cpu" if the GPU failed during the stage and the CPU took over
    progress("matching", 1, 1)

    with timer.stage("path") as rec:
        # Path through the match counts, then geometric verification of a band around it, then the
        # final path through the verified scores.
        first = monotone_path(count_score(counts), max_step=max_step, stop_penalty=config.path.stop_penalty)
        band = band_pairs(first, n_ref, width=1)
        geometry = verify_pairs(new, ref, band, config.match)
        inliers = np.full((n_new, n_ref), -1.0)
        zoom = np.full((n_new, n_ref), np.nan)
        inliers[band[:, 0], band[:, 1]] = geometry.inliers
        zoom[band[:, 0], band[:, 1]] = geometry.log_zoom
        score = np.where(inliers >= 0, verification_score(inliers, min_inliers), -1.0)
        if allowed is not None:
            score = np.where(allowed, score, -1.0)
        path = monotone_path(score, max_step=max_step, stop_penalty=config.path.stop_penalty)
        rec.frames = len(path)
        rec.extra.update(candidates=len(candidates), verified_pairs=len(band))

    with timer.stage("refine", device=device) as rec:
        path_inliers = inliers[path.new_idx, path.ref_idx] if len(path) else np.zeros(0)
        path_zoom = zoom[path.new_idx, path.ref_idx] if len(path) else np.zeros(0)
        steps = np.full(n_ref, np.nan)
        if len(path):
            lo, hi = max(1, int(path.ref_idx.min()) - 1), min(n_ref - 1, int(path.ref_idx.max()) + 1)
            ref_pairs = np.stack([np.arange(lo - 1, hi), np.arange(lo, hi + 1)], axis=1)
            step_geometry = verify_pairs(ref, ref, ref_pairs, config.match)
            steps[ref_pairs[:, 1]] = step_geometry.log_zoom
        refined = refine_reference_times(new.times[path.new_idx], ref.times, path.ref_idx, path_zoom, steps)
        rec.frames = int(refined.refined.sum())
        rec.extra.update(zoom_bias=refined.zoom_bias)
        rec.device = backend_name(device)

    with timer.stage("warp") as rec:
        verified = (path_inliers >= min_inliers) & ~refined.outside
        new_duration = float(new.video.get("duration") or (new.times[-1] if n_new else 0.0))
        ref_duration = float(ref.video.get("duration") or (ref.times[-1] if n_ref else 0.0))
        t_ref_fit = refined.t_ref
        if new_stops:
            # While the new rider stands, the place cannot move: one reference time for the stop.
            t_ref_fit, gps["stop_pairs_held"] = flatten_stops(refined.t_new, refined.t_ref, new_stops)
        warp = fit_warp(
            refined.t_new,
            t_ref_fit,
            path_inliers,
            verified,
            gates=config.gates,
            new_duration=new_duration,
            ref_duration=ref_duration,
            path_points=len(path),
            extend_s=0.5 * new_step,
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
            warp, gps["filled_knots"] = fill_gaps(warp, mapping)
        gps["candidates"] = len(candidates)
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
        rec.frames = len(warp.t_new)
    pairs = [
        AlignmentPair(
            t_new=float(refined.t_new[k]),
            t_ref=float(refined.t_ref[k]),
            inliers=int(max(path_inliers[k], 0)),
            confidence=float(warp.confidence_at(refined.t_new[k])[0]) if warp.ok else 0.0,
            verified=bool(verified[k]),
            source="refined" if refined.refined[k] else "path",
        )
        for k in range(len(path))
    ]
    if allowed is not None and not warp.ok:
        # The band rests on the tracks' timing (a wrong track offset shifts it): when vision finds no
        # consistent path inside it, GPS must not be what makes the runs "not aligned".
        log.warning(
            "no consistent visual path inside the GPS band (%s); retrying by vision alone",
            warp.reason,
            extra=IN_RESULT,
        )
        why = "the GPS map disagreed with vision (check the track offset)"
        fallback = align_indexes(
            ref,
            new,
            config,
            timer=timer,
            progress=progress,
            gps_notes=(why, *gps_notes),
            similarity=similarity,
        )
        fallback.extra["gps"]["mode"] = f"none: {why}; aligned by vision alone"
        fallback.extra["gps"]["map"] = gps.get("map")
        fallback.gps_map = mapping
        return fallback
    return Alignment(
        warp=warp,
        pairs=pairs,
        path=path,
        similarity=similarity,
        extra={"gps": gps},
        gps_map=mapping,
        new_index=new,
    )


def _gps_mode(reference_gps: GpsTrack | None, new_gps: GpsTrack | None, notes: tuple[str, ...]) -> str:
    """``"both"``, ``"reference only"``, ``"new only"`` or ``"none: <reason>"``."""
    ref_fix = reference_gps is not None and reference_gps.has_fix
    new_fix = new_gps is not None and new_gps.has_fix
    if ref_fix and new_fix:
        return "both"
    if ref_fix or new_fix:
        return "reference only" if ref_fix else "new only"
    if reference_gps is not None or new_gps is not None:
        return "none: GPS never had a fix; aligned by vision alone"
    # The first note says why (e.g. "reference: GPS off (--no-gps)"); the run's label is dropped.
    reason = notes[0].split(": ", 1)[-1] if notes else "no GPS given"
    return f"none: {reason}; aligned by vision alone"


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

    Returns:
        The warp pinned at the refined markers, the transferred markers, and the anchor pairs added.
    """
    from mtbsync.align.fit import pin_warp

    anchors: list[AlignmentPair] = []
    found = np.zeros(len(markers), bool)
    vision = warp.metrics.get("model") != "gps"  # a GPS-only warp has nothing vision could time
    refined = (
        config.refine and warp.ok and vision and reference is not None and new is not None and bool(markers)
    )
    if refined:
        refinement = refine_at_reference_times(
            reference, new, warp, [m.t_ref for m in markers], config, timer=timer
        )
        found = np.isfinite(refinement.t_new)
        warp = pin_warp(warp, refinement.t_new[found], refinement.t_ref[found])
        anchors = [
            AlignmentPair(float(tn), float(tr), 0, float(warp.confidence_at(tn)[0]), True, "marker")
            for tn, tr in zip(refinement.t_new[found], refinement.t_ref[found], strict=True)
        ]
    with timer.stage("transfer", frames=len(markers)):
        transferred = transfer_markers(markers, warp, review_threshold=review_threshold)
    if refined:
        # A placed marker whose place was not found at full frame rate rests on keyframes alone:
        # say so, and trust it less; at the extrapolated ends of the covered part, do not place it.
        residual_ms = 1000 * float((warp.metrics.get("residuals_s") or {}).get("p90", 0.0) or 0.0)
        verified = warp.metrics.get("verified_ref_range") or [-math.inf, math.inf]
        transferred = [
            _keyframes_only(m, residual_ms, review_threshold, verified)
            if m.t_new is not None and not ok
            else m
            for m, ok in zip(transferred, found, strict=True)
        ]
    return warp, transferred, anchors


# An unconfirmed marker below this confidence (e.g. in the half keyframe by which the covered part is
# extended at its ends) is not placed: a guess is worse than a gap the editor can see.
_MIN_UNCONFIRMED_CONFIDENCE = 0.25


def _keyframes_only(
    marker: TransferredMarker, residual_ms: float, review_threshold: float, verified_ref: list[float]
) -> TransferredMarker:
    at_edge = not verified_ref[0] <= marker.t_ref <= verified_ref[1]
    if marker.confidence < _MIN_UNCONFIRMED_CONFIDENCE or at_edge:
        why = "beyond the last matched keyframe" if at_edge else f"confidence {marker.confidence:.2f}"
        note = f"not placed: its place was not found at full frame rate and the warp is unsure here ({why})"
        comment = f"{marker.comment} | {note}" if marker.comment else note
        return replace(marker, t_new=None, confidence=0.0, needs_review=True, comment=comment)
    confidence = 0.7 * marker.confidence
    note = f"timed from keyframes only (warp p90 {residual_ms:.0f} ms), not confirmed at full frame rate"
    comment = f"{marker.comment} | {note}" if marker.comment else note
    return replace(
        marker,
        confidence=confidence,
        needs_review=marker.needs_review or confidence < review_threshold,
        comment=comment,
    )


def videos_of_warp(warp: Warp) -> tuple[VideoSource, VideoSource] | None:
    """The reference and new videos a warp was made from, if both are still there unchanged.

    Returns:
        (reference, new): each a `Path`, or the list of chapter files of a recording aligned as one
        timeline (warps written before chapters were supported name one path); None when a file
        is gone or changed.
    """
    from mtbsync.errors import MediaError

    videos: list[VideoSource] = []
    for role in ("reference", "new"):
        facts = warp.meta.get(role) or {}
        video = video_of_facts(facts)
        try:
            if (
                video is None
                or not all(p.is_file() for p in chapter_paths(video))
                or probe(video).identity != facts.get("identity")
            ):
                return None
        except MediaError:
            return None
        videos.append(video)
    return videos[0], videos[1]


@dataclass
class SyncResult:
    """The outputs of ``mtbsync sync``."""

    alignment: Alignment
    reference: KeyframeResult | None
    new: KeyframeResult
    out_dir: Path
    files: dict[str, Path]
    markers: list[TransferredMarker] | None = None
    gps_mode: str = "none: not requested"


def sync(
    reference: VideoSource,
    new: VideoSource,
    out_dir: str | Path,
    config: SyncConfig,
    *,
    index_path: str | Path | None = None,
    new_index_path: str | Path | None = None,
    markers: list[Marker] | None = None,
    review_threshold: float = 0.6,
    plot: bool = False,
    truth: np.ndarray | None = None,
    timer: StageTimer,
    progress: Progress = _no_progress,
    reference_gps: GpsTrack | None = None,
    new_gps: GpsTrack | None = None,
    use_gps: bool = True,
    reference_track_offset: float | None = None,
    new_track_offset: float | None = None,
) -> SyncResult:
    """Align ``new`` to ``reference`` and write pairs.csv, warp.npz and timewarp.json into ``out_dir``.

    Args:
        reference: The reference run's video: one file, or the chapter files of one recording in
            order (`mtbsync.ingest.card.recording_chapters` finds them), aligned as one timeline.
        new: The new run's video, the same way; warp, markers and pairs are on its joined timeline.
        out_dir: Output folder (created).
        config: Parameters.
        index_path: A reference index built by `build_index`; built on the fly when None.
        new_index_path: An index of the new run (the service builds one at ingest); used instead of
            decoding the run again when it is of this video and sampled like the reference index.
        markers: Reference markers to transfer (writes new_markers.csv too).
        review_threshold: Confidence under which a transferred marker needs review.
        plot: Also draw alignment.png.
        truth: (k, 2) known ``t_new, t_ref`` to draw in the plot (sample pairs).
        timer: Stage timer.
        progress: Progress callback.
        reference_gps: The reference run's GPS (e.g. from `read_track_file`); None: the GPS embedded
            in the video when ``use_gps``.
        new_gps: The same for the new run.
        use_gps: Read GPS embedded in the videos (GoPro GPMF) where no track is given.
        reference_track_offset: Seconds to add to a GPX/FIT ``reference_gps``'s times; None:
            estimated against the video, applied only when confident.
        new_track_offset: The same for ``new_gps``.

    Raises:
        MediaError, IndexFileError: Unreadable inputs.
    """
    out_dir = Path(out_dir)
    ref_result = None
    if index_path is not None:
        ref_info = probe(reference)
        with timer.stage("load index"):
            ref_index = load_index(index_path, expected_identity=ref_info.identity)
    else:
        ref_result = extract_keyframes(reference, config, timer=timer, progress=progress, label="reference ")
        ref_index = ref_result.index
        ref_info = ref_result.info
    new_config = config_for_index(config, ref_index)
    new_result = _indexed_keyframes(new, new_index_path, ref_index, timer=timer)
    if new_result is None:
        new_result = extract_keyframes(new, new_config, timer=timer, progress=progress, label="new ")
    with timer.stage("gps tracks"):
        ref_track, ref_notes = resolve_run_gps(
            reference,
            ref_index,
            reference_gps,
            use_embedded=use_gps,
            offset_s=reference_track_offset,
            label="reference",
        )
        new_track, new_notes = resolve_run_gps(
            new, new_result.index, new_gps, use_embedded=use_gps, offset_s=new_track_offset, label="new"
        )
    alignment = align_indexes(
        ref_index,
        new_result.index,
        new_config,
        timer=timer,
        progress=progress,
        reference_gps=ref_track,
        new_gps=new_track,
        gps_notes=tuple(ref_notes + new_notes),
    )
    if _wants_learned_features(alignment, config):
        alignment = _align_with_learned_features(
            alignment,
            reference,
            new,
            new_config,
            timer=timer,
            progress=progress,
            reference_gps=ref_track,
            new_gps=new_track,
            gps_notes=tuple(ref_notes + new_notes),
        )
    if not alignment.warp.ok and alignment.gps_map is not None:
        alignment = _gps_last_resort(alignment, new_result.index, ref_index, config)
    alignment.warp.meta.setdefault("model", _model_name(alignment.warp))
    if alignment.warp.ok and alignment.warp.meta["model"] != "gps":
        alignment.warp = densify_warp(alignment, reference, new_config, timer=timer)
    # The files as found now (an index may have been built where the reference lay before).
    alignment.warp.meta["reference"]["path"] = str(ref_info.path.resolve())
    alignment.warp.meta["reference"].update(_chapter_facts(ref_info))
    transferred = None
    if markers is not None:
        alignment.warp, transferred, anchors = transfer_with_refinement(
            markers,
            alignment.warp,
            reference=reference,
            new=new,
            config=new_config,
            review_threshold=review_threshold,
            timer=timer,
        )
        alignment.pairs = sorted([*alignment.pairs, *anchors], key=lambda p: p.t_new)
    files = {
        "pairs": write_pairs_csv(out_dir / "pairs.csv", alignment.pairs),
        "warp": save_warp(alignment.warp, out_dir / "warp.npz"),
        "timewarp": write_timewarp_json(alignment.warp, out_dir / "timewarp.json"),
        "dense_warp": write_dense_warp_csv(
            alignment.warp,
            out_dir / "warp.csv",
            frame_duration=new_result.info.frame_duration,
            duration=new_result.info.duration,
        ),
    }
    if transferred is not None:
        from mtbsync.markers import write_new_markers

        files["markers"] = write_new_markers(out_dir / "new_markers.csv", transferred)
    if plot:
        from mtbsync.plot import plot_alignment

        with timer.stage("plot"):
            files["plot"] = plot_alignment(
                out_dir / "alignment.png",
                pairs=alignment.pairs,
                warp=alignment.warp,
                markers=transferred,
                truth=truth,
                title=f"{video_label(new)} -> {video_label(reference)}",
            )
    return SyncResult(
        alignment,
        ref_result,
        new_result,
        out_dir,
        files,
        transferred,
        gps_mode=alignment.extra["gps"]["mode"],
    )


# An ORB alignment verified on less of its path than this (or not aligned at all) is tried again with
# learned features: ORB loses most matches when the mount, the lens or the light changes.
_LEARNED_BELOW_INLIER_FRAC = 0.75


def _wants_learned_features(alignment: Alignment, config: SyncConfig) -> bool:
    """Whether the cascade should align again with learned features (``--features auto`` only)."""
    from mtbsync.features.xfeat import available

    if config.features.kind != "auto" or alignment.warp.meta.get("features", "orb") != "orb":
        return False
    warp = alignment.warp
    weak = not warp.ok or float(warp.metrics.get("inlier_frac") or 0.0) < _LEARNED_BELOW_INLIER_FRAC
    if weak and not available():
        log.warning("ORB verified too little and learned features are not installed (onnxruntime)")
        return False
    return weak


def _align_with_learned_features(
    orb: Alignment,
    reference: VideoSource,
    new: VideoSource,
    config: SyncConfig,
    *,
    timer: StageTimer,
    progress: Progress,
    reference_gps: GpsTrack | None,
    new_gps: GpsTrack | None,
    gps_notes: tuple[str, ...],
) -> Alignment:
    """Align again with XFeat keyframes; keep whichever alignment the evidence supports better."""
    learned_config = config.with_overrides(features={"kind": "xfeat"})
    ref_learned = extract_keyframes(
        reference, learned_config, timer=timer, progress=progress, label="reference ", kind="xfeat"
    )
    new_learned = extract_keyframes(
        new, learned_config, timer=timer, progress=progress, label="new ", kind="xfeat"
    )
    learned = align_indexes(
        ref_learned.index,
        new_learned.index,
        learned_config,
        timer=timer,
        progress=progress,
        reference_gps=reference_gps,
        new_gps=new_gps,
        gps_notes=gps_notes,
    )
    chosen, other = (learned, orb) if _better(learned.warp, orb.warp) else (orb, learned)
    why = f"ORB verified {_verified_text(orb.warp)}, learned features (XFeat) {_verified_text(learned.warp)}"
    chosen.warp.metrics["features"] = {
        "used": chosen.warp.meta.get("features"),
        "tried": ["orb", "xfeat"],
        "why": why,
        "other_ok": bool(other.warp.ok),
    }
    log.info("features: %s; using %s", why, chosen.warp.meta.get("features"))
    return chosen


def densify_warp(
    alignment: Alignment, reference: VideoSource, config: SyncConfig, *, timer: StageTimer
) -> Warp:
    """Place every covered new keyframe among the reference's frames at full rate; pin the warp there.

    Runs when ``config.dense`` is ``on``, or ``auto`` and the reference frames to decode stay under
    `DENSE_AUTO_PIXELS`; ``warp.metrics["dense"]`` says whether it ran and what it found.
    """
    from mtbsync.align.dense import half_windows, locate_keyframes
    from mtbsync.align.fit import pin_warp
    from mtbsync.config import DENSE_AUTO_PIXELS
    from mtbsync.io.video import merge_windows

    warp, new = alignment.warp, alignment.new_index
    if config.dense == "off" or new is None or warp.is_empty:
        warp.metrics["dense"] = {"ran": False, "why": "off"}
        return warp
    lo, hi = warp.new_range
    keyframes = np.nonzero((new.times >= lo) & (new.times <= hi))[0]
    predicted = warp.to_ref(new.times[keyframes])
    ref_info = probe(reference)
    half = half_windows(
        float((warp.metrics.get("residuals_s") or {}).get("p90") or 0.1), ref_info.frame_duration
    )
    windows = merge_windows([(p - half, p + half) for p in predicted if np.isfinite(p)], gap=0.0)
    seconds = sum(b - a for a, b in windows)
    pixels = seconds / ref_info.frame_duration * ref_info.width * ref_info.height
    if config.dense == "auto" and pixels > DENSE_AUTO_PIXELS:
        warp.metrics["dense"] = {
            "ran": False,
            "why": f"the reference is long ({seconds:.0f} s at {ref_info.width}x{ref_info.height}); "
            "--dense-warp on times every frame",
        }
        return warp
    kind = str(warp.meta.get("features") or "orb")
    long_side = min(config.features.feature_side, config.decode.max_side)
    with timer.stage("dense warp", frames=len(keyframes)) as rec:
        extractor = make_extractor(kind, config.features)
        ref_t, ref_feats = _window_features(reference, windows, long_side, extractor)
        stacked_new = _stack([new.frame(int(k)) for k in keyframes], kind)
        learned = kind != "orb"
        points = locate_keyframes(
            new.times[keyframes],
            stacked_new,
            ref_t,
            _stack(ref_feats, kind),
            predicted,
            half,
            config.match,
            reproj_px=config.match.ransac_reproj_px * max(new.image_size) / 640.0,
            min_inliers=config.match.learned_min_inliers if learned else config.match.min_inliers,
        )
        found = points.found & _consistent(points.t_new, points.t_ref)
        dense_metrics = {
            "ran": True,
            "keyframes": len(keyframes),
            "located": int(found.sum()),
            "reference_frames": len(ref_t),
            "zoom_bias": round(points.zoom_bias, 4),
        }
        rec.extra.update(dense_metrics)
        if found.sum() >= 2:
            warp = pin_warp(warp, points.t_new[found], points.t_ref[found], clearance=0.1)
            warp.metrics.pop("anchors", None)  # anchors count the markers pinned later
        warp.metrics["dense"] = dense_metrics
    return warp


def _consistent(t_new: np.ndarray, t_ref: np.ndarray, tolerance_s: float = 0.12) -> np.ndarray:
    """Located points that agree with a line through their neighbours on one side (a wrong peak
    agrees with neither side; a change of pace still agrees with one)."""
    ok = np.isfinite(t_ref)
    idx = np.nonzero(ok)[0]
    keep = np.zeros(t_ref.size, bool)
    for pos, k in enumerate(idx):
        for side in (idx[max(0, pos - 2) : pos], idx[pos + 1 : pos + 3]):
            if side.size == 2:
                slope = (t_ref[side[1]] - t_ref[side[0]]) / (t_new[side[1]] - t_new[side[0]])
                guess = t_ref[side[0]] + slope * (t_new[k] - t_new[side[0]])
                if abs(guess - t_ref[k]) <= tolerance_s:
                    keep[k] = True
    return keep


def _gps_last_resort(
    alignment: Alignment, new: FeatureIndex, ref: FeatureIndex, config: SyncConfig
) -> Alignment:
    """Where vision verified too little but both runs' GPS rides the same trail, align by GPS alone."""
    from mtbsync.align.gps import gps_only_warp

    vision = alignment.warp
    warp = gps_only_warp(
        alignment.gps_map,
        vision,
        new_duration=float(new.video.get("duration") or 0.0),
        ref_duration=float(ref.video.get("duration") or 0.0),
        min_coverage=config.gates.min_coverage,
    )
    if warp is None:
        return alignment
    warp.meta["model"] = "gps"
    warp.meta["model_reason"] = (
        f"vision did not align the runs ({vision.reason}); GPS puts both on the same trail, so it "
        "aligns them by position along the trail"
    )
    log.warning("%s", warp.reason, extra=IN_RESULT)
    alignment.warp = warp
    return alignment


def _model_name(warp: Warp) -> str:
    """What the warp rests on: ``vision-orb``, ``vision-xfeat`` or ``gps``."""
    if warp.metrics.get("model") == "gps":
        return "gps"
    return f"vision-{warp.meta.get('features', 'orb')}"


def _verified_text(warp: Warp) -> str:
    frac = float(warp.metrics.get("inlier_frac") or 0.0)
    state = "aligned" if warp.ok else "not aligned"
    return f"{frac:.0%} of its path ({state})"


def _better(candidate: Warp, current: Warp) -> bool:
    """Whether ``candidate`` is the better-supported alignment: an aligned one over one that is not,
    then the larger verified share of the path times its coverage."""
    if candidate.ok != current.ok:
        return candidate.ok

    def support(warp: Warp) -> float:
        frac = float(warp.metrics.get("inlier_frac") or 0.0)
        coverage = max(float(warp.metrics.get("coverage_new") or 0.0), 0.0)
        return frac * coverage

    return support(candidate) > support(current)


def indexes_comparable(index: FeatureIndex, reference: FeatureIndex) -> bool:
    """Whether an index was sampled like a reference index (same rate, size and features)."""
    keys = ("sample_fps", "long_side", "features")
    return all(index.params.get(k) == reference.params.get(k) for k in keys)


def _indexed_keyframes(
    video: VideoSource, index_path: str | Path | None, reference: FeatureIndex, *, timer: StageTimer
) -> KeyframeResult | None:
    """The new run's keyframes from its own index file, or None when there is none that fits."""
    if index_path is None:
        return None
    info = probe(video)
    try:
        with timer.stage("load index") as record:
            record.extra["video"] = "new "
            index = load_index(index_path, expected_identity=info.identity)
    except IndexFileError as exc:
        log.info("not using the new run's index: %s", exc)
        return None
    if not indexes_comparable(index, reference):
        return None
    report = DecodeReport(source=info.path, mode=str(index.params.get("decode_mode", "index")))
    return KeyframeResult(index=index, info=info, report=report)


def resolve_run_gps(
    video: VideoSource,
    index: FeatureIndex,
    track: GpsTrack | None,
    *,
    use_embedded: bool,
    offset_s: float | None,
    label: str,
) -> tuple[GpsTrack | None, list[str]]:
    """One run's GPS on its video's timeline, and notes on where it came from and how it was timed.

    A given track from a GPX/FIT file (absolute times, timed from its first point) gets ``offset_s``
    when given; else its offset is estimated against the video's embedded GPS where that has a fix,
    or against the keyframes' visual motion, and applied only when confident (a low-confidence
    estimate is reported and left out: the track is then assumed to start with the video).
    Without a given track the video's embedded GPS is read when ``use_embedded``.

    Args:
        video: The run's video (one file, or its chapter files: their GPS is joined on the same
            timeline as their frames).
        index: Its keyframe index (for the visual motion).
        track: A track given by the caller, or None.
        use_embedded: Read the GPS embedded in the video (GoPro GPMF).
        offset_s: Offset for a track file, or None to estimate it.
        label: ``"reference"`` or ``"new"`` (for the notes).

    Returns:
        The track (None when there is none with a fix) and the notes.
    """
    from mtbsync.align.gps import GpsAlignConfig, estimate_track_offset, track_speed, visual_motion
    from mtbsync.errors import MtbsyncError

    notes: list[str] = []
    embedded = None
    if use_embedded and (track is None or track.source in _TRACK_FILE_SOURCES):
        try:
            from mtbsync.ingest.gopro import read_gopro_telemetry, read_gps_from_mp4
        except ImportError:  # the GPMF reader is optional in a partial install
            read_gps_from_mp4 = None
        if read_gps_from_mp4 is not None:
            chapters = chapter_paths(video)
            try:
                if len(chapters) == 1:
                    embedded = read_gps_from_mp4(chapters[0])
                else:
                    # The reader joins the chapters' GPS with the offsets the decoders give frames.
                    joined = read_gopro_telemetry(chapters).gps
                    embedded = joined if joined is not None and joined.has_fix else None
            except MtbsyncError as exc:
                log.info("%s: no embedded GPS read (%s)", video_label(video), exc)
            except Exception as exc:  # a telemetry bug must not cost the alignment
                log.warning(
                    "%s: reading the embedded GPS failed (%s); aligning without it", video_label(video), exc
                )
    if track is None:
        if embedded is None:
            why = "GPS off (--no-gps)" if not use_embedded else "no GPS with a fix in the video"
            notes.append(f"{label}: {why}")
            return None, notes
        notes.append(
            f"{label}: embedded GPS ({embedded.source}, {int(embedded.usable.sum())} usable samples)"
        )
        return embedded, notes
    if not track.has_fix:
        notes.append(f"{label}: the given GPS track has no usable fix")
        return None, notes
    if track.source in _TRACK_FILE_SOURCES:
        if offset_s is not None:
            notes.append(f"{label}: {track.source} track offset {offset_s:+.2f} s (given)")
            return track.shifted(offset_s), notes
        clock = _video_start_utc(embedded) if embedded is not None else None
        if clock is not None and not np.isnat(track.utc[0]):
            # The camera's GPS clock times the video in UTC: the track needs no estimate.
            offset = float((track.utc.min() - clock) / np.timedelta64(1, "us")) / 1e6
            notes.append(f"{label}: {track.source} track offset {offset:+.2f} s from the video's GPS clock")
            return track.shifted(offset), notes
        if embedded is not None:
            signal_t, signal = track_speed(embedded)
            method = "embedded GPS"
        else:
            signal_t, signal = visual_motion(index.times, index.thumbnails)
            method = "visual motion"
        estimate = estimate_track_offset(track, signal_t, signal, method=method, config=GpsAlignConfig())
        if estimate is None:
            notes.append(
                f"{label}: {track.source} track too short to estimate its offset; "
                "assumed to start with the video"
            )
        elif estimate.applied:
            notes.append(f"{label}: {estimate.describe()}")
            return track.shifted(estimate.offset_s), notes
        else:
            log.warning(
                "%s: %s; the track is assumed to start with the video (set --track-offset)",
                video_label(video),
                estimate.describe(),
                extra=IN_RESULT,
            )
            notes.append(
                f"{label}: {estimate.describe()}; assumed to start with the video (set --track-offset)"
            )
    else:
        notes.append(f"{label}: GPS given ({track.source})")
    return track, notes


# Track sources with absolute times only (their offset against the video must be given or estimated).
_TRACK_FILE_SOURCES = ("gpx", "fit")


def _video_start_utc(embedded: GpsTrack) -> np.datetime64 | None:
    """The UTC of the video's t = 0 from its embedded GPS (median over samples with a fix), if known."""
    known = embedded.usable & ~np.isnat(embedded.utc)
    if known.sum() < 3:
        return None
    starts = embedded.utc[known].astype("datetime64[us]").astype(np.int64) - np.round(
        embedded.t[known] * 1e6
    ).astype(np.int64)
    return np.datetime64(int(np.median(starts)), "us")


def refit_warp(
    pairs_csv: str | Path,
    out: str | Path,
    config: SyncConfig,
    *,
    new_duration: float | None = None,
    ref_duration: float | None = None,
) -> tuple[Warp, list[Path]]:
    """Fit a warp to a pairs file (``mtbsync warp``); writes ``out`` (.npz) and a timewarp.json beside it.

    Run lengths come from the options, else from a timewarp.json next to the pairs file, else from the
    pairs' own span (then the coverage gate cannot fail).

    Raises:
        PairsFileError: The pairs file is malformed.
    """
    from mtbsync.align.pairs import read_pairs_csv
    from mtbsync.align.warp import load_warp
    from mtbsync.errors import WarpFileError

    pairs_csv, out = Path(pairs_csv), Path(out)
    pairs = sorted(read_pairs_csv(pairs_csv), key=lambda p: p.t_new)
    meta: dict[str, Any] = {}
    beside = pairs_csv.with_name("timewarp.json")
    if beside.exists():
        try:
            meta = load_warp(beside).meta
        except WarpFileError:
            meta = {}
    t_new = np.array([p.t_new for p in pairs])
    t_ref = np.array([p.t_ref for p in pairs])
    new_duration = new_duration or float(
        (meta.get("new") or {}).get("duration") or (t_new.max() if pairs else 0)
    )
    ref_duration = ref_duration or float(
        (meta.get("reference") or {}).get("duration") or (t_ref.max() if pairs else 0)
    )
    inliers = np.array([p.inliers if p.inliers > 0 else 100 for p in pairs], dtype=np.float64)
    fitted = fit_warp(
        t_new,
        t_ref,
        inliers,
        np.array([p.verified for p in pairs], bool),
        gates=config.gates,
        new_duration=new_duration,
        ref_duration=ref_duration,
        path_points=len(pairs),
    )
    fitted.meta.update(meta, refitted_from=str(pairs_csv.resolve()))
    written = [
        save_warp(fitted, out),
        write_timewarp_json(fitted, out.with_name(out.stem + ".timewarp.json")),
    ]
    return fitted, written


def _window_features(
    video: VideoSource, windows: list[tuple[float, float]], long_side: int, extractor: Extractor
) -> tuple[np.ndarray, list]:
    """Times and local features of every frame inside ``windows`` (full frame rate)."""
    from mtbsync.io.video import iter_window_frames

    times, features = [], []
    for frame in prefetch(iter_window_frames(video, windows, long_side=long_side), depth=4):
        times.append(frame.t)
        features.append(extractor(frame.image))
    return np.array(times), features


def _stack(features: list, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame features stacked as (keypoints, descriptors, offsets), the layout of an index."""
    counts = [len(f) for f in features]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    features = features or [empty_features(kind)]
    kp = np.concatenate([f.keypoints for f in features])
    desc = np.concatenate([f.descriptors for f in features])
    return kp, desc, offsets


# Reference frames on each side of a marker that are located in the new run; their timings are
# combined by a line fit, which averages out the error of single frames.
_REFINE_REF_FRAMES = 2
# More keypoints than keyframes get: frames compared at full rate are near-identical views, and the
# extra points sharpen the inlier peak and the zoom estimate.
_REFINE_FEATURES = 1200
_REFINE_MAX_WINDOW_S = 1.0
# Fewest inliers at a window's peak for ORB's homography to say the reference frame is there.
_REFINE_MIN_INLIERS = 20


@dataclass(frozen=True)
class MarkerRefinement:
    """Full-frame-rate timing of reference times (markers) in the new run."""

    t_ref: np.ndarray
    t_new: np.ndarray
    method: list[str]


def refine_at_reference_times(
    reference: VideoSource,
    new: VideoSource,
    warp: Warp,
    ref_times: list[float],
    config: SyncConfig,
    *,
    timer: StageTimer,
) -> MarkerRefinement:
    """Time reference moments (markers) in the new run to about one frame.

    For each reference time, the reference frames just before and after it and the new run's frames
    within ``config.refine_window_s`` of the warp's estimate are decoded at full rate; each reference
    frame is located among the new frames (`locate_in_window`) and the two results are interpolated
    to the exact reference time. Only those short windows are decoded. Either video may be the
    chapter files of one recording: times are on its joined timeline, and a window across a chapter
    boundary takes its frames from both chapters.
    """
    from mtbsync.align.refine import locate_in_window, zoom_at_peaks
    from mtbsync.match.verify import verify_block_pairs

    ref_times_arr = np.asarray(ref_times, np.float64)
    predicted = warp.to_new(ref_times_arr) if len(ref_times_arr) else np.zeros(0)
    result_t = np.full(len(ref_times_arr), np.nan)
    methods = ["none"] * len(ref_times_arr)
    todo = [k for k in range(len(ref_times_arr)) if np.isfinite(predicted[k]) and warp.ok]
    if not todo:
        return MarkerRefinement(ref_times_arr, result_t, methods)
    ref_info, new_info = probe(reference), probe(new)
    ref_frame_s, new_frame_s = ref_info.frame_duration, new_info.frame_duration
    long_side = min(config.features.feature_side, config.decode.max_side)
    # The features the runs were aligned with: where ORB could not align them, it cannot time them.
    kind = str(warp.meta.get("features") or "orb")
    extractor = make_extractor(kind, config.features, n_features=_REFINE_FEATURES if kind == "orb" else None)
    min_peak = config.match.learned_min_inliers if kind != "orb" else _REFINE_MIN_INLIERS
    # Search as far as the warp may be off: twice its worst residual, and at least most of a keyframe
    # step (the keyframe a place was matched to can be the neighbour), which lasts longer in new-run
    # time where the new rider is slow.
    worst = float((warp.metrics.get("residuals_s") or {}).get("max", config.refine_window_s) or 0.0)
    keyframe_step = 1.0 / float(warp.meta.get("keyframe_fps") or config.decode.sample_fps)
    speed = np.clip(np.nan_to_num(warp.speed_ratio(np.nan_to_num(predicted)), nan=1.0), 0.3, 3.0)
    windows = np.clip(
        np.maximum(2.0 * worst + 2 * new_frame_s, 0.75 * keyframe_step / speed), 0.25, _REFINE_MAX_WINDOW_S
    )
    windows = np.maximum(windows, min(config.refine_window_s, _REFINE_MAX_WINDOW_S))
    reproj_px = config.match.ransac_reproj_px * long_side / 640.0

    with timer.stage("refine markers", frames=len(todo)) as rec:
        reach = _REFINE_REF_FRAMES * ref_frame_s + 0.01 * ref_frame_s
        ref_windows = [(ref_times_arr[k] - reach, ref_times_arr[k] + reach) for k in todo]
        new_windows = [(predicted[k] - windows[k], predicted[k] + windows[k]) for k in todo]
        # Images are dropped as soon as their features are computed (decoding overlapped), so memory
        # follows the number of window frames' features, not their pixels.
        ref_t, ref_feats = _window_features(reference, ref_windows, long_side, extractor)
        new_t, new_feats = _window_features(new, new_windows, long_side, extractor)
        rec.extra["frames_decoded"] = len(ref_feats) + len(new_feats)
        plan: list[tuple[int, int, np.ndarray]] = []  # (marker, ref frame, new frames in window)
        for k in todo:
            bracket = np.nonzero(np.abs(ref_t - ref_times_arr[k]) <= reach)[0]
            in_window = np.nonzero(np.abs(new_t - predicted[k]) <= windows[k] + 0.5 * new_frame_s)[0]
            plan.extend((k, int(r), in_window) for r in bracket)
        pairs = np.array([(n, r) for _, r, window_frames in plan for n in window_frames], np.int64)
        geometry = verify_block_pairs(
            *_stack(new_feats, kind), *_stack(ref_feats, kind), pairs, config.match, reproj_px=reproj_px
        )
        spans = np.cumsum([0] + [len(w) for _, _, w in plan])
        # The zoom between the cameras at the same place (another lens, another mount) is read at
        # each window's inlier peak, where the two views are closest; their median is the level the
        # zoom crosses when the new run passes a reference frame. The same camera gives about 0.
        bias = zoom_at_peaks(
            [
                (new_t[w], geometry.inliers[a:b], geometry.log_zoom[a:b])
                for (_, _, w), a, b in zip(plan, spans[:-1], spans[1:], strict=True)
            ],
            min_inliers=min_peak,
        )
        rec.extra["zoom_bias"] = bias
        located: dict[int, list[tuple[float, float]]] = {k: [] for k in todo}
        for (k, r, in_window), a, b in zip(plan, spans[:-1], spans[1:], strict=True):
            timing = locate_in_window(
                new_t[in_window],
                geometry.inliers[a:b],
                geometry.log_zoom[a:b],
                zoom_bias=bias,
                min_inliers=min_peak,
            )
            guess = predicted[k]
            if np.isfinite(timing.t_new) and abs(timing.t_new - guess) <= windows[k] - new_frame_s:
                located[k].append((float(ref_t[r]), timing.t_new))
                methods[k] = timing.method
        for k in todo:
            result_t[k] = interpolate_located(located[k], ref_times_arr[k], warp)
        rec.extra["refined"] = int(np.isfinite(result_t).sum())
    return MarkerRefinement(ref_times_arr, result_t, methods)

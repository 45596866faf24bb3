"""The pipeline: composes the stages, times each one, and writes the hand-off files.

The CLI (and later the API and the service) call these functions; they hold no logic of their own.
Every stage runs inside ``timer.stage(...)`` (or publishes its busy time when it overlaps another
stage), so one `StageTimer` sees everything; the stage entry points that run as several timed
stages take that timer. The stages live in their modules: keyframes, decoded or from index files, in
`mtbsync.features.keyframes` (`extract_keyframes`, `pair_keyframes`), a run's GPS in
`mtbsync.align.gps_tracks`, the alignment's stages (and its retry by vision alone when the GPS band
held no consistent path) in `mtbsync.align.vision`, the feature cascade's choices in
`mtbsync.align.select`, the last resorts in `mtbsync.align.sequence` and `mtbsync.align.gps`, the
dense warp in `mtbsync.align.dense`, and the markers, timed at full frame rate then transferred, in
`mtbsync.markers.full_rate` (their timing in `mtbsync.markers.refine`, its policy and confidence in
`mtbsync.markers.policy`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtbsync.align.dense import dense_warp, plan_dense_warp
from mtbsync.align.gps import gps_fallback
from mtbsync.align.gps_tracks import gps_mode, resolve_run_gps
from mtbsync.align.pairs import AlignmentPair, write_pairs_csv
from mtbsync.align.path import KeyframePath
from mtbsync.align.select import choose_features, model_name, wants_learned_features
from mtbsync.align.sequence import sequence_fallback
from mtbsync.align.vision import (
    band_retry_reason,
    described_warp,
    gps_guide,
    gps_summary,
    mark_vision_retry,
    match_candidates,
    path_pairs,
    path_steps,
    path_warp,
    refine_path,
    verified_path,
)
from mtbsync.align.warp import Warp, save_warp, write_dense_warp_csv, write_timewarp_json
from mtbsync.config import SyncConfig
from mtbsync.features.index import FeatureIndex, save_index
from mtbsync.features.keyframes import KeyframeResult, Progress, extract_keyframes, pair_keyframes
from mtbsync.gpu import backend_name
from mtbsync.ingest.track import GpsTrack
from mtbsync.io.sources import chapter_facts
from mtbsync.io.video import VideoSource, video_label
from mtbsync.markers import Marker, TransferredMarker
from mtbsync.markers.full_rate import transfer_with_refinement
from mtbsync.match.retrieval import appearance_similarity
from mtbsync.telemetry import stage_sample  # noqa: F401  (importing it makes every stage sample the GPU)
from mtbsync.timing import StageTimer


def _no_progress(stage: str, done: int, total: int | None) -> None:
    return None


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
    device = backend_name(config.match.device)
    steps = path_steps(new, ref, config)
    mode = gps_mode(reference_gps, new_gps, gps_notes)
    with timer.stage("gps") as rec:
        guide = gps_guide(reference_gps, new_gps, new.times, ref.times)
        rec.extra["mode"] = mode

    with timer.stage("matching", device=device) as rec:
        if similarity is None:
            similarity = appearance_similarity(
                new, ref, vocabulary_size=config.path.vocabulary_size, device=device
            )
        candidates = match_candidates(
            new,
            ref,
            similarity,
            config,
            max_step=steps.max_step,
            mapping=guide.mapping,
            allowed=guide.allowed,
        )
        mapping, allowed = candidates.mapping, candidates.allowed
        rec.frames = len(candidates.pairs)
        rec.device = backend_name(device)  # "cpu" if the GPU failed during the stage and the CPU took over
    progress("matching", 1, 1)

    with timer.stage("path") as rec:
        band = verified_path(new, ref, candidates.counts, config, steps=steps, allowed=allowed)
        path = band.path
        rec.frames = len(path)
        rec.extra.update(candidates=len(candidates.pairs), verified_pairs=band.verified_pairs)

    with timer.stage("refine", device=device) as rec:
        refined, path_inliers = refine_path(new, ref, band, config)
        rec.frames = int(refined.refined.sum())
        rec.extra.update(zoom_bias=refined.zoom_bias)
        rec.device = backend_name(device)

    with timer.stage("warp") as rec:
        fitted = path_warp(
            new, ref, refined, path_inliers, config, steps=steps, new_stops=guide.new_stops, mapping=mapping
        )
        gps = gps_summary(mode, gps_notes, guide, candidates, fitted)
        warp = described_warp(fitted, refined, new, ref, gps=gps, device=device)
        rec.frames = len(warp.t_new)
    pairs = path_pairs(refined, path_inliers, fitted)
    why = band_retry_reason(allowed, warp)
    if why is not None:
        fallback = align_indexes(
            ref,
            new,
            config,
            timer=timer,
            progress=progress,
            gps_notes=(why, *gps_notes),
            similarity=similarity,
        )
        mark_vision_retry(fallback.extra["gps"], gps, why)
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


def densify_warp(
    alignment: Alignment, reference: VideoSource, config: SyncConfig, *, timer: StageTimer
) -> Warp:
    """Place every covered new keyframe among the reference's frames at full rate; pin the warp there.

    Runs when ``config.dense`` is ``on``, or ``auto`` and the reference frames to decode stay under
    `DENSE_AUTO_PIXELS` (`plan_dense_warp`); ``warp.metrics["dense"]`` says whether it ran and what
    it found.
    """
    warp, new = alignment.warp, alignment.new_index
    plan = plan_dense_warp(warp, new, reference, config)
    if plan.skipped is not None or new is None:
        warp.metrics["dense"] = plan.skipped
        return warp
    with timer.stage("dense warp", frames=len(plan.keyframes)) as rec:
        warp, dense_metrics = dense_warp(warp, new, reference, plan, config)
        rec.extra.update(dense_metrics)
    return warp


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
    keyframes = pair_keyframes(
        reference,
        new,
        config,
        index_path=index_path,
        new_index_path=new_index_path,
        timer=timer,
        progress=progress,
    )
    ref_index, ref_info, new_result = keyframes.reference_index, keyframes.reference_info, keyframes.new
    new_config = keyframes.new_config
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
    if wants_learned_features(alignment.warp, config):
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
    different_trails = alignment.gps_map is not None and not alignment.gps_map.same_trail
    if not alignment.warp.ok and not different_trails:
        with timer.stage("sequence", frames=len(new_result.index)) as rec:
            alignment.warp = sequence_fallback(alignment.warp, ref_index, new_result.index, config)
            rec.extra.update(alignment.warp.metrics.get("sequence") or {})
    if not alignment.warp.ok and alignment.gps_map is not None:
        # Where vision verified too little but both runs' GPS rides the same trail: GPS alone.
        alignment.warp = gps_fallback(alignment.gps_map, alignment.warp, new_result.index, ref_index, config)
    alignment.warp.meta.setdefault("model", model_name(alignment.warp))
    if alignment.warp.ok and alignment.warp.meta["model"] != "gps":
        alignment.warp = densify_warp(alignment, reference, new_config, timer=timer)
    # The files as found now (an index may have been built where the reference lay before).
    alignment.warp.meta["reference"]["path"] = str(ref_info.path.resolve())
    alignment.warp.meta["reference"].update(chapter_facts(ref_info))
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
        keyframes.reference,
        new_result,
        out_dir,
        files,
        transferred,
        gps_mode=alignment.extra["gps"]["mode"],
    )


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
    return learned if choose_features(orb.warp, learned.warp) is learned.warp else orb

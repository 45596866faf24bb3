"""Keyframes of a run: one decode pass sampled by time, local features and thumbnails of each frame.

`extract_keyframes` is the stage's entry point (its decode and feature halves published to the
caller's `StageTimer`); `pair_keyframes` gives both runs' keyframes for one alignment, from their
index files where those fit. Also here: how an index was sampled (`config_for_index`,
`indexes_comparable`, `index_feature_kind`), the new run's keyframes from its own index file
(`indexed_keyframes`), which features an alignment starts with (`first_feature_kind`), whether key
frames alone sample a video densely enough (`choose_keyframes_only`), and the features of every
frame inside short windows at full rate (`window_features`, for marker timing and the dense warp).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mtbsync import __version__
from mtbsync.config import SyncConfig
from mtbsync.errors import ConfigError, IndexFileError
from mtbsync.features.extractors import FEATURE_KINDS, Extractor, empty_features, make_extractor
from mtbsync.features.index import THUMB_SIZE, FeatureIndex, load_index
from mtbsync.io.sources import chapter_facts
from mtbsync.io.video import (
    DecodeReport,
    VideoInfo,
    VideoSource,
    chapter_paths,
    find_proxy,
    iter_sampled_frames,
    iter_window_frames,
    keyframe_interval,
    prefetch,
    probe,
    video_label,
)
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


@dataclass
class KeyframeExtraction:
    """A `KeyframeResult` and the busy time of its two overlapped halves, for the caller to publish.

    Attributes:
        result: The index, the probed video and the decode report.
        decode_clock: Busy time of decoding (a background thread).
        feature_clock: Busy time of feature extraction.
        name: The video's name for the timing records (the file, or the recording's label).
    """

    result: KeyframeResult
    decode_clock: BusyClock
    feature_clock: BusyClock
    name: str


def extract_keyframe_index(
    video: VideoSource,
    config: SyncConfig,
    kind: str,
    *,
    progress: Progress = _no_progress,
    label: str = "",
) -> KeyframeExtraction:
    """Decode ``video`` once, sampling keyframes by time, and compute their local features.

    Decoding runs in a background thread, overlapped with feature extraction; memory stays bounded.
    Each half measures its busy time with a `BusyClock` (the pipeline publishes them).

    Args:
        video: The run's video: one file, or the chapter files of one recording in order (then
            keyframe times are on the joined timeline, as the recording's GPS is).
        config: Parameters.
        kind: ``orb`` or ``xfeat``.
        progress: Progress callback.
        label: Prefix of the progress stage (``"reference "``).

    Returns:
        The keyframe index with how it was decoded, and the two busy clocks.

    Raises:
        MediaError: The video cannot be read.
    """
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
        **chapter_facts(info),
    }
    index = FeatureIndex.from_frames(times, features, thumbs, image_size, video_facts, params)
    return KeyframeExtraction(KeyframeResult(index, info, report), decode_clock, feature_clock, name)


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

    `extract_keyframe_index` (its arguments, result and errors) with its two overlapped halves'
    busy times published as the stages ``decode`` and ``features``; ``label`` also prefixes the
    timing records, and ``kind`` None is the configured kind (``auto`` starts with ORB).
    """
    kind = kind or first_feature_kind(config)
    done = extract_keyframe_index(video, config, kind, progress=progress, label=label)
    report = done.result.report
    timer.add_busy(
        "decode",
        done.decode_clock,
        frames=report.decoded_frames,
        device="gpu" if report.decoder == "nvdec" else "cpu",
        extra={"video": label or done.name, "decoder": report.decoder},
    )
    timer.add_busy(
        "features" if kind == "orb" else f"features {kind}",
        done.feature_clock,
        frames=len(done.result.index),
        extra={"video": label or done.name, "kind": kind},
    )
    return done.result


def first_feature_kind(config: SyncConfig) -> str:
    """The features an alignment starts with: the configured kind, ORB for ``auto`` (the cascade
    adds learned features only where ORB verifies too little).

    Args:
        config: Parameters (``config.features.kind``).

    Returns:
        ``orb`` or a learned kind.

    Raises:
        ConfigError: An unknown kind.
    """
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


def choose_keyframes_only(video: VideoSource, config: SyncConfig) -> bool:
    """Whether decoding key frames only samples ``video`` densely enough (see `DecodeConfig.mode`).

    Args:
        video: The video to decode.
        config: Parameters (``config.decode.mode`` and ``sample_fps``).

    Returns:
        True to decode key frames only.

    Raises:
        ConfigError: An unknown decode mode.
    """
    mode = config.decode.mode
    if mode not in {"auto", "full", "keyframes"}:
        raise ConfigError(f"unknown decode mode {mode!r}; choose auto, full or keyframes")
    if mode != "auto":
        return mode == "keyframes"
    interval = keyframe_interval(video)
    # Key frames at least ~60% as frequent as the requested sampling rate are dense enough: the path
    # only needs a place every half second or so, and markers are timed at full rate anyway.
    return interval is not None and interval <= 1.0 / (0.6 * config.decode.sample_fps) + 1e-6


def config_for_index(config: SyncConfig, index: FeatureIndex) -> SyncConfig:
    """The configuration a new run must be decoded with to be comparable with ``index``.

    Args:
        config: Parameters.
        index: The reference index (its ``params`` say how it was sampled).

    Returns:
        ``config`` with the index's sampling rate, feature size and feature parameters.
    """
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
    """The kind of features an index holds.

    Args:
        index: A keyframe index.

    Returns:
        ``orb`` (also for indexes written before learned features) or the learned kind.
    """
    return str(index.params.get("features", {}).get("kind", "orb"))


def indexes_comparable(index: FeatureIndex, reference: FeatureIndex) -> bool:
    """Whether an index was sampled like a reference index (same rate, size and features).

    Args:
        index: The new run's index.
        reference: The reference run's index.

    Returns:
        True when their keyframes can be matched against each other.
    """
    keys = ("sample_fps", "long_side", "features")
    return all(index.params.get(k) == reference.params.get(k) for k in keys)


def indexed_keyframes(
    info: VideoInfo, index_path: str | Path, reference: FeatureIndex
) -> KeyframeResult | None:
    """The new run's keyframes from its own index file (the service builds one at ingest).

    Args:
        info: The new run's probed video (the index must be of it).
        index_path: The new run's index file.
        reference: The reference index (the new index must be sampled like it).

    Returns:
        The keyframes, or None when the file is not usable (unreadable, of another video: logged)
        or not sampled like ``reference``: the run is then decoded.
    """
    try:
        index = load_index(index_path, expected_identity=info.identity)
    except IndexFileError as exc:
        log.info("not using the new run's index: %s", exc)
        return None
    if not indexes_comparable(index, reference):
        return None
    report = DecodeReport(source=info.path, mode=str(index.params.get("decode_mode", "index")))
    return KeyframeResult(index=index, info=info, report=report)


@dataclass
class KeyframePair:
    """The keyframes of both runs of one alignment, each loaded from an index file or decoded.

    Attributes:
        reference: The reference run's decoded keyframes, or None when its index file was loaded.
        reference_index: The reference run's keyframe index (loaded or decoded).
        reference_info: The reference video, probed.
        new: The new run's keyframes (from its own index file when usable, else decoded).
        new_config: The parameters the new run is sampled and aligned with (`config_for_index`).
    """

    reference: KeyframeResult | None
    reference_index: FeatureIndex
    reference_info: VideoInfo
    new: KeyframeResult
    new_config: SyncConfig


def pair_keyframes(
    reference: VideoSource,
    new: VideoSource,
    config: SyncConfig,
    *,
    index_path: str | Path | None,
    new_index_path: str | Path | None,
    timer: StageTimer,
    progress: Progress = _no_progress,
) -> KeyframePair:
    """Both runs' keyframes: from their index files where given and usable, else decoded.

    A loaded index is timed as the stage ``load index``; a decoded run as `extract_keyframes`'
    stages. The new run is sampled like the reference index (`config_for_index`), and its own index
    is used only when it is of this video and sampled like that (`indexed_keyframes`).

    Args:
        reference: The reference run's video (one file, or the chapter files of one recording).
        new: The new run's video, the same way.
        config: Parameters.
        index_path: The reference run's index file, or None: decoded.
        new_index_path: The new run's index file, or None: decoded.
        timer: Stage timer.
        progress: Progress callback.

    Returns:
        The reference's and the new run's keyframes, and the new run's parameters.

    Raises:
        MediaError: An unreadable video.
        IndexFileError: An unreadable reference index, or one of another video.
    """
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
    new_result = None
    if new_index_path is not None:
        new_info = probe(new)
        with timer.stage("load index") as rec:
            rec.extra["video"] = "new "
            new_result = indexed_keyframes(new_info, new_index_path, ref_index)
    if new_result is None:
        new_result = extract_keyframes(new, new_config, timer=timer, progress=progress, label="new ")
    return KeyframePair(ref_result, ref_index, ref_info, new_result, new_config)


def window_features(
    video: VideoSource, windows: list[tuple[float, float]], long_side: int, extractor: Extractor
) -> tuple[np.ndarray, list]:
    """Times and local features of every frame inside ``windows`` (full frame rate).

    Images are dropped as soon as their features are computed (decoding overlapped), so memory
    follows the number of window frames' features, not their pixels.

    Args:
        video: One file, or the chapter files of one recording (times on the joined timeline).
        windows: (start, end) seconds, increasing and not overlapping.
        long_side: Long side of the decoded images (px).
        extractor: The feature extractor.

    Returns:
        (times, features): the frames' times and their `FrameFeatures`.
    """
    times, features = [], []
    for frame in prefetch(iter_window_frames(video, windows, long_side=long_side), depth=4):
        times.append(frame.t)
        features.append(extractor(frame.image))
    return np.array(times), features


def stack_features(features: list, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame features stacked as (keypoints, descriptors, offsets), the layout of an index.

    Args:
        features: `FrameFeatures` of each frame.
        kind: Their kind (for the empty layout when there are none).

    Returns:
        (keypoints, descriptors, offsets): frame k's rows are ``offsets[k]:offsets[k + 1]``.
    """
    counts = [len(f) for f in features]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    features = features or [empty_features(kind)]
    kp = np.concatenate([f.keypoints for f in features])
    desc = np.concatenate([f.descriptors for f in features])
    return kp, desc, offsets

"""Stage parameters as frozen dataclasses, and the named presets (`default`, `fast`, `accurate`).

Every stage takes its parameters from here so a run is fully described by one `SyncConfig`,
which is also written into the outputs (index file, timewarp.json) for reproducibility.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mtbsync.errors import ConfigError


@dataclass(frozen=True)
class DecodeConfig:
    """How frames are sampled and decoded.

    Attributes:
        sample_fps: Keyframes per second sampled by presentation time.
        max_side: Frames are resized so the long side is at most this many pixels.
        threads: Decoder threads (0 = let FFmpeg choose).
        mode: ``auto`` decodes only the codec's key frames when they come at least about as often as
            ``sample_fps`` (GoPro: ~3 per second), else every frame; ``full`` or ``keyframes`` force one.
        prefer_proxy: Use a GoPro .LRV proxy beside the MP4 when one exists (fast path).
    """

    sample_fps: float = 3.0
    max_side: int = 960
    threads: int = 0
    mode: str = "auto"
    prefer_proxy: bool = False


@dataclass(frozen=True)
class FeatureConfig:
    """Local features: ORB (binary, fast) and XFeat (learned, robust to mount, lens and light).

    Attributes:
        n_features: ORB keypoints per frame when the scene allows.
        clahe: Equalise contrast (CLAHE) before ORB detection; helps dark or flat frames.
        fast_threshold: ORB's FAST threshold; lowered automatically on sparse frames.
        feature_side: Long side (px) of the image features are computed on.
        kind: ``auto`` aligns with ORB and, where ORB verifies too little of the runs (another
            mount, lens or light), aligns again with learned XFeat features and keeps the better
            alignment; ``orb`` or ``xfeat`` force one.
        learned_features: XFeat keypoints per frame.
    """

    n_features: int = 800
    clahe: bool = True
    fast_threshold: int = 20
    feature_side: int = 640
    kind: str = "auto"
    learned_features: int = 1024


@dataclass(frozen=True)
class MatchConfig:
    """Descriptor matching and geometric verification.

    Attributes:
        ratio: Lowe's ratio test threshold.
        max_distance: Largest Hamming distance (of 256 bits) accepted as a match.
        ransac_reproj_px: RANSAC reprojection threshold, in pixels of the 640-px feature image.
        min_inliers: Fewer verified inliers than this means "no geometric agreement" (ORB).
        device: Compute device for Hamming matching: auto, cpu or gpu.
        learned_min_inliers: The same for learned features, whose fundamental-matrix check lets more
            chance matches through than ORB's homography (a point only has to lie near a line).
        learned_reproj_px: Sampson-distance threshold (px of the 640-px image) of that check.
    """

    ratio: float = 0.8
    max_distance: int = 80
    ransac_reproj_px: float = 4.0
    min_inliers: int = 12
    device: str = "auto"
    learned_min_inliers: int = 40
    learned_reproj_px: float = 2.0


@dataclass(frozen=True)
class PathConfig:
    """Coarse alignment: retrieval and the monotone path.

    Attributes:
        vocabulary_size: Visual words in the bag-of-words retrieval.
        max_speed_ratio: Fastest the new run may be relative to the reference (reference keyframes per new
            keyframe along the path).
        stop_penalty: Score cost of a step where the reference stands still (a stop in the new run).
    """

    vocabulary_size: int = 512
    max_speed_ratio: float = 3.0
    stop_penalty: float = 0.15


@dataclass(frozen=True)
class WarpGates:
    """Quality gates that decide whether an alignment is trusted (`ok`).

    Attributes:
        min_inlier_frac: Smallest fraction of path points that must be geometrically verified.
        max_p90: Largest 90th percentile of warp residuals (seconds of reference time).
        min_coverage: Smallest covered fraction of the shorter run.
        min_points: Fewest verified path points.
    """

    min_inlier_frac: float = 0.5
    max_p90: float = 0.5
    min_coverage: float = 0.2
    min_points: int = 6


@dataclass(frozen=True)
class SyncConfig:
    """Everything one alignment needs; presets below.

    Attributes:
        refine: Time markers at full frame rate (decoding short windows of both videos).
        refine_window_s: Least half-width (s of new-run time) of the window searched around each
            marker's warped time; it widens where the new rider is slow or the warp is uncertain.
        dense: Place every new keyframe among the reference's frames at full frame rate, so the
            warp between markers is accurate to about a frame: ``on``, ``off``, or ``auto`` (on
            while the reference frames to decode stay under `DENSE_AUTO_PIXELS`).
    """

    decode: DecodeConfig = field(default_factory=DecodeConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    match: MatchConfig = field(default_factory=MatchConfig)
    path: PathConfig = field(default_factory=PathConfig)
    gates: WarpGates = field(default_factory=WarpGates)
    refine: bool = True
    refine_window_s: float = 0.5
    dense: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-able data."""
        return asdict(self)

    def with_overrides(self, **sections: dict[str, Any]) -> SyncConfig:
        """A copy with some fields replaced, e.g. ``with_overrides(decode={"sample_fps": 2})``.

        Raises:
            ConfigError: An unknown section or field.
        """
        updated = self
        for section, values in sections.items():
            if not values:
                continue
            current = getattr(updated, section, None)
            if current is None:
                raise ConfigError(f"unknown configuration section {section!r}")
            try:
                updated = replace(updated, **{section: replace(current, **values)})
            except TypeError as exc:
                raise ConfigError(f"unknown option in {section}: {exc}") from None
        return updated


# Pixels of reference frames (frames x width x height) that ``dense="auto"`` decodes at most: about a
# minute of 1080p30, three of 720p, ten of 640x360. Longer references keep the keyframe warp unless
# ``dense="on"`` (the cost is a full decode of the covered part of the reference).
DENSE_AUTO_PIXELS = 4.0e9

PRESETS: dict[str, SyncConfig] = {
    "default": SyncConfig(),
    "fast": SyncConfig(
        decode=DecodeConfig(sample_fps=2.0, max_side=640),
        features=FeatureConfig(n_features=500, clahe=False, feature_side=480),
        refine=True,
        refine_window_s=0.34,
    ),
    "accurate": SyncConfig(
        decode=DecodeConfig(sample_fps=5.0),
        features=FeatureConfig(n_features=1200),
        refine_window_s=0.75,
    ),
}


def preset(name: str) -> SyncConfig:
    """The named preset.

    Raises:
        ConfigError: The name is not one of `PRESETS`.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None

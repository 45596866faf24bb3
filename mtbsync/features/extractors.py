"""The one place that turns a feature kind (``orb``, ``xfeat``) into a frame feature extractor."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mtbsync.config import FeatureConfig
from mtbsync.errors import ConfigError
from mtbsync.features.orb import FrameFeatures, OrbExtractor

FEATURE_KINDS = ("orb", "xfeat")
Extractor = Callable[[np.ndarray], FrameFeatures]


def make_extractor(kind: str, config: FeatureConfig, *, n_features: int | None = None) -> Extractor:
    """A reusable extractor of ``kind`` (not thread-safe: one per thread).

    Args:
        kind: ``orb`` or ``xfeat``.
        config: Feature parameters.
        n_features: Keypoints per frame instead of the configured number (full-rate marker timing
            asks for more).

    Raises:
        ConfigError: An unknown kind, or learned features without onnxruntime.
    """
    if kind == "orb":
        if n_features is not None:
            from dataclasses import replace

            config = replace(config, n_features=n_features)
        return OrbExtractor(config)
    if kind == "xfeat":
        from mtbsync.features.xfeat import XFeatExtractor

        return XFeatExtractor(n_features or config.learned_features)
    raise ConfigError(f"unknown feature kind {kind!r}; choose {', '.join(FEATURE_KINDS)} or auto")


def empty_features(kind: str) -> FrameFeatures:
    """No features, in the layout of ``kind`` (binary 32-byte or float 64-d descriptors)."""
    if kind == "xfeat":
        return FrameFeatures(np.zeros((0, 4), np.float32), np.zeros((0, 64), np.float32))
    return FrameFeatures(np.zeros((0, 4), np.float32), np.zeros((0, 32), np.uint8))


def is_learned(descriptors: np.ndarray) -> bool:
    """Whether descriptors are learned (float vectors compared by cosine), not binary (Hamming)."""
    return descriptors.dtype.kind == "f"

"""ORB keypoints and descriptors for one frame."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mtbsync.config import FeatureConfig

# Below this many keypoints a frame counts as sparse (dark, blurred, sky) and is retried
# with a lower FAST threshold so it still takes part in matching.
_SPARSE_FRACTION = 0.25
_RETRY_FAST_THRESHOLD = 5


@dataclass(frozen=True)
class FrameFeatures:
    """Features of one frame.

    Attributes:
        keypoints: ``float32`` array (n, 4): x, y (pixels of the feature image), angle (degrees), size.
        descriptors: ``uint8`` array (n, 32): ORB's 256-bit binary descriptors.
    """

    keypoints: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return int(self.descriptors.shape[0])


class OrbExtractor:
    """Reusable ORB detector (creating OpenCV objects per frame costs more than using them).

    Not thread-safe: give each thread its own extractor.
    """

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self._orb = cv2.ORB_create(
            nfeatures=config.n_features,
            scaleFactor=1.2,
            nlevels=8,
            edgeThreshold=19,
            patchSize=19,
            fastThreshold=config.fast_threshold,
        )
        self._orb_sparse = cv2.ORB_create(
            nfeatures=config.n_features,
            scaleFactor=1.2,
            nlevels=8,
            edgeThreshold=19,
            patchSize=19,
            fastThreshold=_RETRY_FAST_THRESHOLD,
        )
        self._clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)) if config.clahe else None

    def __call__(self, image: np.ndarray) -> FrameFeatures:
        """Detect and describe ``image`` (grey ``uint8``)."""
        if self._clahe is not None:
            image = self._clahe.apply(image)
        keypoints, descriptors = self._orb.detectAndCompute(image, None)
        if len(keypoints) < _SPARSE_FRACTION * self.config.n_features:
            retry_kp, retry_desc = self._orb_sparse.detectAndCompute(image, None)
            if len(retry_kp) > len(keypoints):
                keypoints, descriptors = retry_kp, retry_desc
        if descriptors is None or not keypoints:
            return FrameFeatures(np.zeros((0, 4), np.float32), np.zeros((0, 32), np.uint8))
        kp = np.array([(k.pt[0], k.pt[1], k.angle, k.size) for k in keypoints], dtype=np.float32)
        return FrameFeatures(kp, np.ascontiguousarray(descriptors, dtype=np.uint8))

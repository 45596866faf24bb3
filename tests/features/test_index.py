from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mtbsync.config import FeatureConfig
from mtbsync.errors import IndexFileError
from mtbsync.features.index import FeatureIndex, load_index, save_index
from mtbsync.features.keyframes import indexed_keyframes
from mtbsync.features.orb import FrameFeatures, OrbExtractor
from mtbsync.io.video import VideoInfo


def _index(identity: str = "1:abc") -> FeatureIndex:
    rng = np.random.default_rng(0)
    features = [
        FrameFeatures(
            rng.uniform(0, 100, (n, 4)).astype(np.float32), rng.integers(0, 256, (n, 32), dtype=np.uint8)
        )
        for n in (5, 0, 7)
    ]
    thumbs = [np.zeros((36, 64), np.uint8)] * 3
    return FeatureIndex.from_frames(
        [0.0, 0.33, 0.67], features, thumbs, (640, 360), {"identity": identity}, {"a": 1}
    )


def test_round_trip(tmp_path: Path) -> None:
    index = _index()
    save_index(index, tmp_path / "i.npz")
    loaded = load_index(tmp_path / "i.npz", expected_identity="1:abc")
    assert len(loaded) == 3
    assert loaded.frame(1).descriptors.shape == (0, 32)
    assert np.array_equal(loaded.frame(2).descriptors, index.frame(2).descriptors)
    assert loaded.image_size == (640, 360)
    assert list(tmp_path.iterdir()) == [tmp_path / "i.npz"]  # no temp files left behind


def test_refuses_index_of_another_video(tmp_path: Path) -> None:
    save_index(_index("1:abc"), tmp_path / "i.npz")
    with pytest.raises(IndexFileError, match="built for"):
        load_index(tmp_path / "i.npz", expected_identity="2:def")


def test_refuses_other_schema_and_garbage(tmp_path: Path) -> None:
    import mtbsync.features.index as module

    save_index(_index(), tmp_path / "i.npz")
    original = module.INDEX_SCHEMA_VERSION
    module.INDEX_SCHEMA_VERSION = original + 1
    try:
        with pytest.raises(IndexFileError, match="schema version"):
            load_index(tmp_path / "i.npz")
    finally:
        module.INDEX_SCHEMA_VERSION = original
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(IndexFileError, match="not a readable"):
        load_index(tmp_path / "junk.npz")


def test_the_new_runs_own_index_is_used_only_when_it_fits(tmp_path: Path, caplog) -> None:
    path = save_index(_index("1:new"), tmp_path / "new.npz")
    info = VideoInfo(tmp_path / "new.mp4", 640, 360, Fraction(30), 1.0, 30, "h264", "1:new")
    found = indexed_keyframes(info, path, _index("1:ref"))
    assert found is not None and found.info is info and len(found.index) == 3
    assert found.report.source == info.path and found.report.mode == "index"
    # Sampled otherwise than the reference: decoded instead.
    other = _index("1:ref")
    other.params["sample_fps"] = 5.0
    assert indexed_keyframes(info, path, other) is None
    # Of another video: decoded instead, and the log says why.
    of_another = save_index(_index("1:other"), tmp_path / "other.npz")
    with caplog.at_level(logging.INFO, logger="mtbsync"):
        assert indexed_keyframes(info, of_another, _index("1:ref")) is None
    assert any(m.startswith("not using the new run's index: ") for m in caplog.messages)


def test_orb_handles_flat_and_textured_frames() -> None:
    extractor = OrbExtractor(FeatureConfig(n_features=300))
    flat = extractor(np.full((180, 320), 90, np.uint8))
    assert len(flat) == 0 and flat.descriptors.shape == (0, 32)
    rng = np.random.default_rng(0)
    textured = extractor(rng.integers(0, 255, (180, 320), dtype=np.uint8))
    assert 100 <= len(textured) <= 300
    assert textured.keypoints.shape == (len(textured), 4)

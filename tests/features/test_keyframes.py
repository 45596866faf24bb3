"""A run's keyframes: one decode pass published as two timed stages; both runs' from index files that fit."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import texture_frames, write_clip

from mtbsync.config import preset
from mtbsync.errors import IndexFileError
from mtbsync.features.index import save_index
from mtbsync.features.keyframes import config_for_index, extract_keyframes, pair_keyframes
from mtbsync.timing import StageTimer


def test_extract_keyframes_reports_stages_and_identity(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "k.mp4", texture_frames(90), gop=9)
    timer = StageTimer()
    seen = []
    timer.subscribe(seen.append)
    result = extract_keyframes(clip, preset("default"), timer=timer)
    assert result.report.mode == "keyframes"
    assert len(result.index) == 10  # key frames every 0.3 s over 3 s
    assert np.all(np.diff(result.index.times) > 0)
    assert result.index.video["identity"] == result.info.identity
    assert [r.name for r in seen] == ["decode", "features"]
    assert seen[1].frames == len(result.index)


def test_pair_keyframes_loads_the_index_files_that_fit_and_decodes_the_rest(tmp_path: Path, caplog) -> None:
    config = preset("default")
    reference = write_clip(tmp_path / "ref.mp4", texture_frames(90), gop=9)
    new = write_clip(tmp_path / "new.mp4", texture_frames(90, seed=1), gop=9)

    def pair(index_path: Path | None, new_index_path: Path | None):
        timer = StageTimer()
        keyframes = pair_keyframes(
            reference, new, config, index_path=index_path, new_index_path=new_index_path, timer=timer
        )
        return keyframes, [(r.name, r.extra.get("video")) for r in timer.records]

    decoded, stages = pair(None, None)
    assert stages == [
        ("decode", "reference "),
        ("features", "reference "),
        ("decode", "new "),
        ("features", "new "),
    ]
    assert decoded.reference is not None and decoded.reference_index is decoded.reference.index
    assert decoded.reference_info == decoded.reference.info
    assert decoded.new_config == config_for_index(config, decoded.reference_index)
    ref_file = save_index(decoded.reference_index, tmp_path / "ref.npz")
    new_file = save_index(decoded.new.index, tmp_path / "new.npz")

    loaded, stages = pair(ref_file, new_file)
    assert stages == [("load index", None), ("load index", "new ")]  # nothing decoded
    assert loaded.reference is None
    np.testing.assert_array_equal(loaded.reference_index.times, decoded.reference_index.times)
    assert loaded.reference_info.identity == decoded.reference_info.identity
    np.testing.assert_array_equal(loaded.new.index.times, decoded.new.index.times)

    # The new run's "own" index is of another video: not used, the run is decoded.
    with caplog.at_level(logging.INFO, logger="mtbsync"):
        _, stages = pair(ref_file, ref_file)
    assert stages == [("load index", None), ("load index", "new "), ("decode", "new "), ("features", "new ")]
    assert any("not using the new run's index" in r.getMessage() for r in caplog.records)
    # A reference index of another video is refused.
    with pytest.raises(IndexFileError):
        pair(new_file, None)

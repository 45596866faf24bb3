"""Library-level pipeline behaviour not covered through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import texture_frames, write_clip

from mtbsync.config import SyncConfig, preset
from mtbsync.errors import ConfigError
from mtbsync.io.video import keyframe_interval
from mtbsync.pipeline import choose_keyframes_only, extract_keyframes
from mtbsync.timing import StageTimer


@pytest.mark.parametrize(("gop", "expected"), [(9, True), (45, False)])
def test_keyframes_only_when_key_frames_are_dense(tmp_path: Path, gop: int, expected: bool) -> None:
    clip = write_clip(tmp_path / f"g{gop}.mp4", texture_frames(120), gop=gop)
    assert keyframe_interval(clip) == pytest.approx(gop / 30, abs=1e-6)
    assert choose_keyframes_only(clip, SyncConfig()) is expected
    forced = SyncConfig().with_overrides(decode={"mode": "full"})
    assert choose_keyframes_only(clip, forced) is False


def test_unknown_decode_mode_is_a_config_error(clip_30fps: Path) -> None:
    with pytest.raises(ConfigError, match="decode mode"):
        choose_keyframes_only(clip_30fps, SyncConfig().with_overrides(decode={"mode": "sometimes"}))


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


def test_unknown_preset_and_option() -> None:
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("turbo")
    with pytest.raises(ConfigError, match="unknown option"):
        SyncConfig().with_overrides(decode={"colour": 1})

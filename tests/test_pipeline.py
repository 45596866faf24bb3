"""Library-level pipeline behaviour not covered through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import texture_frames, write_clip

from mtbsync.config import SyncConfig, preset
from mtbsync.errors import ConfigError
from mtbsync.features.keyframes import choose_keyframes_only
from mtbsync.io.video import keyframe_interval
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


def test_unknown_preset_and_option() -> None:
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("turbo")
    with pytest.raises(ConfigError, match="unknown option"):
        SyncConfig().with_overrides(decode={"colour": 1})


def test_sync_uses_the_new_runs_own_index_instead_of_decoding_it_again(sample_pair, tmp_path: Path) -> None:
    from mtbsync.pipeline import build_index, sync

    config = preset("default")
    ref_index = tmp_path / "ref.npz"
    new_index = tmp_path / "new.npz"
    build_index(sample_pair.reference, ref_index, config, timer=StageTimer())
    build_index(sample_pair.new, new_index, config, timer=StageTimer())

    def run(out: str, new_index_path: Path | None):
        timer = StageTimer()
        result = sync(
            sample_pair.reference,
            sample_pair.new,
            tmp_path / out,
            config,
            index_path=ref_index,
            new_index_path=new_index_path,
            timer=timer,
        )
        decoded_new = [r for r in timer.records if r.name == "decode" and r.extra.get("video") == "new "]
        return result.alignment.warp, decoded_new

    decoded_warp, decoded = run("decoded", None)
    indexed_warp, not_decoded = run("indexed", new_index)
    assert decoded and not not_decoded  # the index replaced the new run's decode
    np.testing.assert_allclose(indexed_warp.t_ref, decoded_warp.t_ref)
    # An index of another video is not used: the run is decoded as before.
    _, decoded_again = run("other", ref_index)
    assert decoded_again

"""Browser-playable copies: the file itself when H.264, the GoPro .LRV when present, else a made proxy."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import texture_frames

from mtbsync.errors import MediaError
from mtbsync.io.proxy import make_h264_proxy, playable_video
from mtbsync.io.video import probe


def _mpeg4_clip(path: Path, n: int = 45) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        for image in texture_frames(n, seed=4):
            frame = av.VideoFrame.from_ndarray(np.stack([image] * 3, axis=-1), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_an_h264_file_is_served_as_it_is(clip_30fps: Path, tmp_path: Path) -> None:
    assert playable_video(clip_30fps, tmp_path / "cache") == clip_30fps
    assert not (tmp_path / "cache").exists()


def test_the_gopro_lrv_is_preferred(clip_30fps: Path, tmp_path: Path) -> None:
    video = tmp_path / "GX010001.MP4"
    _mpeg4_clip(video)
    lrv = tmp_path / "GL010001.LRV"
    shutil.copy(clip_30fps, lrv)
    assert playable_video(video, tmp_path / "cache") == lrv


def test_a_proxy_is_made_once_and_keeps_the_times(tmp_path: Path) -> None:
    source = _mpeg4_clip(tmp_path / "run.mp4")
    proxy = playable_video(source, tmp_path / "cache", long_side=160)
    info, src_info = probe(proxy), probe(source)
    assert info.codec == "h264"
    assert (info.width, info.height) == (160, 90)
    assert info.duration == pytest.approx(src_info.duration, abs=0.1)
    assert info.frame_count == pytest.approx(src_info.frame_count, abs=1)
    mtime = proxy.stat().st_mtime_ns
    assert playable_video(source, tmp_path / "cache") == proxy
    assert proxy.stat().st_mtime_ns == mtime  # not made twice
    assert not list((tmp_path / "cache").glob(".*.part"))


def test_no_cache_folder_means_no_proxy(tmp_path: Path) -> None:
    source = _mpeg4_clip(tmp_path / "run.mp4")
    with pytest.raises(MediaError, match=r"not H\.264"):
        playable_video(source, None)


def test_an_unreadable_source_is_a_media_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError):
        make_h264_proxy(bad, tmp_path / "out.mp4")

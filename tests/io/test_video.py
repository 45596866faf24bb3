from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import texture_frames, write_clip

from mtbsync.errors import MediaError
from mtbsync.io.video import (
    DecodeReport,
    find_proxy,
    iter_sampled_frames,
    iter_window_frames,
    merge_windows,
    prefetch,
    probe,
    scaled_size,
    video_identity,
)


def test_probe_reads_size_rate_and_identity(clip_30fps: Path) -> None:
    info = probe(clip_30fps)
    assert (info.width, info.height) == (320, 180)
    assert info.fps == Fraction(30)
    assert info.frame_count == 90
    assert info.duration == pytest.approx(3.0, abs=0.05)
    assert info.identity == video_identity(clip_30fps)


def test_identity_changes_with_content(clip_30fps: Path, clip_faststart: Path) -> None:
    assert video_identity(clip_30fps) != video_identity(clip_faststart)


def test_sampling_by_time_picks_the_frame_nearest_each_instant(clip_30fps: Path) -> None:
    report = DecodeReport()
    frames = list(iter_sampled_frames(clip_30fps, sample_fps=3, long_side=160, report=report))
    assert len(frames) == 9
    assert [f.index for f in frames] == list(range(9))
    for k, frame in enumerate(frames):
        assert abs(frame.t - k / 3) <= 0.5 / 30 + 1e-9
        assert frame.image.shape == (90, 160)
        assert frame.image.dtype == np.uint8
    assert report.decoded_frames == 90
    assert not report.truncated


def test_sampling_is_vfr_safe(tmp_path: Path) -> None:
    # Irregular timestamps (ms): bursts and gaps, as a variable-frame-rate phone or camera writes.
    pts = [0, 40, 70, 160, 170, 180, 400, 420, 700, 980, 1000, 1330, 1700, 2010]
    clip = write_clip(
        tmp_path / "vfr.mp4", texture_frames(len(pts)), fps=Fraction(30), pts=pts, time_base=Fraction(1, 1000)
    )
    frames = list(iter_sampled_frames(clip, sample_fps=4, long_side=160))
    times = [round(f.t, 3) for f in frames]
    assert times == sorted(times)
    # Each sampling instant k/4 gets the nearest frame; a frame serves one instant at most.
    assert times == [0.0, 0.18, 0.42, 0.7, 1.0, 1.33, 1.7, 2.01]


def test_window_frames_cover_the_windows_at_full_rate(clip_30fps: Path) -> None:
    frames = list(iter_window_frames(clip_30fps, [(2.0, 2.2), (0.5, 0.6)], long_side=160, seek_gap=0.1))
    times = np.array([f.t for f in frames])
    assert np.all(np.diff(times) > 0)
    assert np.sum((times >= 0.49) & (times <= 0.61)) == 4
    assert np.sum((times >= 1.99) & (times <= 2.21)) == 7


def test_merge_windows() -> None:
    assert merge_windows([(5, 6), (0, 1), (1.5, 2)], gap=1.0) == [(0, 2), (5, 6)]


def test_scaled_size_keeps_aspect_and_even_sides() -> None:
    assert scaled_size(1920, 1080, 640) == (640, 360)
    assert scaled_size(848, 480, 640) == (640, 362)
    assert scaled_size(480, 848, 640) == (362, 640)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "file not found"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty"),
        (lambda p: (p.write_text("name,t_ref\nx,1\n"), p)[1], "cannot read the container"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path / "bad.mp4")
    with pytest.raises(MediaError, match=message) as info:
        probe(path)
    assert "\n" not in str(info.value)


def test_file_without_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 48000
        for _ in range(10):
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(MediaError, match="no video stream"):
        probe(path)
    with pytest.raises(MediaError, match="no video stream"):
        list(iter_sampled_frames(path, sample_fps=3, long_side=160))


def test_truncated_file_without_index_is_refused(clip_30fps: Path, tmp_path: Path) -> None:
    data = clip_30fps.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the MP4 index (moov) is at the end: gone
    with pytest.raises(MediaError, match="truncated"):
        list(iter_sampled_frames(cut, sample_fps=3, long_side=160))


def test_truncated_faststart_file_decodes_what_is_readable(clip_faststart: Path, tmp_path: Path) -> None:
    data = clip_faststart.read_bytes()
    cut = tmp_path / "cut_fast.mp4"
    cut.write_bytes(data[: int(len(data) * 0.5)])
    report = DecodeReport()
    frames = list(iter_sampled_frames(cut, sample_fps=10, long_side=160, report=report))
    assert 0 < len(frames) < 30
    assert report.truncated
    assert report.warnings


def test_find_proxy_pairs_gopro_names(tmp_path: Path, clip_30fps: Path) -> None:
    video = tmp_path / "GX010123.MP4"
    shutil.copy(clip_30fps, video)
    assert find_proxy(video) is None
    (tmp_path / "GL010123.LRV").write_bytes(b"x")
    assert find_proxy(video) == tmp_path / "GL010123.LRV"


def test_prefetch_keeps_order_and_reraises() -> None:
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(prefetch(failing()))


def test_prefetch_consumer_can_stop_early() -> None:
    produced = []

    def endless():
        k = 0
        while True:
            produced.append(k)
            yield k
            k += 1

    for item in prefetch(endless(), depth=2):
        if item == 5:
            break
    assert len(produced) < 20

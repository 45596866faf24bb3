"""NVDEC hardware decoding: a no-op without a GPU, and a one-line fallback to software when it cannot open."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mtbsync.errors import MediaError
from mtbsync.io import video
from mtbsync.io.video import DecodeReport, iter_sampled_frames, iter_window_frames

_NO_GPU_HERE = not video._gpu_device_present()


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MTBSYNC_HWDECODE", raising=False)
    monkeypatch.delenv("MTBSYNC_NO_GPU", raising=False)
    video._reset_hardware_decoding()
    yield
    video._reset_hardware_decoding()


def _decode(path: Path) -> tuple[list[np.ndarray], list[float], DecodeReport]:
    report = DecodeReport()
    frames = list(iter_sampled_frames(path, sample_fps=5, long_side=160, report=report))
    return [f.image for f in frames], [f.t for f in frames], report


@pytest.mark.skipif(not _NO_GPU_HERE, reason="a GPU is present: auto would try NVDEC")
def test_without_a_gpu_nothing_is_tried_and_nothing_is_logged(
    clip_30fps: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert not video.hardware_decoding_wanted()
    with caplog.at_level(logging.DEBUG, logger="mtbsync"):
        images, _, report = _decode(clip_30fps)
    assert report.decoder == "software" and len(images) == 15
    assert not any("NVDEC" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(not _NO_GPU_HERE, reason="needs a machine where NVDEC cannot open")
def test_forced_nvdec_falls_back_to_software_with_one_line(
    clip_30fps: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    want_images, want_times, _ = _decode(clip_30fps)
    monkeypatch.setenv("MTBSYNC_HWDECODE", "cuda")
    if "cuda" not in video.hwdevices_available():
        pytest.skip("this FFmpeg build has no CUDA hwaccel")
    assert video.hardware_decoding_wanted()
    with caplog.at_level(logging.INFO, logger="mtbsync"):
        images, times, report = _decode(clip_30fps)  # NVDEC fails to open: software, one line
        again = list(iter_window_frames(clip_30fps, [(1.0, 1.2)], long_side=160))  # not retried
    assert report.decoder == "software"
    assert times == want_times
    assert all(np.array_equal(a, b) for a, b in zip(images, want_images, strict=True))
    assert len(again) >= 6 and again[0].t == pytest.approx(1.0, abs=0.02)
    lines = [r.getMessage() for r in caplog.records if "NVDEC" in r.getMessage()]
    assert len(lines) == 1 and "decoding in software" in lines[0]
    assert not video.hardware_decoding_wanted()  # decided for the rest of the process


def test_no_gpu_flag_and_off_turn_hardware_decoding_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTBSYNC_HWDECODE", "cuda")
    monkeypatch.setenv("MTBSYNC_NO_GPU", "1")
    assert not video.hardware_decoding_wanted()
    monkeypatch.setenv("MTBSYNC_NO_GPU", "0")
    monkeypatch.setenv("MTBSYNC_HWDECODE", "off")
    assert not video.hardware_decoding_wanted()


def test_missing_file_is_still_a_media_error_with_nvdec_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTBSYNC_HWDECODE", "cuda")
    with pytest.raises(MediaError, match="file not found"):
        _decode(tmp_path / "nope.mp4")
    video._reset_hardware_decoding()

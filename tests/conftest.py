"""Shared fixtures: small clips written with PyAV, made once per session."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

# The API and dashboard tests' fixtures (live server, headless Chromium).
pytest_plugins = ["web_fixtures"]


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    *,
    fps: Fraction = Fraction(30),
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    faststart: bool = False,
    gop: int = 15,
) -> Path:
    """Encode grey frames to H.264 MP4 (optionally with explicit, e.g. irregular, timestamps)."""
    height, width = frames[0].shape[:2]
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "20", "g": str(gop)}
        if time_base is not None:
            stream.codec_context.time_base = time_base
        for k, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.stack([image] * 3, axis=-1), format="rgb24")
            if pts is not None:
                frame.pts = pts[k]
                frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def texture_frames(n: int, width: int = 320, height: int = 180, seed: int = 0) -> list[np.ndarray]:
    """A sliding random texture: consecutive frames share most of their content."""
    rng = np.random.default_rng(seed)
    import cv2

    tile = rng.integers(0, 255, (height // 4, (width + 4 * n) // 4), dtype=np.uint8)
    tile = cv2.resize(tile, (tile.shape[1] * 4, height), interpolation=cv2.INTER_LINEAR)
    tile = cv2.GaussianBlur(tile, (3, 3), 0)
    return [np.ascontiguousarray(tile[:, 4 * k : 4 * k + width]) for k in range(n)]


@pytest.fixture(scope="session")
def clip_30fps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s, 320x180, 30 fps, moov at the end (a plain MP4)."""
    return write_clip(tmp_path_factory.mktemp("clips") / "clip30.mp4", texture_frames(90))


@pytest.fixture(scope="session")
def clip_faststart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s, 320x180, 30 fps, moov first (so a truncated copy still opens)."""
    return write_clip(
        tmp_path_factory.mktemp("clips") / "fast.mp4", texture_frames(90, seed=1), faststart=True
    )


@pytest.fixture(autouse=True, scope="session")
def _private_catalog(tmp_path_factory: pytest.TempPathFactory):
    """Commands record into a throw-away catalog (MTBSYNC_DB), never the user's own."""
    import os

    previous = os.environ.get("MTBSYNC_DB")
    path = tmp_path_factory.mktemp("catalog") / "catalog.duckdb"
    os.environ["MTBSYNC_DB"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("MTBSYNC_DB", None)
    else:
        os.environ["MTBSYNC_DB"] = previous


@pytest.fixture(autouse=True)
def _fail_on_logged_errors(caplog: pytest.LogCaptureFixture) -> None:
    """A test that makes mtbsync log an ERROR fails: errors must be raised or handled, not buried."""
    yield
    errors = [
        r for r in caplog.get_records("call") if r.levelno >= logging.ERROR and r.name.startswith("mtbsync")
    ]
    assert not errors, f"mtbsync logged errors: {[r.getMessage() for r in errors]}"


@pytest.fixture(scope="session")
def sample_pair(tmp_path_factory: pytest.TempPathFactory):
    """A generated 14 s reference + time-warped new run with known truth (different size and rate)."""
    from mtbsync.samples import make_sample_pair

    return make_sample_pair(
        tmp_path_factory.mktemp("pair"),
        duration_s=14.0,
        seed=3,
        ref_size=(480, 270),
        new_size=(400, 224),
        ref_fps=30.0,
        new_fps=25.0,
        start_gate_wait_s=1.0,
    )


@pytest.fixture(scope="session")
def different_trail_pair(tmp_path_factory: pytest.TempPathFactory):
    """Two runs of two different generated trails."""
    from mtbsync.samples import make_different_trail_pair

    return make_different_trail_pair(tmp_path_factory.mktemp("other"), duration_s=10.0, seed=5)

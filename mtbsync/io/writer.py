"""Writing sample videos with PyAV: exact timestamps, a fixed GOP, atomic files.

Frame k of a video is stamped pts = k in a time base of 1/fps, so readers get back exactly k / fps
(the MP4 muxer scales the time base to at least 1/10000 without rounding: 1/30 -> 1/15360,
1001/30000 stays). Files are written under a temporary name in the same folder and renamed into
place only when complete, so a crash never leaves a half-written video under the final name.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from mtbsync.errors import ConfigError, MediaError

_COMMON_RATES = (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001), Fraction(120000, 1001))


def exact_fps(fps: float | Fraction | str) -> Fraction:
    """The exact frame rate meant by ``fps``: 29.97 -> 30000/1001, 25 -> 25, "30000/1001" -> itself.

    Raises:
        ConfigError: Not a positive rate.
    """
    try:
        value = Fraction(fps) if not isinstance(fps, float) else Fraction(fps).limit_denominator(1_000_000)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"frame rate {fps!r} is not a number") from None
    if value <= 0 or value > 1000:
        raise ConfigError(f"frame rate {fps} is out of range (0, 1000]")
    for rate in _COMMON_RATES:
        # NTSC rates are usually written rounded (29.97); the camera's real rate is the 1001 one.
        if abs(float(value) - float(rate)) < 0.006:
            return rate
    if value.denominator > 1001:
        value = value.limit_denominator(1001)
    return value


def default_gop(fps: Fraction) -> int:
    """GoPro-like keyframe interval: half a second."""
    return max(1, round(float(fps) / 2))


class VideoWriter:
    """Encode BGR frames to an H.264 (by default) MP4 with exact timestamps.

    Use as a context manager; the file appears at ``path`` only when the block ends without error.

    Args:
        path: Final file name (``.mp4``).
        size: (width, height), both even.
        fps: Exact frame rate.
        codec: FFmpeg encoder name (``libx264``; ``libx265``, ``mpeg4`` ... where FFmpeg has them).
        crf: Constant rate factor (x264/x265 quality; lower is better).
        gop: Keyframe interval in frames (None: half a second).
        preset: x264/x265 preset (None: ``superfast``, or ``ultrafast`` above 1280x720).
        threads: Encoder threads (0: FFmpeg's choice).

    Raises:
        ConfigError: Odd or too small size, or an encoder FFmpeg does not have.
    """

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int],
        fps: Fraction,
        *,
        codec: str = "libx264",
        crf: int = 23,
        gop: int | None = None,
        preset: str | None = None,
        threads: int = 0,
    ) -> None:
        width, height = size
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise ConfigError(f"video size {width}x{height} must be even and at least 16x16")
        self.path = Path(path)
        self.size = (width, height)
        self.fps = fps
        self.frames = 0
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        self._container = av.open(str(self._tmp), "w", format="mp4")
        try:
            stream = self._container.add_stream(codec, rate=fps)
        except (av.FFmpegError, ValueError) as exc:
            self._container.close()
            self._tmp.unlink(missing_ok=True)
            raise ConfigError(f"encoder {codec!r} is not available in this FFmpeg ({exc})") from None
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        time_base = Fraction(fps.denominator, fps.numerator)
        stream.codec_context.time_base = time_base
        gop = gop if gop is not None else default_gop(fps)
        stream.codec_context.gop_size = gop
        if threads:
            stream.codec_context.thread_count = threads
        options: dict[str, str] = {}
        if codec in ("libx264", "libx265"):
            if preset is None:
                # x264 costs as much as the rendering: superfast (with B-frames, like cameras) for
                # small videos, ultrafast (4x cheaper than veryfast) for big ones.
                preset = "ultrafast" if width * height > 1280 * 720 else "superfast"
            options = {"preset": preset, "crf": str(crf)}
            # A fixed GOP as cameras write it: no extra keyframes at scene cuts.
            params = f"keyint={gop}:min-keyint={gop}:scenecut=0"
            options["x264-params" if codec == "libx264" else "x265-params"] = params
        stream.options = options
        self._stream = stream
        self._time_base = time_base

    def write(self, bgr: np.ndarray) -> None:
        """Append one BGR ``uint8`` frame of the writer's size; it gets time frames / fps."""
        self.write_i420(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420))  # BT.601 limited range, as yuv420p

    def write_i420(self, yuv: np.ndarray) -> None:
        """Append one frame given as OpenCV's I420 layout: (height * 3 / 2, width) ``uint8``."""
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = self.frames
        frame.time_base = self._time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder, close the file and move it to its final name."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        if self.frames == 0:
            self._tmp.unlink(missing_ok=True)
            raise MediaError("no frames were written", path=self.path)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Close and delete the partial file."""
        with contextlib.suppress(av.FFmpegError, OSError):
            self._container.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def upscale_i420(bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``bgr`` converted to I420 and scaled to ``size`` plane by plane.

    Cheaper than scaling the BGR image and converting the big one: the chroma planes are scaled
    at a quarter of the output's pixels, and the conversion runs at the small size.
    """
    h, w = bgr.shape[:2]
    width, height = size
    small = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    out = np.empty((height * 3 // 2, width), np.uint8)
    out[:height] = cv2.resize(small[:h], size, interpolation=cv2.INTER_LINEAR)
    # I420 stores each chroma plane (h/2 x w/2) right after the luma, one after the other; OpenCV
    # shows the buffer as rows of width w, so the planes are read and written as flat runs (a
    # height that is not a multiple of 4 splits a row between them).
    chroma = (width // 2, height // 2)
    small_flat = small[h:].reshape(-1)
    n_small = (h // 2) * (w // 2)
    u = small_flat[:n_small].reshape(h // 2, w // 2)
    v = small_flat[n_small : 2 * n_small].reshape(h // 2, w // 2)
    out_flat = out[height:].reshape(-1)
    n_out = chroma[0] * chroma[1]
    out_flat[:n_out] = cv2.resize(u, chroma, interpolation=cv2.INTER_LINEAR).reshape(-1)
    out_flat[n_out : 2 * n_out] = cv2.resize(v, chroma, interpolation=cv2.INTER_LINEAR).reshape(-1)
    return out

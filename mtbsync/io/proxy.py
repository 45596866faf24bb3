"""Browser-playable videos: the GoPro .LRV proxy, the file itself when it is H.264, or a proxy we make.

Browsers cannot play HEVC (GoPro's default since the HERO6 at high rates), so the dashboard needs an
H.264 copy. GoPro cameras record one (.LRV) beside every chapter; when it is missing, a low-resolution
H.264 proxy is made once with PyAV into a cache folder, keyed by the source's identity, so a changed
file gets a new proxy and an unchanged one is never transcoded twice.

A recording split into chapters plays as one file: its chapters (their .LRV proxies when every chapter
has one) are joined into one H.264 proxy on the joined timeline, so the browser's time is the run's time.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av

from mtbsync.errors import MediaError
from mtbsync.io.video import (
    ChapteredVideo,
    VideoSource,
    chapter_paths,
    chaptered_video,
    find_proxy,
    probe,
    scaled_size,
)

log = logging.getLogger("mtbsync")

# Codecs every current browser plays in an MP4 (Chromium, Firefox, Safari).
BROWSER_CODECS = frozenset({"h264"})
PROXY_LONG_SIDE = 640
_PROXY_TIME_BASE = Fraction(1, 90000)


def is_browser_playable(path: str | Path) -> bool:
    """Whether a browser can play ``path`` as it is (an H.264 video).

    Raises:
        MediaError: The file is missing or not a video.
    """
    return probe(path).codec in BROWSER_CODECS


def proxy_path(video: VideoSource, cache_dir: str | Path) -> Path:
    """Where the proxy of ``video`` is (or would be) kept in ``cache_dir``: named by its identity.

    Raises:
        MediaError: The file is missing or not a video.
    """
    info = probe(video)
    digest = info.identity.split(":")[-1][:16]
    paths = chapter_paths(video)
    joined = f"+{len(paths) - 1}ch" if len(paths) > 1 else ""
    return Path(cache_dir) / f"{paths[0].stem}{joined}.{digest}.proxy.mp4"


def playable_video(
    video: VideoSource, cache_dir: str | Path | None, *, long_side: int = PROXY_LONG_SIDE
) -> Path:
    """The file to hand a browser for ``video``: its .LRV proxy, itself if H.264, else a made proxy.

    Args:
        video: The recording (MP4, any codec PyAV decodes), or its chapter files in order: chapters
            are joined into one proxy (made from their .LRV proxies when every chapter has one).
        cache_dir: Folder for made proxies; None forbids making one.
        long_side: Long side of a made proxy (pixels).

    Returns:
        An H.264 file showing the same moments at the same times.

    Raises:
        MediaError: The video is unreadable, or needs a proxy and ``cache_dir`` is None.
    """
    paths = chapter_paths(video)
    if len(paths) > 1:
        return _joined_proxy(paths, cache_dir, long_side=long_side)
    video = paths[0]
    lrv = find_proxy(video)
    if lrv is not None:
        try:
            if is_browser_playable(lrv):
                return lrv
        except MediaError:
            log.warning("%s: the GoPro proxy %s is unreadable; not using it", video, lrv.name)
    if is_browser_playable(video):
        return video
    if cache_dir is None:
        raise MediaError("is not H.264 and no proxy folder was given to make a playable copy", path=video)
    target = proxy_path(video, cache_dir)
    if target.exists():
        return target
    return make_h264_proxy(video, target, long_side=long_side)


def _joined_proxy(paths: tuple[Path, ...], cache_dir: str | Path | None, *, long_side: int) -> Path:
    """One H.264 proxy of a chaptered recording, from the chapters' .LRV files when all have one."""
    if cache_dir is None:
        raise MediaError("has several chapters and no proxy folder was given to join them", path=paths[0])
    target = proxy_path(paths, cache_dir)
    if target.exists():
        return target
    timeline = chaptered_video(paths)
    proxies = [find_proxy(p) for p in paths]
    if all(p is not None for p in proxies):
        timeline = timeline.with_paths(proxies)  # same timeline, far less to decode
    return make_h264_proxy(timeline, target, long_side=long_side)


def make_h264_proxy(
    src: VideoSource, dst: str | Path, *, long_side: int = PROXY_LONG_SIDE, crf: int = 28
) -> Path:
    """Transcode ``src`` to a small H.264 MP4 (keyframe every second, moov first), atomically.

    Frames keep their presentation times, so a time in the proxy is the same moment in the source;
    chapters are laid end to end at their starts on the joined timeline.

    Args:
        src: Source video, or its chapters (a sequence of files or a `ChapteredVideo`).
        dst: The proxy to write.
        long_side: Long side of the proxy (pixels); never upscaled.
        crf: x264 quality (lower is better).

    Returns:
        ``dst``.

    Raises:
        MediaError: The source cannot be decoded or the proxy cannot be written.
    """
    dst = Path(dst)
    # A ChapteredVideo keeps its own starts (e.g. the LRVs laid on the MP4s' clock).
    timeline = src if isinstance(src, ChapteredVideo) else chaptered_video(chapter_paths(src))
    first = timeline.paths[0]
    info = probe(first)
    width, height = scaled_size(info.width, info.height, min(long_side, max(info.width, info.height)))
    fps = info.fps or Fraction(30)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    log.info("%s: making a %dx%d H.264 proxy for the browser", first, width, height)
    current = first
    try:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "faststart"}) as out:
            stream = out.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = _PROXY_TIME_BASE
            # A keyframe every second keeps seeking in the browser quick.
            stream.options = {"preset": "veryfast", "crf": str(crf), "g": str(max(1, round(float(fps))))}
            last_pts = -1
            for current, offset in zip(timeline.paths, timeline.starts, strict=True):
                with av.open(str(current)) as source:
                    in_stream = source.streams.video[0]
                    in_stream.thread_type = "AUTO"
                    start = float(in_stream.start_time * in_stream.time_base) if in_stream.start_time else 0.0
                    for frame in source.decode(in_stream):
                        if frame.time is None:
                            continue
                        image = frame.reformat(width=width, height=height, format="yuv420p")
                        pts = round((frame.time - start + offset) / _PROXY_TIME_BASE)
                        if pts <= last_pts:  # a repeated timestamp would stall the muxer
                            continue
                        image.pts, image.time_base, last_pts = pts, _PROXY_TIME_BASE, pts
                        for packet in stream.encode(image):
                            out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        if last_pts < 0:
            raise MediaError("has no decodable frames; cannot make a proxy", path=first)
        os.replace(tmp, dst)
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(
            f"cannot make an H.264 proxy ({str(exc).splitlines()[0][:160]})", path=current
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return dst

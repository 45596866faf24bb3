"""Split a video into GoPro-style chapter files (tests, demos): ``GX01nnnn.MP4``, ``GX02nnnn.MP4``, ...

A GoPro camera cuts a long recording into chapters that play as one timeline: chapter k starts where
chapter k - 1 ends. `split_into_chapters` makes such a set from any video by re-encoding it at the
source's exact frame rate (`VideoWriter` stamps frame j of a chapter j / fps), so the joined timeline
of the chapters (`mtbsync.io.video.ChapteredVideo`) gives every frame its time in the source.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

from mtbsync.errors import ConfigError, MediaError
from mtbsync.io.video import iter_color_frames, probe
from mtbsync.io.writer import VideoWriter, exact_fps


def chapter_name(chapter: int, number: str = "0001", prefix: str = "GX") -> str:
    """The file name a GoPro (HERO6 and later) gives chapter ``chapter`` (1-based) of recording ``number``."""
    return f"{prefix}{chapter:02d}{number}.MP4"


def split_into_chapters(
    video: str | Path,
    out_dir: str | Path,
    cuts_s: Sequence[float],
    *,
    number: str = "0001",
    prefix: str = "GX",
    crf: int = 16,
    gop: int | None = None,
) -> list[Path]:
    """Write ``video`` as chapter files cut at ``cuts_s``: chapter k holds the frames in [cut k-1, cut k).

    Args:
        video: The source video (constant frame rate).
        out_dir: Folder for the chapters (created).
        cuts_s: Increasing cut times in seconds, inside the video; n cuts make n + 1 chapters. A cut
            falls before the first frame at or after it.
        number: The 4-digit recording number in the names.
        prefix: ``GX`` (HEVC cameras' names) or ``GH``.
        crf: x264 quality of the re-encode (lower is closer to the source).
        gop: Keyframe interval in frames (None: half a second).

    Returns:
        The chapter files in order.

    Raises:
        ConfigError: Cuts not increasing, outside the video, or leaving a chapter without frames.
        MediaError: The source cannot be read.
    """
    info = probe(video)
    cuts = [float(c) for c in cuts_s]
    if any(b <= a for a, b in pairwise(cuts)) or any(not 0 < c < info.duration for c in cuts):
        raise ConfigError(
            f"chapter cuts {cuts} must increase and lie inside the video (0, {info.duration:.2f} s)"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fps = exact_fps(info.fps)
    half_frame = 0.5 / float(fps)
    paths: list[Path] = []
    writer: VideoWriter | None = None
    try:
        for t, bgr in iter_color_frames(video):
            chapter = sum(t >= c - half_frame for c in cuts)  # 0-based chapter of this frame
            if chapter >= len(paths):
                if writer is not None:
                    writer.close()
                if chapter != len(paths):
                    raise ConfigError(f"chapter cuts {cuts} leave a chapter without frames")
                paths.append(out_dir / chapter_name(chapter + 1, number, prefix))
                size = (bgr.shape[1], bgr.shape[0])
                writer = VideoWriter(paths[-1], size, fps, crf=crf, gop=gop)
            writer.write(bgr)
        if writer is not None:
            writer.close()
            writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if len(paths) != len(cuts) + 1:
        raise MediaError(f"made {len(paths)} chapters of {len(cuts) + 1}", path=Path(video))
    return paths

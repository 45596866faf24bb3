"""Video input with PyAV: the only module that decodes video.

Frames are sampled by presentation time (not by frame counting), so variable-frame-rate files and
files with different rates sample the same moments. Decoding runs in the caller's thread; the
pipeline overlaps it with feature extraction through `prefetch`.

Hardware decoding: where an NVIDIA GPU is present (a ``/dev/nvidia*`` device and an FFmpeg build with
CUDA), the sampling decoders ask PyAV for NVDEC (``av.codec.hwaccel.HWAccel("cuda")``, with FFmpeg's
own software fallback for profiles NVDEC cannot do). If that cannot open, one log line says so and this
process decodes in software from then on. Without a GPU nothing is tried, so CPU-only machines pay
nothing. ``MTBSYNC_HWDECODE`` = ``auto`` (default) | ``off`` | ``cuda`` (try even where no GPU is
seen); ``MTBSYNC_NO_GPU=1`` (the CLI's ``--no-gpu``) turns it off.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import queue
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import numpy as np
from av.codec.hwaccel import HWAccel, hwdevices_available

from mtbsync.errors import IN_RESULT, MediaError

log = logging.getLogger("mtbsync")

_IDENTITY_CHUNK = 1 << 20  # bytes hashed at each end of a file

# What a rider is told about an MP4 whose index (moov) is gone or cut off: a copy that stopped early
# (a GoPro file keeps its index at the end). FFmpeg's own word for it ranges from "invalid data" to
# "no video stream", depending on where the cut fell.
TRUNCATED_INDEX = (
    "is truncated or incomplete (its index (moov) is missing or cut off: was the copy interrupted?)"
)
# Top-level ISO-BMFF boxes an MP4 / MOV may start with; a file that opens with anything else is not
# walked (FFmpeg speaks for it).
_MP4_TOP_BOXES = frozenset({b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"})


@dataclass(frozen=True)
class VideoInfo:
    """What a video file is, read from its container without decoding.

    Attributes:
        path: The file.
        width: Coded width in pixels.
        height: Coded height in pixels.
        fps: Average frame rate as an exact fraction (e.g. 30000/1001).
        duration: Duration in seconds (container or stream; best estimate).
        frame_count: Frames according to the container (0 when unknown).
        codec: Codec name (h264, hevc, ...).
        identity: Size plus a hash of the head and tail of the file (see `video_identity`); for a
            recording of several chapters, a hash over the chapters' identities. Either way the
            recording's identity (`chapters_identity`), the catalog's too.
        chapters: The files on the timeline in order: ``(path,)`` for one file, else every chapter
            (``path`` is then the first chapter).
        chapter_starts: Where each chapter starts on the joined timeline (seconds; 0.0 for the first).
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    duration: float
    frame_count: int
    codec: str
    identity: str
    chapters: tuple[Path, ...] = ()
    chapter_starts: tuple[float, ...] = ()

    @property
    def frame_duration(self) -> float:
        """Seconds per frame."""
        return float(1 / self.fps) if self.fps else 1 / 30

    @property
    def is_chaptered(self) -> bool:
        """Whether the video is a recording of more than one chapter file."""
        return len(self.chapters) > 1

    @property
    def timeline(self) -> ChapteredVideo:
        """The chapters with their places on the joined timeline (one chapter for a single file)."""
        chapters = self.chapters or (self.path,)
        starts = self.chapter_starts or (0.0,)
        ends = (*starts[1:], self.duration)
        return ChapteredVideo(chapters, starts, tuple(b - a for a, b in zip(starts, ends, strict=True)))


@dataclass(frozen=True)
class ChapteredVideo:
    """One recording split into chapter files (GoPro GX01nnnn, GX02nnnn, ...), played as one timeline.

    Chapter k starts where chapter k - 1 ends: at the summed container durations of the chapters
    before it, the same offsets the GPMF reader (`mtbsync.ingest.gopro`) gives the GPS, so frames and
    GPS share one clock. Frame times the decoders here yield are on this joined timeline.

    Attributes:
        paths: The chapter files in timeline order.
        starts: Start of each chapter on the joined timeline (seconds; the first is 0.0).
        durations: Duration of each chapter (seconds).
    """

    paths: tuple[Path, ...]
    starts: tuple[float, ...]
    durations: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.paths or not (len(self.paths) == len(self.starts) == len(self.durations)):
            raise ValueError("a chaptered video needs one start and one duration per chapter file")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def duration(self) -> float:
        """Length of the joined timeline in seconds."""
        return float(self.starts[-1] + self.durations[-1])

    def chapter_at(self, t: float) -> int:
        """Index of the chapter holding joined time ``t`` (the first or last beyond the ends)."""
        return max(0, int(np.searchsorted(np.asarray(self.starts), t, side="right")) - 1)

    def to_chapter(self, t: float) -> tuple[Path, float]:
        """The chapter file holding joined time ``t`` and the time within that file."""
        k = self.chapter_at(t)
        return self.paths[k], float(t - self.starts[k])

    def with_paths(self, paths: Sequence[str | Path]) -> ChapteredVideo:
        """The same timeline played from other files (e.g. the chapters' .LRV proxies)."""
        return ChapteredVideo(tuple(Path(p) for p in paths), self.starts, self.durations)


# A video as the decoders here take it: one file, the chapter files of one recording in order, or a
# `ChapteredVideo`. A one-element sequence is the same as its file.
VideoSource = str | Path | Sequence[str | Path] | ChapteredVideo


def chapter_paths(video: VideoSource) -> tuple[Path, ...]:
    """The files of ``video`` in timeline order (``(path,)`` for a single file); opens nothing."""
    if isinstance(video, ChapteredVideo):
        return video.paths
    if isinstance(video, str | Path):
        return (Path(video),)
    return tuple(Path(p) for p in video)


def video_label(video: VideoSource) -> str:
    """A short name for messages: ``GX010123.MP4``, or ``GX010123.MP4 (+2 chapters)`` for a recording."""
    paths = chapter_paths(video)
    if not paths:
        return "(no video)"
    extra = len(paths) - 1
    return paths[0].name + (f" (+{extra} chapter{'s' if extra > 1 else ''})" if extra else "")


def chaptered_video(paths: Sequence[str | Path]) -> ChapteredVideo:
    """Join chapter files on one timeline: each starts at the summed durations of those before it.

    Raises:
        MediaError: No file given, or a chapter is missing, unreadable or has no video stream.
    """
    if not paths:
        raise MediaError("no video files given")
    files = tuple(Path(p) for p in paths)
    durations = tuple(_container_duration(p) for p in files)
    starts = tuple(float(x) for x in np.cumsum((0.0, *durations[:-1])))
    return ChapteredVideo(files, starts, durations)


def chapters_identity(chapter_identities: Sequence[str]) -> str:
    """A recording's identity from its chapters' `video_identity`, in order: the one scheme.

    A recording of one chapter is that file (its `video_identity`), so the file given to ``index``
    or ``sync`` and the same recording ingested from a card are one run; several chapters are
    ``rec:`` + BLAKE2 over their identities. The card ingest (`mtbsync.library.ingest`), the index
    of a chaptered run and the catalog all name a recording through this function.
    """
    if len(chapter_identities) == 1:
        return chapter_identities[0]
    digest = hashlib.blake2b(b"mtbsync-recording-v1", digest_size=16)
    for identity in chapter_identities:
        digest.update(b"\n" + identity.encode())
    return f"rec:{digest.hexdigest()}"


def _single_file(video: VideoSource) -> Path | None:
    """The file when ``video`` is one file (or a one-element sequence without offsets), else None."""
    if isinstance(video, str | Path):
        return Path(video)
    if isinstance(video, ChapteredVideo):
        return video.paths[0] if len(video) == 1 and video.starts[0] == 0.0 else None
    if len(video) == 1:
        return Path(video[0])
    if not video:
        raise MediaError("no video files given")
    return None


def _as_chaptered(video: VideoSource) -> ChapteredVideo:
    return video if isinstance(video, ChapteredVideo) else chaptered_video(chapter_paths(video))


@dataclass
class Frame:
    """One decoded frame, grey, resized for feature extraction.

    Attributes:
        index: Sequence number among the frames this iterator yielded.
        t: Presentation time in seconds from the start of the video.
        image: ``uint8`` grey image, long side = the requested size.
    """

    index: int
    t: float
    image: np.ndarray


@dataclass
class DecodeReport:
    """What a decode pass did, for the summary and for honest reporting.

    Attributes:
        source: The file actually decoded (the MP4, or its .LRV proxy).
        mode: ``full`` (every frame decoded, sampled by time), ``keyframes`` or ``proxy``.
        decoded_frames: Frames the decoder produced.
        yielded_frames: Frames handed to the caller.
        last_time: Time of the last decoded frame.
        truncated: The file ended early or had unreadable data; frames up to `last_time` were used.
        warnings: Human-readable notes.
        decoder: ``nvdec`` (hardware) or ``software``.
    """

    source: Path | None = None
    mode: str = "full"
    decoded_frames: int = 0
    yielded_frames: int = 0
    last_time: float = 0.0
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)
    decoder: str = "software"


def video_identity(path: str | Path) -> str:
    """A cheap content identity: the size and a BLAKE2 hash of the first and last MiB.

    Re-reading a multi-GB file to hash it all would cost more than aligning it; head + tail + size
    tells apart any two recordings in practice (the tail holds the MP4 index).
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        digest.update(fh.read(_IDENTITY_CHUNK))
        if size > _IDENTITY_CHUNK:
            fh.seek(max(_IDENTITY_CHUNK, size - _IDENTITY_CHUNK))
            digest.update(fh.read(_IDENTITY_CHUNK))
    return f"{size}:{digest.hexdigest()}"


def mp4_index_cut_off(path: str | Path) -> bool:
    """Whether an MP4's top-level boxes hold media data (``mdat``) but no complete index (``moov``).

    That is a file cut short: a GoPro MP4 writes its index last, so a copy interrupted anywhere
    loses it. A file whose index comes first (faststart) and whose media data is cut keeps it, and
    decodes up to the cut. Only the box headers are read (a few per file).

    Args:
        path: The file.

    Returns:
        True when the index is missing or runs past the end of the file; False for a complete index,
        or a file that is not an MP4 (left to FFmpeg).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            pos, media = 0, False
            for _ in range(100_000):  # a real MP4 has a handful of top-level boxes
                fh.seek(pos)
                header = fh.read(16)
                if len(header) < 8:
                    break
                box_size, kind = int.from_bytes(header[:4], "big"), header[4:8]
                header_len = 8
                if box_size == 1 and len(header) == 16:
                    box_size, header_len = int.from_bytes(header[8:16], "big"), 16
                elif box_size == 0:  # "to the end of the file"
                    box_size = size - pos
                if (pos == 0 and kind not in _MP4_TOP_BOXES) or box_size < header_len:
                    return False  # not an MP4 (or garbage): FFmpeg's message is the better one
                if kind == b"moov":
                    return pos + box_size > size
                media = media or kind == b"mdat"
                if pos + box_size >= size:
                    break  # the last box, complete or running past the end: no moov follows
                pos += box_size
            return media
    except OSError:
        return False


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise MediaError("file not found", path=path)
    if path.is_dir():
        raise MediaError("is a folder, not a video file", path=path)
    if path.stat().st_size == 0:
        raise MediaError("file is empty (0 bytes)", path=path)
    if mp4_index_cut_off(path):
        raise MediaError(TRUNCATED_INDEX, path=path)
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaError(
            f"cannot read the container ({_short(exc)}); the file may be truncated or not a video", path=path
        ) from None


_HWDECODE_ENV = "MTBSYNC_HWDECODE"
_hw_lock = threading.Lock()
_hw_failed: list[str] = []  # why hardware decoding did not open in this process (then never retried)


def _gpu_device_present() -> bool:
    # A device node, not NVML or CUDA: this check must cost nothing on machines without a GPU.
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/version").exists()


def hardware_decoding_wanted() -> bool:
    """Whether the decoders should try NVDEC in this process (see the module docstring)."""
    if os.environ.get("MTBSYNC_NO_GPU", "").strip() not in ("", "0"):
        return False
    choice = os.environ.get(_HWDECODE_ENV, "auto").strip().lower() or "auto"
    if choice in ("off", "0", "no", "cpu", "software") or _hw_failed:
        return False
    if "cuda" not in hwdevices_available():
        return False
    return choice == "cuda" or _gpu_device_present()


def _open_for_decoding(path: Path) -> tuple[av.container.InputContainer, str]:
    """Open ``path`` with NVDEC when wanted and possible, else in software; returns (container, decoder)."""
    if hardware_decoding_wanted():
        container = _open(path)  # the checks and messages for missing or broken files stay in one place
        container.close()
        try:
            hw = HWAccel(device_type="cuda", allow_software_fallback=True)
            return av.open(str(path), mode="r", hwaccel=hw), "nvdec"
        except (av.FFmpegError, NotImplementedError, OSError, RuntimeError, ValueError) as exc:
            with _hw_lock:
                first = not _hw_failed
                _hw_failed.append(_short(exc))
            if first:
                log.info("hardware decoding (NVDEC) unavailable (%s); decoding in software", _short(exc))
    return _open(path), "software"


def _reset_hardware_decoding() -> None:
    """Forget an earlier NVDEC failure (for tests)."""
    with _hw_lock:
        _hw_failed.clear()


def _short(exc: BaseException) -> str:
    """FFmpeg's reason in a few words: no errno, no repeated file name."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    text = re.sub(r":\s*'[^']*'$", "", text)  # PyAV appends the path, which the message names already
    return text[:160]


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise MediaError("has no video stream", path=path)
    return container.streams.video[0]


def _stream_fps(stream: av.video.stream.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(0)


def _start_offset(stream: av.video.stream.VideoStream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _duration_of(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    # The video stream's own duration first, as the GPMF reader times chapters (ingest/gopro.py).
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _container_duration(path: Path) -> float:
    with _open(path) as container:
        return _duration_of(container, _video_stream(container, path))


def probe(path: VideoSource) -> VideoInfo:
    """Read a video's size, rate, duration and identity without decoding it.

    Args:
        path: One file, or the chapter files of one recording (then: size, rate and codec of the
            first chapter, the summed duration and frame count, `chapters_identity`).

    Raises:
        MediaError: A file is missing, empty, unreadable or has no video stream, or the chapters
            differ in picture size.
    """
    single = _single_file(path)
    if single is None:
        return _probe_chapters(_as_chaptered(path))
    path = single
    with _open(path) as container:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream)
        duration = _duration_of(container, stream)
        frame_count = int(stream.frames or 0)
        if frame_count == 0 and fps and duration:
            frame_count = round(duration * fps)
        width = stream.codec_context.width
        height = stream.codec_context.height
        codec = stream.codec_context.name
    if width <= 0 or height <= 0:
        raise MediaError("video stream has no picture size", path=path)
    return VideoInfo(
        path, width, height, fps, duration, frame_count, codec, video_identity(path), (path,), (0.0,)
    )


def _probe_chapters(timeline: ChapteredVideo) -> VideoInfo:
    infos = [probe(p) for p in timeline.paths]
    first = infos[0]
    for info in infos[1:]:
        if (info.width, info.height) != (first.width, first.height):
            raise MediaError(
                f"is {info.width}x{info.height} but {first.path.name} is {first.width}x{first.height}: "
                "not chapters of one recording",
                path=info.path,
            )
    return VideoInfo(
        first.path,
        first.width,
        first.height,
        first.fps,
        timeline.duration,
        sum(i.frame_count for i in infos),
        first.codec,
        chapters_identity([i.identity for i in infos]),
        timeline.paths,
        timeline.starts,
    )


def keyframe_interval(path: VideoSource, probe_seconds: float = 10.0) -> float | None:
    """Median spacing (s) of the codec's key frames over the first ``probe_seconds``, from the
    container's packets alone (no decoding). None when it cannot be told (fewer than 3 key frames).
    For chapters: of the first chapter (one camera setting for the whole recording).

    GoPro cameras write a key frame every 8-10 frames (about 3 per second), so decoding key frames
    only samples the run densely enough at a tenth of the decoding cost.
    """
    path = chapter_paths(path)[0]
    with _open(path) as container:
        stream = _video_stream(container, path)
        times = []
        try:
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                t = float(packet.pts * stream.time_base)
                if packet.is_keyframe:
                    times.append(t)
                if times and t - times[0] > probe_seconds:
                    break
        except av.FFmpegError:
            pass
    if len(times) < 3:
        return None
    return float(np.median(np.diff(sorted(times))))


def find_proxy(path: str | Path) -> Path | None:
    """The GoPro low-resolution proxy (.LRV) recorded beside ``path``, if there is one.

    GoPro names the proxy of ``GX010123.MP4`` ``GL010123.LRV`` (``GH`` -> ``GL`` as well); older
    cameras use the same stem with an ``.LRV`` extension.
    """
    path = Path(path)
    stem = path.stem
    candidates = [stem]
    if len(stem) >= 2 and stem[:2].upper() in {"GX", "GH"}:
        candidates.insert(0, "GL" + stem[2:])
    for name in candidates:
        for ext in (".LRV", ".lrv"):
            proxy = path.with_name(name + ext)
            if proxy.exists() and proxy != path:
                return proxy
    return None


def scaled_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) scaled so the long side is ``long_side``, both even."""
    scale = long_side / max(width, height)
    new_w = max(2, round(width * scale / 2) * 2)
    new_h = max(2, round(height * scale / 2) * 2)
    return new_w, new_h


def iter_sampled_frames(
    path: VideoSource,
    *,
    sample_fps: float,
    long_side: int,
    keyframes_only: bool = False,
    threads: int = 0,
    report: DecodeReport | None = None,
    start: float = 0.0,
    end: float | None = None,
) -> Iterator[Frame]:
    """Decode ``path`` once and yield grey frames sampled at ``sample_fps`` by presentation time.

    A frame is yielded for each sampling instant k / sample_fps: the first decoded frame whose time
    reaches that instant (within half a frame), so the selection depends only on timestamps.
    Memory stays constant: frames are yielded as they are decoded.

    Chapters of one recording are decoded one after the other as one stream of frames on the joined
    timeline (see `ChapteredVideo`), so the sampling instants run on across a chapter boundary: no
    instant is served twice or skipped there.

    Args:
        path: Video file, or the chapter files of one recording in order (or a `ChapteredVideo`).
        sample_fps: Sampling rate in frames per second (<= 0 means every frame).
        long_side: Output frames are resized so their long side is this many pixels.
        keyframes_only: Decode only codec key frames (much faster; the rate is then the GOP rate).
        threads: Decoder threads (0 = automatic).
        report: Filled in with what the decode did (truncation, counts).
        start: Skip frames before this time (seconds).
        end: Stop after this time (seconds).

    Raises:
        MediaError: Missing/unreadable file, no video stream, or no decodable frame at all.
    """
    single = _single_file(path)
    timeline = ChapteredVideo((single,), (0.0,), (0.0,)) if single is not None else _as_chaptered(path)
    path = timeline.paths[0]
    report = report if report is not None else DecodeReport()
    report.source = path
    report.mode = "keyframes" if keyframes_only else report.mode
    container, report.decoder = _open_for_decoding(path)
    try:
        stream = _video_stream(container, path)
        if single is not None:
            expected = container.duration / av.time_base if container.duration is not None else 0.0
        else:
            expected = timeline.duration
        _prepare_stream(stream, threads, keyframes_only)
        fps = _stream_fps(stream)
        half_frame = 0.5 / float(fps) if fps else 0.5 / 30
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise MediaError("video stream has no picture size", path=path)
        out_w, out_h = scaled_size(width, height, long_side)
        step = 1.0 / sample_fps if sample_fps > 0 else 0.0
        index = 0

        def emit(t: float, frame: av.VideoFrame) -> Frame:
            nonlocal index
            image = frame.reformat(width=out_w, height=out_h, format="gray").to_ndarray()
            index += 1
            report.yielded_frames += 1
            return Frame(index=index - 1, t=t, image=image)

        decoded = _joined_frames(
            timeline,
            (container, stream),
            keyframes_only=keyframes_only,
            threads=threads,
            report=report,
            start=start,
            end=end,
            half_frame=half_frame,
        )
        try:
            with closing(decoded):
                for t, frame in _select_samples(
                    decoded,
                    step=step,
                    keyframes_only=keyframes_only,
                    start=start,
                    end=end,
                    half_frame=half_frame,
                ):
                    yield emit(t, frame)
        except av.FFmpegError as exc:
            report.truncated = True
            message = f"decoding stopped at {report.last_time:.2f} s ({_short(exc)}); using what was readable"
            report.warnings.append(message)
            log.warning("%s: %s", path, message, extra=IN_RESULT)
    finally:
        container.close()
    if report.yielded_frames == 0:
        raise MediaError("no decodable video frames", path=path)
    if expected and not keyframes_only and report.last_time < expected - 1.5 and end is None:
        report.truncated = True
        message = f"only {report.last_time:.1f} s of {expected:.1f} s could be decoded (truncated file?)"
        report.warnings.append(message)
        log.warning("%s: %s", path, message, extra=IN_RESULT)


def _prepare_stream(stream: av.video.stream.VideoStream, threads: int, keyframes_only: bool) -> None:
    stream.thread_type = "AUTO"
    if threads:
        stream.thread_count = threads
    if keyframes_only:
        stream.codec_context.skip_frame = "NONKEY"


def _joined_frames(
    timeline: ChapteredVideo,
    first: tuple[av.container.InputContainer, av.video.stream.VideoStream],
    *,
    keyframes_only: bool,
    threads: int,
    report: DecodeReport,
    start: float,
    end: float | None,
    half_frame: float,
) -> Iterator[tuple[float, av.VideoFrame]]:
    """(time on the joined timeline, frame) of every decoded frame, chapter after chapter.

    The first chapter's container is opened (and closed) by the caller. A decoding error in the
    last chapter propagates (the caller reports the truncation, as for a single file); in an
    earlier chapter it is reported and decoding goes on with the next chapter, whose frames keep
    their places on the timeline.
    """
    last = len(timeline) - 1
    opened: list[av.container.InputContainer] = []  # chapters after the first, not closed yet
    try:
        for k, (path, chapter_start, chapter_duration) in enumerate(
            zip(timeline.paths, timeline.starts, timeline.durations, strict=True)
        ):
            if k > 0 and end is not None and chapter_start > end + half_frame:
                return
            if k < last and chapter_start + chapter_duration < start - 1.0:
                continue  # wholly before the start: not even opened
            if k == 0:
                container, stream = first
            else:
                container, _ = _open_for_decoding(path)
                opened.append(container)
                stream = _video_stream(container, path)
                _prepare_stream(stream, threads, keyframes_only)
            offset = _start_offset(stream)
            local_start = start - chapter_start
            if local_start > 1.0:
                container.seek(
                    int((local_start - 1.0 + offset) / stream.time_base), stream=stream, backward=True
                )
            chapter_last = -math.inf
            try:
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    t = float(frame.pts * stream.time_base) - offset + chapter_start
                    report.decoded_frames += 1
                    report.last_time = chapter_last = t
                    yield t, frame
                    # The consumer is done with this chapter's first frame, and so with the previous
                    # chapter's last one (the sampler may hold it until now): that decoder can go.
                    while len(opened) > 1:
                        opened.pop(0).close()
            except av.FFmpegError as exc:
                if k == last:
                    raise
                report.truncated = True
                message = (
                    f"{path.name}: decoding stopped at {report.last_time:.2f} s ({_short(exc)}); "
                    "going on with the next chapter"
                )
                report.warnings.append(message)
                log.warning("%s", message, extra=IN_RESULT)
                continue
            if k < last and not keyframes_only and chapter_last < chapter_start + chapter_duration - 1.5:
                # A chapter that ends early leaves a hole; the next one still starts at its place.
                report.truncated = True
                message = (
                    f"{path.name}: only {max(chapter_last - chapter_start, 0.0):.1f} s of "
                    f"{chapter_duration:.1f} s could be decoded (truncated chapter?)"
                )
                report.warnings.append(message)
                log.warning("%s", message, extra=IN_RESULT)
    finally:
        for container in opened:
            container.close()


def _select_samples(
    frames: Iterator[tuple[float, av.VideoFrame]],
    *,
    step: float,
    keyframes_only: bool,
    start: float,
    end: float | None,
    half_frame: float,
) -> Iterator[tuple[float, av.VideoFrame]]:
    """The frames that serve the sampling instants ``start + k * step`` (all frames when step is 0)."""
    next_t = start
    pending: tuple[float, av.VideoFrame] | None = None  # last frame seen, not yielded yet
    last_kept: float | None = None
    for t, frame in frames:
        if end is not None and t > end + half_frame:
            break
        if t < start - half_frame:
            continue
        if not step:
            yield t, frame
            continue
        if keyframes_only:
            # Key frames are already about as sparse as asked: keep each one at least half a
            # sampling step after the previous (thins only all-intra or very short GOPs).
            if last_kept is None or t - last_kept >= 0.5 * step - 1e-9:
                last_kept = t
                yield t, frame
            continue
        # Serve every sampling instant this frame has reached with the nearer of this frame
        # and the previous one; a frame serves at most one instant (no duplicates).
        chosen_now: float | None = None
        while t >= next_t - 1e-9:
            if pending is not None and next_t - pending[0] <= t - next_t:
                yield pending
                pending = None
            elif chosen_now is None:
                chosen_now = t
            next_t += step
        if chosen_now is not None:
            yield t, frame
            pending = None
        else:
            pending = (t, frame)
    # Also after stopping at ``end``; not when decoding failed (the error propagates past here).
    if pending is not None and next_t - pending[0] <= min(half_frame, step / 2):
        yield pending


def merge_windows(windows: Iterable[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    """Sort time windows and merge those closer than ``gap`` seconds (decoding through is cheaper)."""
    merged: list[tuple[float, float]] = []
    for lo, hi in sorted(windows):
        if merged and lo <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def iter_window_frames(
    path: VideoSource,
    windows: Iterable[tuple[float, float]],
    *,
    long_side: int,
    threads: int = 0,
    seek_gap: float = 4.0,
) -> Iterator[Frame]:
    """Yield every frame whose time lies in one of ``windows`` (full frame rate), in time order.

    Windows closer than ``seek_gap`` seconds are decoded through; farther ones are reached by
    seeking to the preceding key frame, so the cost follows the windows, not the video length.
    For the chapters of one recording, times are on the joined timeline; a window across a chapter
    boundary gets the end of one chapter and the start of the next (each frame once).

    Raises:
        MediaError: Missing/unreadable file or no video stream.
    """
    single = _single_file(path)
    if single is not None:
        yield from _iter_window_frames_file(
            single, windows, long_side=long_side, threads=threads, seek_gap=seek_gap
        )
        return
    timeline = _as_chaptered(path)
    wanted = [(float(lo), float(hi)) for lo, hi in windows]
    index = 0
    for chapter, chapter_start, chapter_duration in zip(
        timeline.paths, timeline.starts, timeline.durations, strict=True
    ):
        # Windows reaching into this chapter, in its own time; its frames lie in [0, duration).
        local = [
            (lo - chapter_start, hi - chapter_start)
            for lo, hi in wanted
            if hi >= chapter_start - 0.5 and lo <= chapter_start + chapter_duration + 0.5
        ]
        if not local:
            continue
        for frame in _iter_window_frames_file(
            chapter, local, long_side=long_side, threads=threads, seek_gap=seek_gap
        ):
            yield Frame(index=index, t=frame.t + chapter_start, image=frame.image)
            index += 1


def _iter_window_frames_file(
    path: Path,
    windows: Iterable[tuple[float, float]],
    *,
    long_side: int,
    threads: int,
    seek_gap: float,
) -> Iterator[Frame]:
    wanted = sorted((float(lo), float(hi)) for lo, hi in windows)
    plan = merge_windows(wanted, seek_gap)
    if not plan:
        return
    starts = np.array([lo for lo, _ in wanted])
    ends = np.maximum.accumulate(np.array([hi for _, hi in wanted]))
    container, _ = _open_for_decoding(path)
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        if threads:
            stream.thread_count = threads
        fps = _stream_fps(stream)
        half_frame = 0.5 / float(fps) if fps else 0.5 / 30
        offset = _start_offset(stream)
        out_w, out_h = scaled_size(stream.codec_context.width, stream.codec_context.height, long_side)
        index = 0
        last_t = -math.inf
        for lo, hi in plan:
            if lo - last_t > seek_gap or lo < last_t:
                target = max(0.0, lo - half_frame) + offset
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
            try:
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    t = float(frame.pts * stream.time_base) - offset
                    last_t = t
                    if t < lo - half_frame:
                        continue
                    if t > hi + half_frame:
                        break
                    # Decoded through a gap between two windows: only frames inside a window count.
                    k = int(np.searchsorted(starts, t + half_frame, side="right")) - 1
                    if k < 0 or t > ends[k] + half_frame:
                        continue
                    image = frame.reformat(width=out_w, height=out_h, format="gray").to_ndarray()
                    yield Frame(index=index, t=t, image=image)
                    index += 1
            except av.FFmpegError as exc:
                log.warning("%s: decoding stopped near %.2f s (%s)", path, last_t, _short(exc))
                break
    finally:
        container.close()


T = TypeVar("T")


def prefetch(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Run ``items`` in a background thread, keeping at most ``depth`` items ahead of the consumer.

    Decoding (PyAV releases the GIL) then overlaps the consumer's work (OpenCV releases it too), while
    memory stays bounded by ``depth``. Exceptions in the producer are re-raised in the consumer.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:
            put(exc)

    worker = threading.Thread(target=produce, name="mtbsync-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def iter_color_frames(path: str | Path) -> Iterator[tuple[float, np.ndarray]]:
    """(time, BGR image) of every frame at full size, times from the stream's start as elsewhere here.

    Raises:
        MediaError: Unreadable file or no video stream.
    """
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        offset = _start_offset(stream)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            yield float(frame.pts * stream.time_base) - offset, frame.to_ndarray(format="bgr24")


def packet_times(path: str | Path) -> tuple[np.ndarray, Fraction, tuple[int, int]]:
    """Frame times from the packets alone (cheap: no decoding), the frame rate and the picture size.

    Raises:
        MediaError: Unreadable file, no video stream or fewer than two frames.
    """
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        offset = _start_offset(stream)
        times = sorted(
            float(p.pts * stream.time_base) - offset
            for p in container.demux(stream)
            if p.pts is not None and p.size
        )
        rate = _stream_fps(stream) or Fraction(30)
        size = (stream.codec_context.width, stream.codec_context.height)
    if len(times) < 2:
        raise MediaError("has fewer than two video frames", path=path)
    return np.array(times), rate, size

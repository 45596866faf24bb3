"""What every export shares: the options, and markers placed on frames of the new video.

`prepare` turns transferred markers into `ExportMarker`s once, with the same rules for every format:

- markers that were not placed (blank ``t_new``) are skipped and counted;
- times are rounded to the nearest frame of the new video (`FrameRate.seconds_to_frames`);
- when the video's duration is known, a marker past its end is clamped to the last frame, counted,
  and says so in its note (``clamped from 62.310 s, past the video's end``);
- markers that need review get ``REVIEW (confidence 0.42)`` at the front of their note (and
  `REVIEW_COLOUR`);
- markers are ordered by frame (ties keep file order).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mtbsync.errors import ExportError
from mtbsync.export.colours import is_known_colour
from mtbsync.export.timecode import FrameRate
from mtbsync.markers.model import TransferredMarker

DEFAULT_START_TIMECODE = "01:00:00:00"
"""Record start of the timeline (DaVinci Resolve's default timeline start)."""
DEFAULT_REEL = "001"
DEFAULT_VIDEO_SIZE = (1920, 1080)
"""Frame size written by the XML formats when the video's is unknown."""
REVIEW_PREFIX = "REVIEW"
_REEL = re.compile(r"[A-Za-z0-9_]{1,8}")


@dataclass(frozen=True)
class ExportOptions:
    """How markers are exported.

    Attributes:
        rate: The new video's frame rate and timecode counting.
        start_timecode: Timecode of the video's first frame on the timeline (``01:00:00:00``).
        reel: EDL reel name: 1 to 8 letters, digits or ``_``.
        title: Timeline / project name in the file.
        video_path: The new video, when known (XML formats link to it).
        video_duration: The new video's duration in seconds, when known (clamps late markers).
        video_size: The new video's width and height in pixels, when known.
    """

    rate: FrameRate
    start_timecode: str = DEFAULT_START_TIMECODE
    reel: str = DEFAULT_REEL
    title: str = "mtbsync markers"
    video_path: Path | None = None
    video_duration: float | None = None
    video_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not _REEL.fullmatch(self.reel):
            raise ExportError(f"reel {self.reel!r} must be 1 to 8 letters, digits or _ (e.g. 001)")
        if self.video_duration is not None and not self.video_duration > 0:
            raise ExportError(f"the video's duration must be positive, not {self.video_duration}")
        self.rate.timecode_to_frames(self.start_timecode)  # raises ExportError when not a timecode

    @property
    def start_frame(self) -> int:
        """Frame number of `start_timecode` at the rate."""
        return self.rate.timecode_to_frames(self.start_timecode)

    @property
    def video_name(self) -> str:
        """The new video's file name (``new_run.mp4`` when unknown)."""
        return self.video_path.name if self.video_path is not None else "new_run.mp4"

    @property
    def video_frames(self) -> int | None:
        """Frames in the new video, when its duration is known (at least 1)."""
        if self.video_duration is None:
            return None
        return max(1, self.rate.seconds_to_frames(self.video_duration))


@dataclass(frozen=True)
class ExportMarker:
    """A marker on a frame of the new video, ready for any format.

    Attributes:
        name: The marker's name.
        frame: Frame of the new video (0 = its first frame), not counting the start timecode.
        seconds: The marker's time in the new video (after any clamp).
        colour: The marker's colour text.
        comment: The marker's comment.
        confidence: The transfer's confidence in [0, 1].
        needs_review: An editor should check it.
        clamped: Its time was past the video's end and was moved to the last frame.
        note: What the editor should read beside the name: ``REVIEW`` first when the marker needs
            review, then the comment, then a clamp notice.
    """

    name: str
    frame: int
    seconds: float
    colour: str
    comment: str
    confidence: float
    needs_review: bool
    clamped: bool = False
    note: str = ""


@dataclass(frozen=True)
class PreparedMarkers:
    """Markers ready to write, with what was left out or changed on the way.

    Attributes:
        markers: The markers to write, by frame.
        skipped: Markers not placed in the new run (blank ``t_new``).
        clamped: Markers past the video's end moved to its last frame.
        merged: Markers merged into another on the same frame (formats with one marker per frame).
        unknown_colours: Colour texts that are not colours mtbsync knows (written as the default).
    """

    markers: list[ExportMarker]
    skipped: int = 0
    clamped: int = 0
    merged: int = 0
    unknown_colours: tuple[str, ...] = field(default_factory=tuple)


def prepare(
    markers: Sequence[TransferredMarker], options: ExportOptions, *, merge_same_frame: bool = False
) -> PreparedMarkers:
    """Place transferred markers on frames of the new video (see the module docstring).

    Args:
        markers: Transferred markers, e.g. from `read_new_markers`.
        options: The export options (rate, video duration).
        merge_same_frame: Merge markers that land on the same frame into one (names joined with
            `` + ``), for formats that hold one marker per frame.

    Returns:
        The prepared markers and counts.

    Raises:
        ExportError: No marker is placed, or a marker's time is negative or not finite.
    """
    last_frame = options.video_frames - 1 if options.video_frames is not None else None
    out: list[ExportMarker] = []
    skipped = clamped = 0
    unknown: list[str] = []
    for m in markers:
        if m.t_new is None:
            skipped += 1
            continue
        if not (math.isfinite(m.t_new) and m.t_new >= 0):
            raise ExportError(f"marker {m.name!r} has a time that is not a time in the video: {m.t_new}")
        frame = options.rate.seconds_to_frames(m.t_new)
        seconds = m.t_new
        details = [m.comment.strip()] if m.comment.strip() else []
        is_clamped = False
        if last_frame is not None and frame > last_frame:
            is_clamped = True
            details.append(f"clamped from {m.t_new:.3f} s, past the video's end")
            frame = last_frame
            seconds = float(options.rate.frames_to_seconds(frame))
            clamped += 1
        note = " | ".join(details)
        if m.needs_review:
            review = f"{REVIEW_PREFIX} (confidence {m.confidence:.2f})"
            note = f"{review}: {note}" if note else review
        if not is_known_colour(m.colour) and m.colour.strip() not in unknown:
            unknown.append(m.colour.strip())
        out.append(
            ExportMarker(
                name=m.name,
                frame=frame,
                seconds=seconds,
                colour=m.colour,
                comment=m.comment,
                confidence=m.confidence,
                needs_review=m.needs_review,
                clamped=is_clamped,
                note=note,
            )
        )
    if not out:
        raise ExportError(
            f"none of the {len(markers)} markers is placed in the new run (t_new is blank): nothing to export"
            if markers
            else "the markers file holds no markers: nothing to export"
        )
    out.sort(key=lambda e: e.frame)
    merged = 0
    if merge_same_frame:
        out, merged = _merge_same_frame(out)
    return PreparedMarkers(out, skipped, clamped, merged, tuple(unknown))


def clip_frames(prepared: PreparedMarkers, options: ExportOptions) -> int:
    """Length in frames of the clip the markers sit on.

    Args:
        prepared: The markers, placed on frames.
        options: The export options (the video's duration, when known).

    Returns:
        The video's length, or one frame past the last marker when that is longer (or the length
        is unknown).
    """
    last = max(m.frame for m in prepared.markers) + 1
    return max(options.video_frames or 0, last)


def _merge_same_frame(markers: list[ExportMarker]) -> tuple[list[ExportMarker], int]:
    kept: list[ExportMarker] = []
    for m in markers:
        if kept and kept[-1].frame == m.frame:
            prev = kept[-1]
            note = " | ".join(n for n in (prev.note, m.note) if n)
            kept[-1] = replace(
                prev,
                name=f"{prev.name} + {m.name}",
                needs_review=prev.needs_review or m.needs_review,
                confidence=min(prev.confidence, m.confidence),
                note=note,
            )
        else:
            kept.append(m)
    return kept, len(markers) - len(kept)


def single_line(text: str) -> str:
    """``text`` on one line: line breaks and tabs become spaces, other control characters go.

    Args:
        text: Any text.

    Returns:
        The text with runs of spaces collapsed and the ends stripped.
    """
    out = []
    for ch in text:
        if ch in "\r\n\t\v\f\u2028\u2029\x85":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cs"):
            continue
        else:
            out.append(ch)
    return re.sub(r" {2,}", " ", "".join(out)).strip()


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (controls other than tab and newlines).

    ElementTree escapes ``& < > "`` and newlines in attributes; it does not refuse these.
    """
    return "".join(ch for ch in text if ch in "\t\n\r" or not _xml_forbidden(ch))


def _xml_forbidden(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs") or ch in "\ufffe\uffff"

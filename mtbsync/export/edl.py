"""CMX 3600 EDLs carrying markers: Avid ``* LOC:`` locators, or DaVinci Resolve's marker EDL.

Both flavours write ``TITLE:``, ``FCM: DROP FRAME`` / ``FCM: NON-DROP FRAME`` and events of the form
``001  001      V     C        01:00:05:00 01:00:05:01 01:00:05:00 01:00:05:01``, with source and
record timecode equal (the timeline starts at the start timecode, ``01:00:00:00`` by default, as the
video does). ``;`` separates the frames in drop-frame timecode.

- ``avid`` (``mtbsync export edl``): one event spanning the new video (or up to the last marker when
  its duration is unknown), ``* FROM CLIP NAME:`` the video, and one ``* LOC: TC COLOUR name`` line
  per marker; the colour is one of Avid's eight (`avid_colour`), names of markers that need review
  start with ``REVIEW``. Comments are not carried (a locator holds one text).
- ``resolve`` (``mtbsync export resolve-edl``, Resolve: *Timelines > Import > Timeline Markers from
  EDL*): one one-frame event per marker, followed by ``note |C:ResolveColorBlue |M:name |D:1``. Markers
  on the same frame are merged into one (Resolve holds one marker per frame; events must not overlap).

EDLs are line-based text: names and notes are put on one line (line breaks and tabs become spaces,
control characters are removed), ``|`` becomes ``/`` in Resolve's marker line (it separates the
fields there), and a note that would start with a digit gets ``Note:`` in front (a line starting
with a digit is read as an event). Letters outside ASCII are kept (the file is UTF-8). The title is
cut to 70 characters; CMX 3600 has at most 999 events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from mtbsync.errors import ExportError
from mtbsync.export.colours import avid_colour, resolve_colour
from mtbsync.export.common import (
    ExportOptions,
    PreparedMarkers,
    clip_frames,
    prepare,
    single_line,
)
from mtbsync.export.timecode import FrameRate
from mtbsync.markers.model import TransferredMarker

Flavour = Literal["avid", "resolve"]
MAX_EVENTS = 999
MAX_TITLE = 70


def write_to_string(
    markers: Sequence[TransferredMarker], options: ExportOptions, *, flavour: Flavour = "avid"
) -> str:
    """The EDL text for ``markers``.

    Args:
        markers: Transferred markers; those not placed are skipped.
        options: Rate, start timecode, reel, title, video.
        flavour: ``avid`` (``* LOC:`` locators) or ``resolve`` (Resolve's marker EDL).

    Returns:
        The EDL, ``\\n`` line ends.

    Raises:
        ExportError: Nothing to export, too many events, or timecode past 23:59:59.
    """
    return render(prepare(markers, options, merge_same_frame=flavour == "resolve"), options, flavour=flavour)


def render(prepared: PreparedMarkers, options: ExportOptions, *, flavour: Flavour = "avid") -> str:
    """The EDL text for markers already placed on frames (see `prepare`).

    Args:
        prepared: The markers (merged per frame for the ``resolve`` flavour).
        options: Rate, start timecode, reel, title, video.
        flavour: ``avid`` or ``resolve``.

    Returns:
        The EDL text.

    Raises:
        ExportError: Too many events, or timecode past 23:59:59.
    """
    rate = options.rate
    start = options.start_frame
    title = single_line(options.title)[:MAX_TITLE] or "mtbsync markers"
    lines = [f"TITLE: {title}", f"FCM: {'DROP FRAME' if rate.drop_frame else 'NON-DROP FRAME'}", ""]
    if flavour == "resolve":
        if len(prepared.markers) > MAX_EVENTS:
            raise ExportError(
                f"{len(prepared.markers)} markers: a CMX 3600 EDL holds at most {MAX_EVENTS} events"
            )
        for number, m in enumerate(prepared.markers, start=1):
            lines.append(_event(number, options.reel, start + m.frame, start + m.frame + 1, rate))
            lines.append(_resolve_marker_line(m.name, m.note, resolve_colour(m.colour, m.needs_review)))
            lines.append("")
    else:
        length = clip_frames(prepared, options)
        lines.append(_event(1, options.reel, start, start + length, rate))
        lines.append(f"* FROM CLIP NAME: {single_line(options.video_name)}")
        for m in prepared.markers:
            name = single_line(m.name)
            if m.needs_review:
                name = f"REVIEW {name}"
            colour = avid_colour(m.colour, m.needs_review)
            lines.append(f"* LOC: {rate.frames_to_timecode(start + m.frame)} {colour:<7} {name}")
        lines.append("")
    return "\n".join(lines)


def _event(number: int, reel: str, rec_in: int, rec_out: int, rate: FrameRate) -> str:
    tc = rate.frames_to_timecode
    # Fixed CMX 3600 columns: event, reel (8), channel (V), transition (C), then source in/out and
    # record in/out; source equals record, the clip being the timeline.
    times = f"{tc(rec_in)} {tc(rec_out)} {tc(rec_in)} {tc(rec_out)}"
    return f"{number:03d}  {reel:<8} {'V':<5} {'C':<4} {'':<3} {times}"


def _resolve_marker_line(name: str, note: str, colour: str) -> str:
    name = single_line(name).replace("|", "/")
    note = single_line(note).replace("|", "/")
    if note[:1].isdigit():
        note = f"Note: {note}"
    # Resolve writes the note first and a space before the first field even when the note is empty.
    return f"{note} |C:ResolveColor{colour} |M:{name} |D:1"

"""Final Cut Pro XML (FCPXML 1.10, Final Cut Pro 10.6 and later) with the markers on the new video.

One ``format`` and one ``asset`` (the new video, ``media-rep`` linking to its file) in
``resources``; a library > event > project > sequence whose spine holds one ``asset-clip`` of the
whole video at the start timecode (``tcStart``, ``tcFormat`` DF/NDF); one ``marker`` per marker as a
child of the clip, one frame long, at its frame as a rational time in the clip (``150150/30000s``).

FCPXML markers have no colour: the colour goes into the marker's ``note`` (after the REVIEW flag and
the comment); markers that need review are to-do markers (``completed="0"``, shown red). Names and
notes are XML-escaped by ElementTree; characters XML 1.0 cannot hold are removed and names are put on
one line. Without a known video the asset points at ``file:///new_run.mp4`` (relink in Final Cut
Pro) and the clip ends one frame after the last marker.

1.10 is the version whose DTD we check the structure against (element order and required attributes);
markers need nothing newer than 1.0.
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from mtbsync.export.common import (
    DEFAULT_VIDEO_SIZE,
    ExportOptions,
    PreparedMarkers,
    clip_frames,
    prepare,
    single_line,
    xml_text,
)
from mtbsync.export.timecode import FrameRate
from mtbsync.markers.model import TransferredMarker

FCPXML_VERSION = "1.10"


def write_to_string(markers: Sequence[TransferredMarker], options: ExportOptions) -> str:
    """The FCPXML text for ``markers``.

    Args:
        markers: Transferred markers; those not placed are skipped.
        options: Rate, start timecode, title, video.

    Returns:
        The FCPXML document (UTF-8 declaration, ``<!DOCTYPE fcpxml>``).

    Raises:
        ExportError: Nothing to export, or timecode past 23:59:59.
    """
    return render(prepare(markers, options), options)


def fcpxml_time(frames: int, rate: FrameRate) -> str:
    """A frame count as an FCPXML time: ``0s``, ``6s`` or ``150150/30000s`` (frame-aligned).

    Args:
        frames: A number of frames.
        rate: The frame rate.

    Returns:
        The time in seconds as a rational with the frame duration's denominator.
    """
    step = rate.frame_duration
    value = frames * step
    if value.denominator == 1:
        return f"{value.numerator}s"
    return f"{frames * step.numerator}/{step.denominator}s"


def render(prepared: PreparedMarkers, options: ExportOptions) -> str:
    """The FCPXML text for markers already placed on frames (see `prepare`)."""
    rate = options.rate
    duration = fcpxml_time(clip_frames(prepared, options), rate)
    start = fcpxml_time(options.start_frame, rate)
    tc_format = "DF" if rate.drop_frame else "NDF"
    width, height = options.video_size or DEFAULT_VIDEO_SIZE
    title = xml_text(single_line(options.title)) or "mtbsync markers"
    name = xml_text(single_line(options.video_path.stem if options.video_path else "new_run"))

    root = ET.Element("fcpxml", version=FCPXML_VERSION)
    resources = ET.SubElement(root, "resources")
    ET.SubElement(
        resources,
        "format",
        id="r1",
        frameDuration=fcpxml_time(1, rate),
        width=str(width),
        height=str(height),
    )
    asset = ET.SubElement(
        resources, "asset", id="r2", name=name, start="0s", duration=duration, hasVideo="1", format="r1"
    )
    ET.SubElement(asset, "media-rep", kind="original-media", src=_file_url(options))
    event = ET.SubElement(ET.SubElement(root, "library"), "event", name=title)
    project = ET.SubElement(event, "project", name=title)
    sequence = ET.SubElement(
        project, "sequence", format="r1", duration=duration, tcStart=start, tcFormat=tc_format
    )
    spine = ET.SubElement(sequence, "spine")
    clip = ET.SubElement(
        spine,
        "asset-clip",
        ref="r2",
        offset=start,
        name=name,
        start="0s",
        duration=duration,
        format="r1",
        tcFormat=tc_format,
    )
    for m in prepared.markers:
        attrs = {
            "start": fcpxml_time(m.frame, rate),
            "duration": fcpxml_time(1, rate),
            "value": xml_text(single_line(m.name)),
        }
        if m.needs_review:
            attrs["completed"] = "0"
        note = " | ".join(p for p in (m.note, f"colour: {m.colour.strip()}" if m.colour.strip() else "") if p)
        if note:
            attrs["note"] = xml_text(note)
        ET.SubElement(clip, "marker", attrs)
    ET.indent(root, space="    ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n{body}\n'


def _file_url(options: ExportOptions) -> str:
    if options.video_path is not None:
        return options.video_path.resolve().as_uri()
    return "file:///" + urllib.parse.quote(options.video_name)

"""Premiere Pro: Final Cut Pro 7 XML (xmeml version 4) with the markers as sequence markers.

One sequence at the new video's rate (``timebase`` = the nominal rate, ``ntsc`` TRUE at 23.976,
29.97, 59.94 ...) starting at the start timecode (``DF``/``NDF`` display), holding one clip of the
whole new video on video track 1 (``pathurl`` to the file when known), and one ``marker`` per
marker: ``name``, ``comment`` (the note: REVIEW first when it needs review, then the comment),
``in`` in frames from the sequence start, ``out`` -1 (a point marker) and ``pproColor``, the
colour of Premiere's 8 (`premiere_colour`). Text is XML-escaped by ElementTree; characters XML 1.0
cannot hold are removed and names are put on one line.
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from mtbsync.export.colours import premiere_colour
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


def write_to_string(markers: Sequence[TransferredMarker], options: ExportOptions) -> str:
    """The FCP7 XML text for ``markers``.

    Args:
        markers: Transferred markers; those not placed are skipped.
        options: Rate, start timecode, title, video.

    Returns:
        The xmeml document (UTF-8 declaration, ``<!DOCTYPE xmeml>``).

    Raises:
        ExportError: Nothing to export, or timecode past 23:59:59.
    """
    return render(prepare(markers, options), options)


def render(prepared: PreparedMarkers, options: ExportOptions) -> str:
    """The FCP7 XML text for markers already placed on frames (see `prepare`)."""
    rate = options.rate
    length = clip_frames(prepared, options)
    width, height = options.video_size or DEFAULT_VIDEO_SIZE
    title = xml_text(single_line(options.title)) or "mtbsync markers"
    video_name = xml_text(single_line(options.video_name))

    root = ET.Element("xmeml", version="4")
    sequence = ET.SubElement(root, "sequence", id="sequence-1")
    _text(sequence, "name", title)
    _text(sequence, "duration", str(length))
    _rate(sequence, rate)
    timecode = ET.SubElement(sequence, "timecode")
    _rate(timecode, rate)
    _text(timecode, "string", rate.frames_to_timecode(options.start_frame))
    _text(timecode, "frame", str(options.start_frame))
    _text(timecode, "displayformat", "DF" if rate.drop_frame else "NDF")
    video = ET.SubElement(ET.SubElement(sequence, "media"), "video")
    characteristics = ET.SubElement(ET.SubElement(video, "format"), "samplecharacteristics")
    _rate(characteristics, rate)
    _text(characteristics, "width", str(width))
    _text(characteristics, "height", str(height))
    clip = ET.SubElement(ET.SubElement(video, "track"), "clipitem", id="clipitem-1")
    _text(clip, "name", video_name)
    _text(clip, "enabled", "TRUE")
    _text(clip, "duration", str(length))
    _rate(clip, rate)
    for tag, value in (("start", 0), ("end", length), ("in", 0), ("out", length)):
        _text(clip, tag, str(value))
    file = ET.SubElement(clip, "file", id="file-1")
    _text(file, "name", video_name)
    _text(file, "pathurl", _file_url(options))
    _rate(file, rate)
    _text(file, "duration", str(length))
    ET.SubElement(ET.SubElement(file, "media"), "video")
    for m in prepared.markers:
        marker = ET.SubElement(sequence, "marker")
        _text(marker, "comment", xml_text(m.note))
        _text(marker, "name", xml_text(single_line(m.name)))
        _text(marker, "in", str(m.frame))
        _text(marker, "out", "-1")
        _text(marker, "pproColor", str(premiere_colour(m.colour, m.needs_review).ppro_color))
    ET.indent(root, space="    ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n{body}\n'


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def _rate(parent: ET.Element, rate: FrameRate) -> None:
    element = ET.SubElement(parent, "rate")
    _text(element, "timebase", str(rate.nominal))
    _text(element, "ntsc", "TRUE" if rate.rate.denominator == 1001 else "FALSE")


def _file_url(options: ExportOptions) -> str:
    if options.video_path is not None:
        return options.video_path.resolve().as_uri()
    return "file://localhost/" + urllib.parse.quote(options.video_name)

"""Premiere Pro FCP 7 XML: inline markers, structure, and re-reads by OpenTimelineIO's fcp_xml."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import opentimelineio as otio
import pytest
from export_cases import AWKWARD_MARKERS, SMALL_MARKERS

from mtbsync.export import ExportOptions, FrameRate, premiere
from mtbsync.export.colours import PREMIERE_COLOURS
from mtbsync.export.common import single_line

MARKERS_2997 = """\
        <marker>
            <comment>big one</comment>
            <name>gap jump</name>
            <in>150</in>
            <out>-1</out>
            <pproColor>4281828977</pproColor>
        </marker>
        <marker>
            <comment>REVIEW (confidence 0.41)</comment>
            <name>rock garden</name>
            <in>370</in>
            <out>-1</out>
            <pproColor>4281740498</pproColor>
        </marker>
        <marker>
            <comment />
            <name>berm</name>
            <in>1768</in>
            <out>-1</out>
            <pproColor>4294741314</pproColor>
        </marker>
    </sequence>
</xmeml>
"""

HEAD_2997 = """\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE xmeml>
<xmeml version="4">
    <sequence id="sequence-1">
        <name>trail run 2</name>
        <duration>2098</duration>
        <rate>
            <timebase>30</timebase>
            <ntsc>TRUE</ntsc>
        </rate>
        <timecode>
            <rate>
                <timebase>30</timebase>
                <ntsc>TRUE</ntsc>
            </rate>
            <string>01:00:00;00</string>
            <frame>107892</frame>
            <displayformat>DF</displayformat>
        </timecode>
"""


def _options(rate: str, **kw) -> ExportOptions:
    return ExportOptions(FrameRate.from_string(rate), title="trail run 2", **kw)


def test_premiere_matches_inline_text() -> None:
    options = _options("29.97", video_path=Path("/media/GX010042.MP4"), video_duration=70.0)
    text = premiere.write_to_string(SMALL_MARKERS, options)
    assert text.startswith(HEAD_2997)
    assert text.endswith(MARKERS_2997)
    assert "<pathurl>file:///media/GX010042.MP4</pathurl>" in text


@pytest.mark.parametrize("rate_text", ["23.976", "24", "25", "29.97", "30", "50", "59.94", "60"])
def test_premiere_reread_by_opentimelineio(rate_text: str) -> None:
    options = _options(rate_text, video_duration=70.0)
    text = premiere.write_to_string(SMALL_MARKERS, options)
    timeline = otio.adapters.read_from_string(text, adapter_name="fcp_xml")
    assert timeline.global_start_time.value == options.start_frame
    assert len(timeline.find_clips()) == 1
    markers = list(timeline.tracks.markers)
    placed = [m for m in SMALL_MARKERS if m.t_new is not None]
    assert [m.name for m in markers] == [m.name for m in placed]
    for read, marker in zip(markers, placed, strict=True):
        frames = read.marked_range.start_time.value
        assert abs(frames - marker.t_new * float(options.rate.rate)) <= 0.5 + 1e-6
        assert read.metadata["fcp_xml"]["pproColor"] in {str(c.ppro_color) for c in PREMIERE_COLOURS}
    assert markers[1].metadata["fcp_xml"]["comment"].startswith("REVIEW")


def test_awkward_names_survive() -> None:
    text = premiere.write_to_string(AWKWARD_MARKERS, _options("25"))
    ET.fromstring(text)
    timeline = otio.adapters.read_from_string(text, adapter_name="fcp_xml")
    assert [m.name for m in timeline.tracks.markers] == [single_line(m.name) for m in AWKWARD_MARKERS]
    comments = [m.metadata["fcp_xml"]["comment"] for m in timeline.tracks.markers]
    assert comments[1] == "note 1\nsecond line"


def test_colours_map_to_premieres_eight() -> None:
    from mtbsync.export.colours import premiere_colour

    assert premiere_colour("#00ff00").name == "Green"
    assert premiere_colour("orange").name == "Orange"
    assert premiere_colour("cyan").name == "Cyan"
    assert premiere_colour("").name == "Blue"  # the documented default
    assert premiere_colour("nonsense").name == "Blue"
    assert premiere_colour("#00ff00", needs_review=True).name == "Red"

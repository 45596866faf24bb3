"""FCPXML 1.10: inline text, structure per Apple's DTD, and re-reads by OpenTimelineIO."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from export_cases import AWKWARD_MARKERS, SMALL_MARKERS

from mtbsync.export import ExportOptions, FrameRate, fcpxml
from mtbsync.export.common import single_line

FCPXML_25 = """\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE fcpxml>
<fcpxml version="1.10">
    <resources>
        <format id="r1" frameDuration="1/25s" width="1920" height="1080" />
        <asset id="r2" name="GX010042" start="0s" duration="60s" hasVideo="1" format="r1">
            <media-rep kind="original-media" src="file:///media/GX010042.MP4" />
        </asset>
    </resources>
    <library>
        <event name="trail run 2">
            <project name="trail run 2">
                <sequence format="r1" duration="60s" tcStart="3600s" tcFormat="NDF">
                    <spine>
                        <asset-clip ref="r2" offset="3600s" name="GX010042" start="0s" duration="60s" \
format="r1" tcFormat="NDF">
                            <marker start="5s" duration="1/25s" value="gap jump" \
note="big one | colour: #00ff00" />
                            <marker start="308/25s" duration="1/25s" value="rock garden" completed="0" \
note="REVIEW (confidence 0.41) | colour: sky" />
                            <marker start="59s" duration="1/25s" value="berm" />
                        </asset-clip>
                    </spine>
                </sequence>
            </project>
        </event>
    </library>
</fcpxml>
"""


def _options(rate: str, **kw) -> ExportOptions:
    return ExportOptions(FrameRate.from_string(rate), title="trail run 2", **kw)


def _seconds(value: str) -> Fraction:
    assert value.endswith("s"), value
    return Fraction(value[:-1])


def test_fcpxml_matches_inline_text() -> None:
    options = _options("25", video_path=Path("/media/GX010042.MP4"), video_duration=60.0)
    assert fcpxml.write_to_string(SMALL_MARKERS, options) == FCPXML_25


@pytest.mark.parametrize("rate_text", ["23.976", "25", "29.97", "30", "59.94"])
def test_structure_follows_the_dtd(rate_text: str) -> None:
    options = _options(rate_text, video_duration=30.0)
    text = fcpxml.write_to_string(AWKWARD_MARKERS, options)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n')
    root = ET.fromstring(text)
    assert root.tag == "fcpxml" and root.get("version") == "1.10"
    # <!ELEMENT fcpxml (import-options?, resources?, (library | event* | ...))>
    assert [child.tag for child in root] == ["resources", "library"]
    fmt, asset = root.find("resources")
    assert fmt.tag == "format" and fmt.get("frameDuration") == fcpxml.fcpxml_time(1, options.rate)
    # <!ELEMENT asset (media-rep+, metadata?)>; media-rep src is required.
    assert [c.tag for c in asset] == ["media-rep"] and asset[0].get("src")
    # library > event > project > sequence (note?, spine, metadata?) > spine > asset-clip
    (event,) = root.find("library")
    (project,) = event
    (sequence,) = project
    assert [c.tag for c in sequence] == ["spine"]
    assert sequence.get("tcFormat") == ("DF" if options.rate.drop_frame else "NDF")
    (clip,) = sequence.find("spine")
    assert clip.tag == "asset-clip" and clip.get("ref") == asset.get("id")
    assert {c.tag for c in clip} == {"marker"}
    step = options.rate.frame_duration
    times = [
        _seconds(e.get(attr))
        for e in root.iter()
        for attr in ("start", "duration", "offset", "tcStart", "frameDuration")
        if e.get(attr)
    ]
    assert times and all((t / step).denominator == 1 for t in times)  # every time on a frame
    for marker, source in zip(clip, AWKWARD_MARKERS, strict=True):
        assert marker.get("start") and marker.get("value")  # both #REQUIRED
        assert marker.get("value") == single_line(source.name)
        assert (marker.get("completed") == "0") is source.needs_review


@pytest.mark.parametrize("rate_text", ["24", "25", "29.97", "30", "50", "59.94"])
def test_fcpxml_reread_by_opentimelineio(rate_text: str) -> None:
    options = _options(rate_text, video_path=Path("/media/run.mp4"), video_duration=70.0)
    text = fcpxml.write_to_string(SMALL_MARKERS, options)
    collection = otio.adapters.read_from_string(text, adapter_name="fcpx_xml")
    (timeline,) = collection
    (clip,) = timeline.find_clips()
    placed = [m for m in SMALL_MARKERS if m.t_new is not None]
    assert [m.name for m in clip.markers] == [m.name for m in placed]
    assert [m.color for m in clip.markers] == ["PURPLE", "RED", "PURPLE"]  # to-do (review) markers are red
    # OTIO's FCPXML reader counts frames at the integer rate (29 for 29.97) and truncates.
    tolerance = 1.0 / int(options.rate.rate) + 1.0 / float(options.rate.rate) / 2
    for read, marker in zip(clip.markers, placed, strict=True):
        assert abs(read.marked_range.start_time.to_seconds() - marker.t_new) <= tolerance + 1e-9


def test_awkward_names_survive_xml() -> None:
    text = fcpxml.write_to_string(AWKWARD_MARKERS, _options("25"))
    (timeline,) = otio.adapters.read_from_string(text, adapter_name="fcpx_xml")
    (clip,) = timeline.find_clips()
    assert [m.name for m in clip.markers] == [single_line(m.name) for m in AWKWARD_MARKERS]
    notes = [e.get("note") for e in ET.fromstring(text).iter("marker")]
    assert notes[0].startswith("REVIEW (confidence 0.90): note 0\nsecond line")  # line breaks kept in notes
    assert any("colour: not-a-colour" in n for n in notes)


def test_control_characters_are_removed() -> None:
    from mtbsync.markers.model import TransferredMarker

    marker = TransferredMarker("bell\x07 and nul\x00 end", 0, 1.0, 1.0, False, comment="esc\x1b")
    text = fcpxml.write_to_string([marker], _options("25"))
    (element,) = ET.fromstring(text).iter("marker")
    assert element.get("value") == "bell and nul end"
    assert element.get("note") == "esc"

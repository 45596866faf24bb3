"""CMX 3600 EDLs: Avid locators and Resolve's marker EDL, against inline text and OpenTimelineIO."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from export_cases import AWKWARD_MARKERS, SMALL_MARKERS

from mtbsync.errors import ExportError
from mtbsync.export import ExportOptions, FrameRate, edl, export_markers
from mtbsync.export.common import single_line
from mtbsync.markers.model import TransferredMarker

RATES = ("23.976", "24", "25", "29.97", "30", "50", "59.94", "60")

RESOLVE_25 = """\
TITLE: trail run 2
FCM: NON-DROP FRAME

001  001      V     C        01:00:05:00 01:00:05:01 01:00:05:00 01:00:05:01
big one |C:ResolveColorGreen |M:gap jump |D:1

002  001      V     C        01:00:12:08 01:00:12:09 01:00:12:08 01:00:12:09
REVIEW (confidence 0.41) |C:ResolveColorRed |M:rock garden |D:1

003  001      V     C        01:00:59:00 01:00:59:01 01:00:59:00 01:00:59:01
 |C:ResolveColorBlue |M:berm |D:1
"""

AVID_2997 = """\
TITLE: trail run 2
FCM: DROP FRAME

001  001      V     C        01:00:00;00 01:00:59;28 01:00:00;00 01:00:59;28
* FROM CLIP NAME: GX010042.MP4
* LOC: 01:00:05;00 GREEN   gap jump
* LOC: 01:00:12;10 RED     REVIEW rock garden
* LOC: 01:00:58;28 BLUE    berm
"""


def _options(rate: str, **kw) -> ExportOptions:
    return ExportOptions(FrameRate.from_string(rate), title="trail run 2", **kw)


def test_resolve_edl_matches_inline_text() -> None:
    assert edl.write_to_string(SMALL_MARKERS, _options("25"), flavour="resolve") == RESOLVE_25


def test_avid_edl_matches_inline_text() -> None:
    options = _options("29.97", video_path=Path("/media/GX010042.MP4"), video_duration=60.0)
    assert edl.write_to_string(SMALL_MARKERS, options) == AVID_2997


def _resolve_markers(text: str, rate: FrameRate) -> list[tuple[str, Fraction, str]]:
    """Name, record time (s) and marker line of each event, as OpenTimelineIO reads the EDL."""
    timeline = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=float(rate.rate))
    (track,) = timeline.tracks
    # The reader starts the track at the first event's record in: add it back.
    first_record_in = -track.source_range.start_time if track.source_range else otio.opentime.RationalTime()
    out = []
    for clip in track.find_clips():
        start = clip.range_in_parent().start_time + first_record_in
        (line,) = clip.metadata["cmx_3600"]["comments"]
        name = re.search(r"\|M:(.*) \|D:1$", line)
        assert name, line
        out.append((name.group(1), Fraction(start.value).limit_denominator() / Fraction(start.rate), line))
        assert clip.source_range.duration.value == 1  # one-frame events
    return out


@pytest.mark.parametrize("rate_text", RATES)
def test_resolve_edl_reread_by_opentimelineio(rate_text: str) -> None:
    options = _options(rate_text, start_timecode="00:59:58:00" if rate_text != "29.97" else "01:00:00:00")
    rate = options.rate
    text = edl.write_to_string(SMALL_MARKERS, options, flavour="resolve")
    read = _resolve_markers(text, rate)
    placed = [m for m in SMALL_MARKERS if m.t_new is not None]
    assert [name for name, _, _ in read] == [m.name for m in placed]
    start_s = rate.frames_to_seconds(options.start_frame)
    for (_, record_s, _), marker in zip(read, placed, strict=True):
        # OTIO reads record timecode at the float rate; compare in frames of the new video.
        error_frames = abs((float(record_s) - float(start_s)) - marker.t_new) * float(rate.rate)
        assert error_frames <= 1.0 + 1e-6, (rate_text, marker.name, error_frames)


@pytest.mark.parametrize("rate_text", [r for r in RATES if r not in ("29.97", "59.94")])
def test_avid_locators_reread_by_opentimelineio(rate_text: str) -> None:
    options = _options(rate_text, video_duration=70.0)
    text = edl.write_to_string(SMALL_MARKERS, options)
    timeline = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=float(options.rate.rate))
    (clip,) = timeline.tracks[0].find_clips()
    placed = [m for m in SMALL_MARKERS if m.t_new is not None]
    assert [m.name for m in clip.markers] == [("REVIEW " if m.needs_review else "") + m.name for m in placed]
    assert [m.color for m in clip.markers] == ["GREEN", "RED", "BLUE"]
    start_s = float(options.rate.frames_to_seconds(options.start_frame))
    for read, marker in zip(clip.markers, placed, strict=True):
        error_frames = abs(read.marked_range.start_time.to_seconds() - start_s - marker.t_new)
        assert error_frames * float(options.rate.rate) <= 1.0 + 1e-6


@pytest.mark.parametrize("rate_text", ["29.97", "59.94"])
def test_drop_frame_locators_use_drop_frame_timecode(rate_text: str) -> None:
    # OTIO's cmx_3600 reader only matches "HH:MM:SS:FF" locators, so drop-frame ones ("01:00:05;00")
    # are checked here with our own reader, and the event line by OTIO.
    options = _options(rate_text, video_duration=70.0)
    text = edl.write_to_string(SMALL_MARKERS, options)
    timeline = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=float(options.rate.rate))
    assert len(timeline.tracks[0].find_clips()) == 1
    locs = re.findall(r"^\* LOC: (\S+) ", text, flags=re.M)
    placed = [m for m in SMALL_MARKERS if m.t_new is not None]
    assert len(locs) == len(placed)
    for tc, marker in zip(locs, placed, strict=True):
        assert ";" in tc
        frame = options.rate.timecode_to_frames(tc) - options.start_frame
        assert frame == options.rate.seconds_to_frames(marker.t_new)


@pytest.mark.parametrize("flavour", ["avid", "resolve"])
def test_awkward_names_stay_on_one_line_and_parse(flavour: str) -> None:
    options = _options("25")
    text = edl.write_to_string(AWKWARD_MARKERS, options, flavour=flavour)
    timeline = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=25)
    assert "\r" not in text and "\t" not in text
    if flavour == "resolve":
        names = [name for name, _, _ in _resolve_markers(text, options.rate)]
        expected = [single_line(m.name).replace("|", "/") for m in AWKWARD_MARKERS]
        assert len(timeline.tracks[0].find_clips()) == len(AWKWARD_MARKERS)
        # Every marker line has exactly the three fields Resolve reads.
        for line in text.splitlines():
            if "|C:" in line:
                assert line.count("|") == 3 and not line[0].isdigit()
    else:
        names = [m.name.removeprefix("REVIEW ") for m in timeline.tracks[0].find_clips()[0].markers]
        expected = [single_line(m.name) for m in AWKWARD_MARKERS]
    assert names == expected
    assert "Лесная тропа — корни" in names and "森林小道 跳跃" in names and "x" * 200 in names


def test_resolve_merges_markers_on_one_frame() -> None:
    markers = [
        TransferredMarker("a", 1.0, 2.0, 0.9, False, "green"),
        TransferredMarker("b", 1.1, 2.01, 0.5, True, "green"),
    ]
    text = edl.write_to_string(markers, _options("25"), flavour="resolve")
    assert text.count("|M:") == 1
    assert "|C:ResolveColorRed |M:a + b |D:1" in text
    # The Avid flavour keeps both locators on the one event.
    assert edl.write_to_string(markers, _options("25")).count("* LOC:") == 2


def test_resolve_colour_names_map() -> None:
    colours = ["Sky", "ResolveColorMint", "#ff00ff", "orange", "weird", ""]
    markers = [TransferredMarker(f"m{k}", 0, float(k), 1.0, False, c) for k, c in enumerate(colours)]
    text = edl.write_to_string(markers, _options("25"), flavour="resolve")
    assert re.findall(r"\|C:ResolveColor(\w+)", text) == ["Sky", "Mint", "Pink", "Yellow", "Blue", "Blue"]


def test_bad_reel_and_start_timecode_are_refused() -> None:
    with pytest.raises(ExportError, match="reel"):
        _options("25", reel="TOO-LONG-REEL")
    with pytest.raises(ExportError, match="timecode"):
        _options("25", start_timecode="1h")
    with pytest.raises(ExportError, match="does not exist"):
        _options("29.97", start_timecode="00:01:00;00")


def test_too_many_events_is_an_error() -> None:
    markers = [TransferredMarker(f"m{k}", 0, k / 25, 1.0, False) for k in range(1000)]
    with pytest.raises(ExportError, match="999"):
        edl.write_to_string(markers, _options("25"), flavour="resolve")


def test_written_file_is_utf8(tmp_path: Path) -> None:
    path = export_markers(AWKWARD_MARKERS, "resolve-edl", tmp_path / "m.edl", _options("25")).path
    assert "森林小道" in path.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["m.edl"]

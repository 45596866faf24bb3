"""Frame rates and timecode: drop-frame tables, round trips at every rate, rounding, parsing."""

from __future__ import annotations

from fractions import Fraction

import opentimelineio as otio
import pytest

from mtbsync.errors import ExportError
from mtbsync.export.timecode import FrameRate

RATES = ("23.976", "24", "25", "29.97", "30", "50", "59.94", "60")

# (frame, timecode) at 29.97 drop-frame: frames 00 and 01 are skipped each minute but every tenth.
DF_2997 = [
    (0, "00:00:00;00"),
    (1799, "00:00:59;29"),
    (1800, "00:01:00;02"),
    (1801, "00:01:00;03"),
    (3597, "00:01:59;29"),
    (3598, "00:02:00;02"),
    (17981, "00:09:59;29"),
    (17982, "00:10:00;00"),
    (17983, "00:10:00;01"),
    (19781, "00:10:59;29"),
    (19782, "00:11:00;02"),
    (107892, "01:00:00;00"),
    (2589407, "23:59:59;29"),
]
# At 59.94 drop-frame four frame numbers are skipped.
DF_5994 = [
    (3599, "00:00:59;59"),
    (3600, "00:01:00;04"),
    (35964, "00:10:00;00"),
    (215784, "01:00:00;00"),
]
NDF = [
    ("25", 90000, "01:00:00:00"),
    ("24", 86400, "01:00:00:00"),
    ("23.976", 86400, "01:00:00:00"),
    ("30", 108000, "01:00:00:00"),
    ("50", 180049, "01:00:00:49"),
    ("60", 216059, "01:00:00:59"),
]


@pytest.mark.parametrize(("frames", "timecode"), DF_2997)
def test_drop_frame_2997_table(frames: int, timecode: str) -> None:
    rate = FrameRate.from_string("29.97")
    assert rate.drop_frame
    assert rate.frames_to_timecode(frames) == timecode
    assert rate.timecode_to_frames(timecode) == frames


@pytest.mark.parametrize(("frames", "timecode"), DF_5994)
def test_drop_frame_5994_table(frames: int, timecode: str) -> None:
    rate = FrameRate.from_string("59.94")
    assert rate.frames_to_timecode(frames) == timecode
    assert rate.timecode_to_frames(timecode) == frames


@pytest.mark.parametrize(("text", "frames", "timecode"), NDF)
def test_non_drop_table(text: str, frames: int, timecode: str) -> None:
    rate = FrameRate.from_string(text)
    assert not rate.drop_frame
    assert rate.frames_to_timecode(frames) == timecode
    assert rate.timecode_to_frames(timecode) == frames


def test_ndf_override_counts_every_frame_number() -> None:
    rate = FrameRate.from_string("29.97", drop_frame=False)
    assert rate.frames_to_timecode(1800) == "00:01:00:00"
    assert rate.frames_to_timecode(108000) == "01:00:00:00"
    assert rate.label == "29.97 NDF"


@pytest.mark.parametrize("text", RATES)
@pytest.mark.parametrize("drop", [None, False])
def test_round_trip_and_agreement_with_opentimelineio(text: str, drop: bool | None) -> None:
    rate = FrameRate.from_string(text, drop_frame=drop)
    nominal = rate.nominal
    # Every minute boundary of the first 12 minutes and around each hour, plus odd frames.
    frames = {m * 60 * nominal + d for m in range(13) for d in (-3, -2, -1, 0, 1, 2, 3)}
    frames |= {h * 3600 * nominal + d for h in (1, 10, 23) for d in (-1, 0, 1)}
    frames |= set(range(0, 40 * 60 * nominal, 997))
    for frame in sorted(f for f in frames if f >= 0):
        timecode = rate.frames_to_timecode(frame)
        assert rate.timecode_to_frames(timecode) == frame, timecode
        expected = otio.opentime.to_timecode(
            otio.opentime.RationalTime(frame, float(rate.rate)), float(rate.rate), rate.drop_frame
        )
        assert timecode == expected, (frame, timecode, expected)


@pytest.mark.parametrize(
    ("text", "rate", "drop"),
    [
        ("29.97", Fraction(30000, 1001), True),
        ("30000/1001", Fraction(30000, 1001), True),
        ("29.97 NDF", Fraction(30000, 1001), False),
        ("59.94", Fraction(60000, 1001), True),
        ("23.976", Fraction(24000, 1001), False),
        ("23.98", Fraction(24000, 1001), False),
        ("24", Fraction(24), False),
        ("25fps", Fraction(25), False),
        ("50", Fraction(50), False),
        ("60.0", Fraction(60), False),
        ("119.88", Fraction(120000, 1001), False),
    ],
)
def test_rates_snap_to_exact_fractions(text: str, rate: Fraction, drop: bool) -> None:
    parsed = FrameRate.from_string(text)
    assert parsed.rate == rate
    assert parsed.drop_frame is drop


def test_container_rates_snap() -> None:
    assert FrameRate.from_fraction(Fraction(2997, 100)).rate == Fraction(30000, 1001)
    assert FrameRate.from_fraction(29.970029).rate == Fraction(30000, 1001)
    assert FrameRate.from_fraction(Fraction(25)).rate == 25


@pytest.mark.parametrize("text", ["abc", "", "0", "-25", "12.5", "1000", "29.5"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ExportError):
        FrameRate.from_string(text)


def test_drop_frame_only_at_2997_and_5994() -> None:
    with pytest.raises(ExportError, match="drop-frame"):
        FrameRate.from_string("25", drop_frame=True)
    with pytest.raises(ExportError, match="drop-frame"):
        FrameRate.from_string("23.976DF")


def test_seconds_round_to_the_nearest_frame() -> None:
    ntsc = FrameRate.from_string("29.97")
    assert ntsc.seconds_to_frames(5.0) == 150  # 149.85 frames
    assert ntsc.seconds_to_frames(60.06) == 1800  # exactly 1800 frames
    pal = FrameRate.from_string("25")
    assert pal.seconds_to_frames(0.5) == 13  # 12.5: halves round up
    assert pal.seconds_to_frames(0.019) == 0
    assert pal.seconds_to_frames(0.021) == 1
    assert pal.frames_to_seconds(13) == Fraction(13, 25)


@pytest.mark.parametrize("timecode", ["00:01:00;00", "00:01:00;01", "00:09:00;01"])
def test_drop_frame_skipped_numbers_do_not_exist(timecode: str) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        FrameRate.from_string("29.97").timecode_to_frames(timecode)


@pytest.mark.parametrize("timecode", ["1:00:00", "01:60:00:00", "01:00:00:30", "aa:bb:cc:dd"])
def test_bad_timecode_is_refused(timecode: str) -> None:
    with pytest.raises(ExportError):
        FrameRate.from_string("30").timecode_to_frames(timecode)


def test_timecode_does_not_wrap_past_24_hours() -> None:
    rate = FrameRate.from_string("25")
    assert rate.frames_to_timecode(24 * 3600 * 25 - 1) == "23:59:59:24"
    with pytest.raises(ExportError, match="23:59:59"):
        rate.frames_to_timecode(24 * 3600 * 25)
    with pytest.raises(ExportError):
        rate.frames_to_timecode(-1)


@pytest.mark.parametrize("text", ["1e309", "0", "-1", "241", "9" * 400])
def test_rate_out_of_range_is_one_short_line(text: str) -> None:
    with pytest.raises(ExportError, match="is not a video rate") as caught:
        FrameRate.from_string(text)
    assert len(str(caught.value)) < 200 and "\n" not in str(caught.value)

"""GPX and FIT track files: reading, timing on the video's timeline, offsets, malformed files."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from mtbsync.errors import TrackFileError
from mtbsync.ingest.fit import read_fit
from mtbsync.ingest.gpx import read_gpx, read_track_file

GPX = """<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">
  <trk><name>run</name><trkseg>
    <trkpt lat="46.5000000" lon="7.9000000"><ele>1500.0</ele><time>2024-06-15T14:27:00.0Z</time></trkpt>
    <trkpt lat="46.5000500" lon="7.9000000"><ele>1499.5</ele><time>2024-06-15T14:27:01.0Z</time></trkpt>
    <trkpt lat="46.5001000" lon="7.9000000"><ele>1499.0</ele><time>2024-06-15T14:27:02.5Z</time></trkpt>
  </trkseg></trk>
</gpx>
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_gpx_points_are_timed_from_the_first_point(tmp_path: Path) -> None:
    track = read_gpx(write(tmp_path / "run.gpx", GPX))
    assert track.source == "gpx"
    np.testing.assert_allclose(track.t, [0.0, 1.0, 2.5])
    np.testing.assert_allclose(track.lat, [46.5, 46.50005, 46.5001])
    np.testing.assert_allclose(track.alt, [1500.0, 1499.5, 1499.0])
    assert track.utc[0] == np.datetime64("2024-06-15T14:27:00", "us")
    assert track.usable.all()
    assert "first point" in track.notes[0]


def test_gpx_offset_and_video_start(tmp_path: Path) -> None:
    path = write(tmp_path / "run.gpx", GPX)
    np.testing.assert_allclose(read_gpx(path, offset_s=3.5).t, [3.5, 4.5, 6.0])
    start = np.datetime64("2024-06-15T14:26:50", "us")  # the video started 10 s before the track
    np.testing.assert_allclose(read_track_file(path, video_start_utc=start).t, [10.0, 11.0, 12.5])


def test_gpx_without_tracks_reads_route_points(tmp_path: Path) -> None:
    text = GPX.replace("<trk><name>run</name><trkseg>", "<rte>").replace("</trkseg></trk>", "</rte>")
    text = text.replace("trkpt", "rtept")
    assert len(read_gpx(write(tmp_path / "route.gpx", text))) == 3


def test_gpx_time_zones_are_converted_to_utc(tmp_path: Path) -> None:
    text = GPX.replace("2024-06-15T14:27:01.0Z", "2024-06-15T16:27:01.0+02:00")
    track = read_gpx(write(tmp_path / "tz.gpx", text))
    np.testing.assert_allclose(track.t, [0.0, 1.0, 2.5])


@pytest.mark.parametrize(
    ("text", "expected", "line"),
    [
        ("", "empty", None),
        (
            "<gpx><trk><trkseg><trkpt lat='1' lon='2'>\n<time>2024-01-01T00:00:00Z</time>\n</trkseg>",
            "malformed",
            3,
        ),
        ("<gpx version='1.1'></gpx>", "no track or route points", None),
        ("<gpx version='1.1'><trk><trkseg><trkpt lat='46' lon='7'/></trkseg></trk></gpx>", "no times", None),
        ("this is not xml at all", "malformed", 1),
    ],
)
def test_malformed_gpx_is_one_clear_error(tmp_path: Path, text: str, expected: str, line: int | None) -> None:
    path = write(tmp_path / "bad.gpx", text)
    with pytest.raises(TrackFileError) as info:
        read_gpx(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert str(path) in message
    assert info.value.line == line


def test_missing_and_unsupported_track_files(tmp_path: Path) -> None:
    with pytest.raises(TrackFileError, match="cannot read"):
        read_track_file(tmp_path / "nothing.gpx")
    with pytest.raises(TrackFileError, match="does not exist"):
        read_track_file(tmp_path / "nothing.fit")
    with pytest.raises(TrackFileError, match=r"unsupported track file type '\.kml'"):
        read_track_file(write(tmp_path / "run.kml", "<kml/>"))


# ------------------------------------------------------------------------------------------------
# A tiny FIT writer (fitdecode only reads): header, definition and data messages, CRCs.

_CRC_TABLE = [0x0000, 0xCC01, 0xD801, 0x1400, 0xF001, 0x3C00, 0x2800, 0xE401,
              0xA001, 0x6C00, 0x7800, 0xB401, 0x5000, 0x9C01, 0x8801, 0x4400]  # fmt: skip
_FIT_EPOCH = datetime(1989, 12, 31, tzinfo=UTC)


def fit_crc(data: bytes, crc: int = 0) -> int:
    for byte in data:
        for nibble in (byte & 0xF, byte >> 4):
            tmp = _CRC_TABLE[crc & 0xF]
            crc = ((crc >> 4) & 0x0FFF) ^ tmp ^ _CRC_TABLE[nibble]
    return crc


def fit_file(records: list[tuple[datetime, float | None, float | None, float, float]]) -> bytes:
    """FIT bytes with a file_id and one ``record`` per (time, lat, lon, altitude m, speed m/s)."""

    def definition(local: int, global_num: int, fields: list[tuple[int, int, int]]) -> bytes:
        body = struct.pack("<BBHB", 0, 0, global_num, len(fields))
        return bytes([0x40 | local]) + body + b"".join(struct.pack("<BBB", *f) for f in fields)

    def stamp(when: datetime) -> int:
        return int((when - _FIT_EPOCH).total_seconds())

    data = definition(0, 0, [(0, 1, 0x00), (1, 2, 0x84), (4, 4, 0x86)])
    data += bytes([0]) + struct.pack("<BHI", 4, 255, stamp(records[0][0]) if records else 0)
    data += definition(1, 20, [(253, 4, 0x86), (0, 4, 0x85), (1, 4, 0x85), (2, 2, 0x84), (6, 2, 0x84)])
    invalid = 0x7FFFFFFF
    for when, lat, lon, alt, speed in records:
        semi_lat = invalid if lat is None else round(lat * 2**31 / 180)
        semi_lon = invalid if lon is None else round(lon * 2**31 / 180)
        data += bytes([1]) + struct.pack(
            "<IiiHH", stamp(when), semi_lat, semi_lon, round((alt + 500) * 5), round(speed * 1000)
        )
    header = struct.pack("<BBHI4s", 14, 0x20, 2132, len(data), b".FIT")
    header += struct.pack("<H", fit_crc(header))
    body = header + data
    return body + struct.pack("<H", fit_crc(body))


def fit_records(n: int = 5) -> list[tuple[datetime, float | None, float | None, float, float]]:
    start = datetime(2024, 6, 15, 14, 27, 0, tzinfo=UTC)
    return [
        (start.replace(second=k), 46.5 + 1e-5 * k, 7.9 + 2e-5 * k, 1500.0 - k, 5.0 + 0.5 * k)
        for k in range(n)
    ]


def test_fit_records_are_read_as_a_track(tmp_path: Path) -> None:
    path = tmp_path / "ride.fit"
    path.write_bytes(fit_file(fit_records(5)))
    track = read_track_file(path, offset_s=2.0)
    assert track.source == "fit"
    np.testing.assert_allclose(track.t, [2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_allclose(track.lat, 46.5 + 1e-5 * np.arange(5), atol=1e-7)
    np.testing.assert_allclose(track.lon, 7.9 + 2e-5 * np.arange(5), atol=1e-7)
    np.testing.assert_allclose(track.alt, 1500.0 - np.arange(5), atol=0.2)
    np.testing.assert_allclose(track.speed, 5.0 + 0.5 * np.arange(5), atol=1e-3)
    assert track.utc[0] == np.datetime64("2024-06-15T14:27:00", "us")


def test_fit_records_without_position_are_skipped(tmp_path: Path) -> None:
    records = fit_records(4)
    records[1] = (records[1][0], None, None, 1500.0, 5.0)
    path = tmp_path / "gaps.fit"
    path.write_bytes(fit_file(records))
    np.testing.assert_allclose(read_fit(path).t, [0.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("mangle", "expected"),
    [
        (lambda b: b[: len(b) // 2], "not a valid FIT file"),  # truncated
        (lambda b: b[:-2] + bytes([b[-2] ^ 0xFF, b[-1]]), "not a valid FIT file"),  # file CRC wrong
        (lambda b: b"GARBAGE!" * 8, "not a valid FIT file"),
        (lambda b: b"", "empty"),
        (lambda b: fit_file([]), "no records with a position"),
    ],
)
def test_malformed_fit_is_one_clear_error(tmp_path: Path, mangle, expected: str) -> None:
    path = tmp_path / "bad.fit"
    path.write_bytes(mangle(fit_file(fit_records(6))))
    with pytest.raises(TrackFileError) as info:
        read_fit(path)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_gpx_written_by_the_sample_writer_round_trips(tmp_path: Path) -> None:
    from mtbsync.ingest.track import make_track
    from mtbsync.samples.gps import write_gpx

    t = np.arange(0.0, 3.0, 0.5)
    utc = np.datetime64("2024-06-15T10:00:00", "us") + (t * 1e6).astype("timedelta64[us]")
    track = make_track(t, 46.5 + 1e-5 * t, 7.9 + 1e-5 * t, alt=1000 + t, utc=utc, source="sample")
    back = read_gpx(write_gpx(tmp_path / "w.gpx", track), offset_s=1.0)
    np.testing.assert_allclose(back.t, t + 1.0, atol=1e-6)
    np.testing.assert_allclose(back.lat, track.lat, atol=1e-7)

"""The GPMF parser on hand-built KLVs (exact expectations) and on real payloads."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from mtbsync.errors import TelemetryError
from mtbsync.ingest.gpmf import (
    decode_values,
    expand_type,
    gps9_utc,
    parse_gpsu,
    parse_klv,
    parse_payload,
    split_track,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "gopro"


def klv(key: str, type_char: str, size: int, repeat: int, value: bytes) -> bytes:
    """One KLV with its 32-bit padding."""
    header = key.encode() + (b"\0" if type_char == "" else type_char.encode()) + bytes([size])
    header += struct.pack(">H", repeat)
    return header + value + b"\0" * (-len(value) % 4)


def nest(key: str, *children: bytes) -> bytes:
    body = b"".join(children)
    return klv(key, "", 1, len(body), body)  # nested: size 1, repeat = byte length


def gps5_payload(*, fix: int = 3, gpsu: bytes = b"220920132938.299", scal_count: int = 5) -> bytes:
    scal = [10_000_000, 10_000_000, 1000, 1000, 100][:scal_count] if scal_count > 1 else [10_000_000]
    samples = [(423425835, -87526142, 58512, 173, 12), (423425836, -87526143, 58513, 174, 13)]
    stream = nest(
        "STRM",
        klv("STNM", "c", 1, 3, b"GPS"),
        klv("GPSF", "L", 4, 1, struct.pack(">I", fix)),
        klv("GPSU", "U", 16, 1, gpsu),
        klv("GPSP", "S", 2, 1, struct.pack(">H", 141)),
        klv("SCAL", "l", 4, len(scal), struct.pack(f">{len(scal)}i", *scal)),
        klv("GPS5", "l", 20, 2, b"".join(struct.pack(">5i", *s) for s in samples)),
    )
    return nest(
        "DEVC", klv("DVID", "L", 4, 1, struct.pack(">I", 1)), klv("DVNM", "c", 1, 11, b"HERO7 Black"), stream
    )


def test_klv_header_padding_and_nesting() -> None:
    data = nest("DEVC", klv("DVNM", "c", 1, 5, b"Hello"), klv("TSMP", "L", 4, 1, struct.pack(">I", 7)))
    (devc,) = parse_klv(data)
    assert devc.key == "DEVC" and devc.type == "" and len(devc.children) == 2
    name, tsmp = devc.children
    assert (name.key, name.type, name.size, name.repeat, name.data) == ("DVNM", "c", 1, 5, b"Hello")
    assert tsmp.offset == 8 + 8 + 8  # DEVC header, DVNM header, 5 bytes padded to 8


def test_gps5_scaled_per_element() -> None:
    payload = parse_payload(gps5_payload())
    (block,) = payload.gps
    assert payload.devices == ("HERO7 Black",)
    assert block.kind == "GPS5" and block.fix == 3 and block.dop == pytest.approx(1.41)
    np.testing.assert_allclose(block.values[0], [42.3425835, -8.7526142, 58.512, 0.173, 0.12])
    assert block.utc == datetime(2022, 9, 20, 13, 29, 38, 299000, tzinfo=UTC)
    assert payload.sample_counts == {"GPS5": 2}


def test_scalar_scal_divides_every_element() -> None:
    (block,) = parse_payload(gps5_payload(scal_count=1)).gps
    np.testing.assert_allclose(block.values[0], np.array([423425835, -87526142, 58512, 173, 12]) / 1e7)


def test_wrong_scal_count_is_a_stream_problem() -> None:
    bad = gps5_payload().replace(
        klv("SCAL", "l", 4, 5, struct.pack(">5i", 10_000_000, 10_000_000, 1000, 1000, 100)),
        klv("SCAL", "l", 4, 3, struct.pack(">3i", 1, 2, 3)),
    )
    payload = parse_payload(_rebuild(bad))
    assert payload.gps == () and len(payload.problems) == 1 and "SCAL" in payload.problems[0]


def _rebuild(data: bytes) -> bytes:
    """Fix the nested sizes of a DEVC > STRM payload whose inner KLVs were edited."""
    inner_start = data.index(b"STRM")
    strm_body = data[inner_start + 8 :]
    devc_head = data[8:inner_start]
    return nest("DEVC", devc_head, nest("STRM", strm_body))


def test_complex_type_gps9() -> None:
    types = "lllllllSS"
    sample = struct.pack(">7i2H", 424261529, -86499795, 34098, 18, 10, 8298, 48576899, 179, 3)
    stream = nest(
        "STRM",
        klv("TYPE", "c", 1, len(types), types.encode()),
        klv("SCAL", "l", 4, 9, struct.pack(">9i", 10_000_000, 10_000_000, 1000, 1000, 100, 1, 1000, 100, 1)),
        klv("GPS9", "?", 32, 1, sample),
    )
    (block,) = parse_payload(nest("DEVC", stream)).gps
    np.testing.assert_allclose(
        block.values[0], [42.4261529, -8.6499795, 34.098, 0.018, 0.1, 8298, 48576.899, 1.79, 3]
    )
    assert gps9_utc(block.values[0, 5], block.values[0, 6]) == datetime(
        2022, 9, 20, 13, 29, 36, 899000, tzinfo=UTC
    )


def test_expand_type_counts() -> None:
    assert expand_type("f[3]L") == "fffL"
    with pytest.raises(TelemetryError):
        expand_type("f[3")
    with pytest.raises(TelemetryError):
        expand_type("Z")


def test_fixed_point_and_struct_mismatch() -> None:
    (item,) = parse_klv(klv("TEST", "q", 4, 1, struct.pack(">i", 3 * 65536 + 32768)))
    assert decode_values(item)[0, 0] == 3.5
    (odd,) = parse_klv(klv("TEST", "l", 6, 1, b"\0" * 6))
    with pytest.raises(TelemetryError):
        decode_values(odd)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"DEVC\0\x01\x10\x00", "claims"),  # repeat * size past the end
        (b"de\x01C\0\x01\0\0", "FourCC"),  # not a key
        (b"ABCD", "stray"),  # truncated header
        (klv("ABCD", "Z", 1, 1, b"x"), "unknown type"),
    ],
)
def test_malformed_klv_raises(data: bytes, words: str) -> None:
    with pytest.raises(TelemetryError) as info:
        parse_klv(data)
    assert words in str(info.value)


def test_deep_nesting_is_refused() -> None:
    data = klv("DVNM", "c", 1, 1, b"x")
    for _ in range(12):
        data = nest("DEVC", data)
    with pytest.raises(TelemetryError, match="deeper"):
        parse_klv(data)


def test_trailing_zero_padding_ends_the_payload() -> None:
    assert len(parse_klv(gps5_payload() + b"\0" * 12)) == 1


def test_gpsu_variants() -> None:
    assert parse_gpsu("151018000014.299") == datetime(2015, 10, 18, 0, 0, 14, 299000, tzinfo=UTC)
    assert parse_gpsu("not a date") is None
    assert parse_gpsu("991399999999.000") is None


def test_real_payloads_stream_counts() -> None:
    """Sample counts per stream equal the reference summary (gopro-telemetry) for the HERO7 track."""
    import json

    summary = json.loads((DATA / "reference" / "hero7-track.summary.json").read_text())
    expected = {s["key"]: s["samples"] for d in summary["devices"] for s in d["streams"]}
    counts: dict[str, int] = {}
    for chunk in split_track((DATA / "hero7-track.raw").read_bytes()):
        for key, n in parse_payload(chunk).sample_counts.items():
            counts[key] = counts.get(key, 0) + n
    for key in ("ACCL", "GYRO", "GPS5", "SHUT", "ISOE"):
        assert counts[key] == expected[key]


def test_split_track_keeps_second_device_with_camera() -> None:
    (payload,) = split_track((DATA / "hero6-ble.raw").read_bytes())
    assert parse_payload(payload).devices == ("Hero6 Black", "SENSORB6")
    assert len(split_track((DATA / "hero7-track.raw").read_bytes())) == 17


def test_karma_payload_has_two_devices_and_no_gps() -> None:
    payload = parse_payload((DATA / "karma-payload.raw").read_bytes())
    assert payload.devices == ("Camera", "GoPro Karma v1.0")
    assert payload.gps == () and payload.problems == ()


def test_hero11_gps5_beside_gps9_matches_reference() -> None:
    import csv

    blocks = [
        b for chunk in split_track((DATA / "hero11.raw").read_bytes()) for b in parse_payload(chunk).gps
    ]
    gps5 = np.concatenate([b.values for b in blocks if b.kind == "GPS5"])
    gps9 = np.concatenate([b.values for b in blocks if b.kind == "GPS9"])
    with (DATA / "reference" / "hero11.gps5.csv").open() as fh:
        ref = list(csv.DictReader(fh))
    assert gps5.shape == (len(ref), 5) and gps9.shape == (len(ref), 9)
    np.testing.assert_allclose(gps5[:, 0], [float(r["lat"]) for r in ref], rtol=0, atol=1e-7)
    np.testing.assert_allclose(gps5[:, 1], [float(r["lon"]) for r in ref], rtol=0, atol=1e-7)
    np.testing.assert_allclose(gps9[:, :2], gps5[:, :2], rtol=0, atol=1e-7)  # the same fixes, twice

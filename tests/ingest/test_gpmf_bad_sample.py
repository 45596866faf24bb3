"""One bad byte costs one telemetry sample, never the GPS track (issue 12, item 4).

Direct cases on hand-built KLVs (a ``?`` GPS5 without TYPE, odd TYPE counts, NaN / inf sticky values,
positions off the globe, a short DVID), then end to end: one byte of one MET sample of a real GoPro
MP4 changed, ingested into a real DuckDB catalog, the rest of the track stored and the skip reported.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mtbsync.cli import app
from mtbsync.errors import TelemetryError
from mtbsync.ingest import mp4box
from mtbsync.ingest.gopro import MET_HANDLER, MetPayload, read_gopro_telemetry, telemetry_from_payloads
from mtbsync.ingest.gpmf import expand_type, parse_payload, split_track
from mtbsync.library.ingest import ingest_directory
from mtbsync.samples.gopro_mp4 import write_gopro_mp4
from mtbsync.store.catalog import Catalog

DATA = Path(__file__).resolve().parents[1] / "data" / "gopro"
SHARED_HERO7 = Path(__file__).resolve().parents[3] / "shared" / "data" / "gopro" / "hero7.mp4"
SKIP_NOTE = "GPS: 1 of {n} telemetry samples unreadable, skipped"


def klv(key: str, type_char: str, size: int, repeat: int, value: bytes) -> bytes:
    header = key.encode() + (b"\0" if type_char == "" else type_char.encode()) + bytes([size])
    return header + struct.pack(">H", repeat) + value + b"\0" * (-len(value) % 4)


def nest(key: str, *children: bytes) -> bytes:
    body = b"".join(children)
    return klv(key, "", 1, len(body), body)


def gps5_stream(
    *,
    type_char: str = "l",
    rows: tuple[tuple[int, ...], ...] = ((423425835, -87526142, 58512, 173, 12),) * 3,
    extra: tuple[bytes, ...] = (),
) -> bytes:
    scal = struct.pack(">5i", 10_000_000, 10_000_000, 1000, 1000, 100)
    return nest(
        "STRM",
        klv("GPSF", "L", 4, 1, struct.pack(">I", 3)),
        *extra,
        klv("SCAL", "l", 4, 5, scal),
        klv("GPS5", type_char, 20, len(rows), b"".join(struct.pack(">5i", *r) for r in rows)),
    )


def payload(*streams: bytes) -> bytes:
    return nest(
        "DEVC", klv("DVID", "L", 4, 1, struct.pack(">I", 1)), klv("DVNM", "c", 1, 4, b"Cam7"), *streams
    )


# --- the parser on its own ---------------------------------------------------------------------------


def test_complex_gps5_without_type_is_a_stream_problem_not_a_type_error() -> None:
    # The case: GPS5 typed '?' with no TYPE in its stream sent None into expand_type.
    parsed = parse_payload(payload(gps5_stream(type_char="?")))
    assert parsed.gps == ()
    assert parsed.failed_gps == ("GPS5",)
    (problem,) = parsed.problems
    assert "GPS5" in problem and "no TYPE" in problem
    with pytest.raises(TelemetryError, match="without a TYPE"):
        expand_type(None)


def test_complex_gps5_with_a_type_is_read() -> None:
    stream = gps5_stream(type_char="?", extra=(klv("TYPE", "c", 1, 5, b"lllll"),))
    (block,) = parse_payload(payload(stream)).gps
    np.testing.assert_allclose(block.values[0, :2], [42.3425835, -8.7526142])


@pytest.mark.parametrize(
    "type_string",
    ["l[\u00b2]", "l[\u00b9]llll", "f[99999]", "l[4096]l[4096]", "l" * 300, "ll[", "f[]", "Z", "?", "c"],
)
def test_odd_type_strings_are_refused(type_string: str) -> None:
    if type_string != "c":  # 'c' is a type char, just not a number: decode_values refuses it
        with pytest.raises(TelemetryError):
            expand_type(type_string)
    stream = gps5_stream(
        type_char="?", extra=(klv("TYPE", "c", 1, len(type_string), type_string.encode("latin-1")),)
    )
    parsed = parse_payload(payload(stream))
    assert parsed.gps == () and parsed.failed_gps == ("GPS5",)


def test_type_of_many_big_counts_fails_before_building_it() -> None:
    with pytest.raises(TelemetryError, match="more than 255"):
        expand_type("l[255]" * 50_000)  # would expand to 12.75 M chars


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e300])
@pytest.mark.parametrize("key", ["GPSF", "TSMP", "STMP"])
def test_non_finite_sticky_values_are_a_stream_problem(key: str, value: float) -> None:
    stream = gps5_stream(extra=(klv(key, "d", 8, 1, struct.pack(">d", value)),))
    parsed = parse_payload(payload(stream))  # OverflowError / ValueError before
    assert parsed.gps == () and parsed.failed_gps == ("GPS5",) and key in parsed.problems[0]


def test_non_finite_scal_is_a_stream_problem() -> None:
    bad_scal = klv("SCAL", "f", 4, 5, struct.pack(">5f", float("nan"), 1, 1, 1, 1))
    stream = nest("STRM", bad_scal, klv("GPS5", "l", 20, 1, struct.pack(">5i", 1, 2, 3, 4, 5)))
    parsed = parse_payload(payload(stream))
    assert parsed.gps == () and "SCAL" in parsed.problems[0]


def test_positions_off_the_globe_become_nan() -> None:
    rows = (
        (423425835, -87526142, 58512, 173, 12),
        (2_140_000_000, -87526142, 58512, 173, 12),  # 214 degrees of latitude: a damaged value
        (423425836, -1_900_000_000, 58512, 173, 12),  # -190 degrees of longitude
    )
    parsed = parse_payload(payload(gps5_stream(rows=rows)))
    (block,) = parsed.gps
    assert np.isfinite(block.values[0, :2]).all()
    assert np.isnan(block.values[1:, :2]).all()
    np.testing.assert_allclose(block.values[1:, 2], 58.512)  # the row keeps its place and its other values
    assert parsed.failed_gps == () and "2 of 3 positions out of range" in parsed.problems[0]
    telemetry = telemetry_from_payloads([MetPayload(payload(gps5_stream(rows=rows)), 0.0, 1.0)])
    assert telemetry.gps is not None and int(telemetry.gps.usable.sum()) == 1
    assert telemetry.skipped_samples == 0


def test_short_dvid_does_not_break_split_track() -> None:
    good = payload(gps5_stream())
    short_dvid = nest("DEVC", klv("DVID", "L", 2, 1, b"\0\1"), gps5_stream())  # struct.error before
    assert len(split_track(good + short_dvid)) == 1  # no device id: it joins the camera's payload


def test_one_bad_payload_among_good_ones_is_counted() -> None:
    good = payload(gps5_stream())
    bad = payload(gps5_stream(type_char="?"))
    telemetry = telemetry_from_payloads(
        [MetPayload(p, float(k), 1.0) for k, p in enumerate([good, bad, good])]
    )
    assert telemetry.gps is not None and len(telemetry.gps) == 6
    assert (telemetry.samples, telemetry.skipped_samples) == (3, 1)
    assert telemetry.problems[0] == SKIP_NOTE.format(n=3)


# --- end to end: one changed byte in a real MP4, ingested into DuckDB --------------------------------


def _met_samples(path: Path) -> list[tuple[int, bytes]]:
    """(file offset, bytes) of each MET sample, from the MP4's own sample table."""
    track = next(t for t in mp4box.read_index(path).tracks if t.handler_name == MET_HANDLER)
    data = path.read_bytes()
    return [(int(o), data[int(o) : int(o) + int(s)]) for o, s in zip(track.offsets, track.sizes, strict=True)]


def _gps5_rows(sample: bytes) -> int:
    return sum(len(b) for b in parse_payload(sample).gps if b.kind == "GPS5")


def _damage(src: Path, dst: Path, index: int, how: str) -> int:
    """Copy ``src`` with one byte of MET sample ``index`` changed; the GPS rows that sample held."""
    offset, sample = _met_samples(src)[index]
    blob = bytearray(src.read_bytes())
    if how == "gps5-type":  # GPS5's type 'l' -> '?' (the issue's flipped byte)
        pos = sample.index(b"GPS5") + 4
        assert sample[pos : pos + 1] == b"l"
        blob[offset + pos] = ord("?")
    else:  # the payload's first key: the whole sample is unreadable
        blob[offset] ^= 0x80
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(blob))
    return _gps5_rows(sample)


def _ingest(folder: Path, db: Path):
    with Catalog.open(db) as catalog:
        report = ingest_directory(folder, catalog, settle_s=0)
        (outcome,) = report.outcomes
        assert outcome.status == "new", outcome
        rows = catalog.gps_samples(outcome.run_id, usable_only=False)
        notes = catalog.query("SELECT notes FROM runs WHERE run_id = ?", [outcome.run_id])["notes"][0]
    return outcome, len(rows), notes


@pytest.fixture(scope="module")
def synthetic_gopro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GoPro-shaped MP4 carrying the 17 real HERO7 payloads of hero7-track.raw (always available)."""
    payloads = split_track((DATA / "hero7-track.raw").read_bytes())
    return write_gopro_mp4(
        tmp_path_factory.mktemp("gopro") / "GX010001.MP4",
        duration_s=float(len(payloads)),
        size=(64, 48),
        fps=10,
        gpmf_payloads=payloads,
    )


@pytest.mark.parametrize("how", ["gps5-type", "payload-key"])
def test_one_bad_byte_loses_one_sample_not_the_track(synthetic_gopro: Path, tmp_path: Path, how: str) -> None:
    clean = read_gopro_telemetry([synthetic_gopro])
    assert clean.gps is not None and clean.skipped_samples == 0
    lost = _damage(synthetic_gopro, tmp_path / "card" / "GX010001.MP4", 5, how)
    assert lost > 0
    outcome, stored, notes = _ingest(tmp_path / "card", tmp_path / "catalog.duckdb")
    assert stored == len(clean.gps) - lost
    assert outcome.gps and outcome.gps_source == "gpmf:GPS5"
    note = SKIP_NOTE.format(n=17)
    assert note in outcome.notes and note in notes.splitlines()
    assert not any("telemetry not read" in n for n in outcome.notes)


def test_hero7_one_flipped_byte_keeps_the_rest_of_the_track(tmp_path: Path) -> None:
    """The issue's file: hero7.mp4, 11 samples, 199 GPS rows; GPS5 typed '?' in sample 3."""
    if not SHARED_HERO7.exists():
        pytest.skip("hero7.mp4 is only in ../shared/data/gopro, which is absent")
    clean = read_gopro_telemetry([SHARED_HERO7])
    assert clean.gps is not None and len(clean.gps) == 199
    card = tmp_path / "card"
    lost = _damage(SHARED_HERO7, card / "GX010001.MP4", 3, "gps5-type")
    db = tmp_path / "catalog.duckdb"
    result = CliRunner().invoke(app, ["ingest", str(card), "--db", str(db), "--settle", "0"])
    assert result.exit_code == 0, result.output
    assert "1 new (1 with GPS" in result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "GX010001.MP4: GPS: 1 of 11 telemetry samples unreadable" in " ".join(result.output.split())
    with Catalog.open(db) as catalog:
        (run_id,) = catalog.query("SELECT run_id FROM runs")["run_id"]
        assert len(catalog.gps_samples(run_id, usable_only=False)) == 199 - lost == 181
        notes = catalog.query("SELECT notes FROM runs")["notes"][0]
    assert SKIP_NOTE.format(n=11) in notes.splitlines()

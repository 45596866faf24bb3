"""GoPro telemetry against an independent parser's output (gopro-telemetry), on real files, and bad input."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from mtbsync.errors import MediaError
from mtbsync.ingest.gopro import (
    MetPayload,
    read_gopro_telemetry,
    read_gps_from_mp4,
    retime_by_stmp,
    telemetry_from_payloads,
)
from mtbsync.ingest.gpmf import parse_payload, split_track
from mtbsync.samples.gopro_mp4 import write_gopro_mp4

DATA = Path(__file__).resolve().parents[1] / "data" / "gopro"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "gopro"
RAW_FILES = [
    "hero5.raw", "hero6.raw", "hero6-ble.raw", "fusion.raw", "hero11.raw", "hero7-track.raw",
    "hero6-track.gpmf", "hero8-grass.gpmf", "hero8-walking.gpmf", "hero8-basement.gpmf",
    "hero9-rotation.gpmd",
]  # fmt: skip
MP4_FILES = ["hero7.mp4", "max-heromode.mp4"]
NO_FIX = {"hero6.raw", "hero6-ble.raw", "hero8-grass.gpmf", "hero8-basement.gpmf", "hero9-rotation.gpmd"}
PAYLOAD_S = 1.001  # gopro-telemetry's assumption for raw payloads without MP4 timing


def _find(name: str) -> Path:
    for folder in (DATA, SHARED):
        if (folder / name).exists():
            return folder / name
    pytest.skip(f"{name} is only in ../shared/data/gopro, which is absent")


def _reference(name: str, suffix: str = ".gps.csv") -> list[dict[str, str]]:
    stem = name.rsplit(".", 1)[0]
    path = _find(f"reference/{stem}{suffix}")
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _raw_payloads(name: str) -> list[MetPayload]:
    chunks = split_track(_find(name).read_bytes())
    return [MetPayload(c, k * PAYLOAD_S, PAYLOAD_S) for k, c in enumerate(chunks)]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _assert_matches(gps, ref: list[dict[str, str]], *, time_tol_ms: float) -> None:
    assert len(gps) == len(ref)
    lat = np.array([float(r["lat"]) for r in ref])
    lon = np.array([float(r["lon"]) for r in ref])
    cts = np.array([float(r["cts_ms"]) for r in ref])
    np.testing.assert_allclose(gps.lat, lat, rtol=0, atol=1e-7)
    np.testing.assert_allclose(gps.lon, lon, rtol=0, atol=1e-7)
    np.testing.assert_allclose(gps.t * 1000, cts, rtol=0, atol=time_tol_ms)
    np.testing.assert_array_equal(gps.fix, [int(r["fix"]) for r in ref])
    np.testing.assert_allclose(gps.dop, [float(r["dop"]) for r in ref], atol=1e-9)


@pytest.mark.parametrize("name", RAW_FILES)
def test_raw_payloads_match_reference(name: str) -> None:
    payloads = retime_by_stmp(_raw_payloads(name))
    telemetry = telemetry_from_payloads(payloads)
    ref = _reference(name)
    # Times exact (1 ms) for every payload but the last: a raw track has no MP4 duration for its last
    # (usually partial) payload, and the reference then guesses it from the sample rate while we
    # spread the samples over the nominal 1.001 s; that can differ by up to ~0.6 s.
    gps = telemetry.gps
    assert gps is not None
    early = gps.t < payloads[-1].start_s - 1e-9
    _assert_matches(gps, ref, time_tol_ms=600.0)
    cts = np.array([float(r["cts_ms"]) for r in ref])
    assert early.sum() >= len(gps) - 20
    np.testing.assert_allclose(gps.t[early] * 1000, cts[early], rtol=0, atol=1.0)
    assert gps.has_fix == (name not in NO_FIX)
    if name in NO_FIX:
        assert any("never got a fix" in p for p in telemetry.problems)


def test_gps9_preferred_with_its_own_utc() -> None:
    telemetry = telemetry_from_payloads(_raw_payloads("hero11.raw"))
    gps = telemetry.gps
    assert gps is not None and gps.source == "gpmf:GPS9" and len(gps) == 110  # no GPS5 duplicates
    ref = _reference("hero11.raw")
    expected = np.array([_utc(r["utc"]).replace(tzinfo=None) for r in ref], dtype="datetime64[us]")
    error_ms = np.abs((gps.utc - expected).astype(np.int64)) / 1000
    assert error_ms.max() <= 1.0
    assert telemetry.camera == "HERO11 Black"
    assert abs((telemetry.started_utc - _utc(ref[0]["utc"])).total_seconds()) < 0.002


def test_gps5_utc_from_gpsu_fit() -> None:
    """GPSU-based UTC: within 1.5 s of the reference (GPSU lags GPS9's own time by ~1.4 s on HERO11)."""
    telemetry = telemetry_from_payloads(_raw_payloads("hero7-track.raw"))
    ref = _reference("hero7-track.raw")
    expected = np.array([_utc(r["utc"]).replace(tzinfo=None) for r in ref], dtype="datetime64[us]")
    error_s = np.abs((telemetry.gps.utc - expected).astype(np.int64)) / 1e6
    assert np.median(error_s) < 0.1 and error_s.max() < 1.5


def test_bogus_gpsu_gives_no_absolute_time() -> None:
    telemetry = telemetry_from_payloads(_raw_payloads("hero8-basement.gpmf"))
    assert telemetry.started_utc is None
    assert not telemetry.gps.usable.any()
    assert np.isnat(telemetry.gps.utc).all()


def test_consecutive_chapters_join_like_reference() -> None:
    timing = json.loads(_find("hero7-consecutive-timing.json").read_text())
    payloads: list[MetPayload] = []
    offset = 0.0
    for k, chapter in enumerate(timing):
        chunks = split_track(_find(f"hero7-consecutive{k + 1}.raw").read_bytes())
        for chunk, sample in zip(chunks, chapter["samples"], strict=True):
            payloads.append(MetPayload(chunk, offset + sample["cts"] / 1000, sample["duration"] / 1000))
        offset += chapter["videoDuration"]
    gps = telemetry_from_payloads(payloads).gps
    ref = _reference("hero7-consecutive.raw")
    _assert_matches(gps, ref, time_tol_ms=1.0)


@pytest.mark.parametrize("name", MP4_FILES)
def test_real_mp4_matches_reference(name: str) -> None:
    telemetry = read_gopro_telemetry([_find(name)])
    _assert_matches(telemetry.gps, _reference(name), time_tol_ms=1.0)
    assert telemetry.problems == ()
    assert telemetry.gps.has_fix and telemetry.started_utc is not None


def test_karma_mp4_has_telemetry_but_no_gps() -> None:
    telemetry = read_gopro_telemetry([_find("karma.mp4")])
    assert telemetry.gps is None
    assert telemetry.problems == ("the telemetry has no GPS stream",)
    assert read_gps_from_mp4(_find("karma.mp4")) is None


def test_cross_check_with_gopro_c_parser() -> None:
    extractor_mod = pytest.importorskip("py_gpmf_parser.gopro_telemetry_extractor")
    path = _find("hero7.mp4")
    extractor = extractor_mod.GoProTelemetryExtractor(str(path))
    extractor.open_source()
    try:
        data, _ = extractor.extract_data("GPS5")
    finally:
        extractor.close_source()
    gps = read_gps_from_mp4(path)
    assert gps is not None and len(gps) == data.shape[0]
    np.testing.assert_allclose(gps.lat, data[:, 0], atol=1e-7)
    np.testing.assert_allclose(gps.lon, data[:, 1], atol=1e-7)
    np.testing.assert_allclose(gps.alt, data[:, 2], atol=1e-3)


# --- MP4s built with the sample writer -------------------------------------------------------------


@pytest.fixture(scope="module")
def hero11_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    payloads = split_track((DATA / "hero11.raw").read_bytes())[:3]
    return write_gopro_mp4(
        tmp_path_factory.mktemp("gopro") / "GX010001.MP4",
        duration_s=3.0,
        gpmf_payloads=payloads,
        payload_duration_s=1.0,
        hilights_ms=[1500, 250],
    )


def test_written_mp4_reads_back(hero11_mp4: Path) -> None:
    telemetry = read_gopro_telemetry([hero11_mp4])
    assert telemetry.problems == ()
    assert telemetry.hilights_s == (0.25, 1.5)
    assert telemetry.camera == "HERO11 Black"
    gps = telemetry.gps
    payloads = split_track((DATA / "hero11.raw").read_bytes())[:3]
    counts = [sum(len(b) for b in parse_payload(p).gps if b.kind == "GPS9") for p in payloads]
    assert gps.source == "gpmf:GPS9" and len(gps) == sum(counts)
    # Each payload's samples spread evenly over its 1 s MET sample.
    np.testing.assert_allclose(
        gps.t[counts[0] : counts[0] + counts[1]], 1.0 + np.arange(counts[1]) / counts[1]
    )
    assert telemetry.started_utc.year == 2022


def test_chapters_join_on_one_timeline(tmp_path: Path) -> None:
    chunks = split_track((DATA / "hero7-track.raw").read_bytes())
    first = write_gopro_mp4(
        tmp_path / "GX010002.MP4", duration_s=2.0, gpmf_payloads=chunks[:2], hilights_ms=[500]
    )
    second = write_gopro_mp4(
        tmp_path / "GX020002.MP4", duration_s=2.0, gpmf_payloads=chunks[2:4], hilights_ms=[100]
    )
    joined = read_gopro_telemetry([first, second])
    one = read_gopro_telemetry([first]).gps
    two = read_gopro_telemetry([second]).gps
    assert len(joined.gps) == len(one) + len(two)
    np.testing.assert_allclose(joined.gps.t[len(one) :], two.t + 2.0, atol=1e-9)
    assert joined.hilights_s == (0.5, 2.1)


def test_never_locked_gps(tmp_path: Path) -> None:
    chunks = split_track((DATA / "hero8-grass.gpmf").read_bytes())[:2]
    path = write_gopro_mp4(tmp_path / "GX010003.MP4", duration_s=2.0, gpmf_payloads=chunks)
    telemetry = read_gopro_telemetry([path])
    assert telemetry.gps is not None and not telemetry.gps.has_fix
    assert any("never got a fix" in p for p in telemetry.problems)
    assert read_gps_from_mp4(path) is None


def test_corrupt_payload_is_skipped(tmp_path: Path) -> None:
    chunks = split_track((DATA / "hero7-track.raw").read_bytes())[:3]
    broken = chunks[1][:40] + b"\xff" * (len(chunks[1]) - 40)
    path = write_gopro_mp4(
        tmp_path / "GX010004.MP4", duration_s=3.0, gpmf_payloads=[chunks[0], broken, chunks[2]]
    )
    telemetry = read_gopro_telemetry([path])
    assert telemetry.problems[0] == "GPS: 1 of 3 telemetry samples unreadable, skipped"
    assert len(telemetry.problems) == 2 and "corrupt" in telemetry.problems[1]
    assert (telemetry.samples, telemetry.skipped_samples) == (3, 1)
    good = read_gopro_telemetry(
        [write_gopro_mp4(tmp_path / "ok.mp4", duration_s=3.0, gpmf_payloads=chunks)]
    ).gps
    assert len(telemetry.gps) == len(good) - sum(1 for t in good.t if 1.0 <= t < 2.0)


def test_mp4_without_telemetry(tmp_path: Path, clip_30fps: Path) -> None:
    for path in (write_gopro_mp4(tmp_path / "GX010005.MP4", duration_s=1.0, gpmf_payloads=[]), clip_30fps):
        telemetry = read_gopro_telemetry([path])
        assert telemetry.gps is None
        assert len(telemetry.problems) == 1 and "no GoPro telemetry track" in telemetry.problems[0]
        assert read_gps_from_mp4(path) is None


def test_truncated_and_empty_files_raise(tmp_path: Path, hero11_mp4: Path) -> None:
    data = hero11_mp4.read_bytes()
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path in (truncated, empty, tmp_path / "missing.mp4"):
        with pytest.raises(MediaError) as info:
            read_gopro_telemetry([path])
        assert "\n" not in str(info.value) and str(path.name) in str(info.value)


def test_started_utc_is_aware(hero11_mp4: Path) -> None:
    assert read_gopro_telemetry([hero11_mp4]).started_utc.tzinfo == UTC


def test_stale_gpsu_is_dropped_from_the_fit(tmp_path: Path) -> None:
    chunks = split_track((DATA / "hero7-track.raw").read_bytes())[:6]
    good = telemetry_from_payloads([MetPayload(c, k * 1.001, 1.001) for k, c in enumerate(chunks)])
    stale = chunks[:]
    start = stale[3].index(b"GPSU") + 8
    stale[3] = stale[3][:start] + b"151018000014.299" + stale[3][start + 16 :]  # the receiver's default date
    bad = telemetry_from_payloads([MetPayload(c, k * 1.001, 1.001) for k, c in enumerate(stale)])
    assert abs((bad.started_utc - good.started_utc).total_seconds()) < 0.02  # median of 5 vs 6 stamps
    assert bad.problems == ("1 GPSU time stamps dropped as stale or implausible",)


def test_hilights_from_udta_gpmf_manl(tmp_path: Path) -> None:
    """HERO8+ keep HiLights as MANL (ms) inside a udta GPMF KLV block; HMMT (HERO5-MAX) as a count + ms."""
    from struct import pack

    from mtbsync.ingest.mp4box import read_index

    def box(kind: bytes, body: bytes) -> bytes:
        return pack(">I4s", 8 + len(body), kind) + body

    manl = b"MANL" + b"L" + bytes([4]) + pack(">H", 2) + pack(">II", 4200, 900)
    hlmt = b"HLMT" + b"\0" + bytes([1]) + pack(">H", len(manl)) + manl
    devc = b"DEVC" + b"\0" + bytes([1]) + pack(">H", len(hlmt)) + hlmt
    udta = box(b"udta", box(b"HMMT", pack(">II", 1, 900)) + box(b"GPMF", devc))
    path = tmp_path / "hl.mp4"
    path.write_bytes(box(b"ftyp", b"isom\0\0\0\0") + box(b"moov", udta))
    assert read_index(path).hilights_ms == (900, 4200)


def test_index_reads_the_same_payloads_as_pyav_demux(hero11_mp4: Path) -> None:
    """The by-offset reader (mp4box) and PyAV's demuxer (the fallback) see the same MET samples."""
    from mtbsync.ingest.gopro import _demux_met, _read_chapter

    by_index = _read_chapter(hero11_mp4).payloads
    by_demux = _demux_met(hero11_mp4)
    assert len(by_index) == len(by_demux) == 3
    assert [p.data for p in by_index] == [p.data for p in by_demux]
    np.testing.assert_allclose([p.start_s for p in by_index], [p.start_s for p in by_demux])
    np.testing.assert_allclose([p.duration_s for p in by_index], [p.duration_s for p in by_demux])

"""Fuzzing: any byte string gives parsed GPMF / MP4 index data or a TelemetryError, never a crash or hang."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtbsync.errors import MtbsyncError, TelemetryError
from mtbsync.ingest import mp4box
from mtbsync.ingest.gopro import MetPayload, read_gopro_telemetry, telemetry_from_payloads
from mtbsync.ingest.gpmf import parse_payload, split_track
from mtbsync.samples.gopro_mp4 import write_gopro_mp4

DATA = Path(__file__).resolve().parents[1] / "data" / "gopro"
REAL = (
    split_track((DATA / "hero11.raw").read_bytes())[0] + split_track((DATA / "hero6-ble.raw").read_bytes())[0]
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse_or_typed_error(data: bytes) -> None:
    try:
        payload = parse_payload(data)
    except TelemetryError as exc:
        assert "\n" not in str(exc)
        return
    for block in payload.gps:
        assert block.values.shape[1] in (5, 9)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    _parse_or_typed_error(data)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_real_payloads(edits: list[tuple[int, int]]) -> None:
    data = bytearray(REAL)
    for pos, value in edits:
        data[pos] = value
    _parse_or_typed_error(bytes(data))
    # The whole telemetry path never raises on a corrupt payload: it reports it.
    telemetry = telemetry_from_payloads([MetPayload(bytes(data), 0.0, 1.0)])
    assert all("\n" not in p for p in telemetry.problems)


@FUZZ
@given(st.integers(0, len(REAL)))
def test_truncated_real_payloads(cut: int) -> None:
    _parse_or_typed_error(REAL[:cut])


@pytest.fixture(scope="module")
def small_mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = write_gopro_mp4(
        tmp_path_factory.mktemp("fuzz") / "GX010009.MP4",
        duration_s=0.5,
        size=(64, 48),
        gpmf_payloads=split_track((DATA / "hero5.raw").read_bytes()),
        hilights_ms=[100],
    )
    return path.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_mp4_index(
    small_mp4: bytes, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    moov = small_mp4.rfind(b"moov") - 4
    blob = bytearray(small_mp4)
    for _ in range(data.draw(st.integers(1, 6))):
        blob[data.draw(st.integers(moov, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(moov, len(blob)))
    path = tmp_path_factory.getbasetemp() / "fuzz.mp4"
    path.write_bytes(bytes(blob[:cut]))
    try:
        index = mp4box.read_index(path)
    except TelemetryError as exc:
        assert "\n" not in str(exc)
        return
    for track in index.tracks:
        assert len(track.offsets) == len(track.sizes) == len(track.starts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_mp4_whole_read(
    small_mp4: bytes, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """read_gopro_telemetry on a damaged file: a result with problems, or a one-line MtbsyncError."""
    blob = bytearray(small_mp4)
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.getbasetemp() / "fuzz-whole.mp4"
    path.write_bytes(bytes(blob))
    try:
        telemetry = read_gopro_telemetry([path])
    except MtbsyncError as exc:
        assert "\n" not in str(exc)
        return
    assert all("\n" not in p for p in telemetry.problems)

"""Stage records carry telemetry sampled during the stage (GPU, VRAM, decoder, RSS) and never fail a stage."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from mtbsync import telemetry, timing
from mtbsync.timing import StageRecord, StageTimer, set_sample_reader

_NEW_FIELDS = (
    "gpu_util_mean",
    "gpu_util_peak",
    "vram_peak_mb",
    "decoder_util_mean",
    "decoder_util_peak",
    "telemetry_samples",
)


@pytest.fixture(autouse=True)
def _restore_reader() -> Iterator[None]:
    before = timing._sampler.reader
    yield
    set_sample_reader(before)


class _ScriptedReader:
    """A reader returning a known sequence, signalling how many readings it has given."""

    def __init__(self) -> None:
        self.given: list[dict[str, float | None]] = []
        self.enough = threading.Event()

    def __call__(self) -> dict[str, float | None]:
        k = len(self.given)
        sample = {
            "rss_mb": 100.0 + k,
            "gpu_util": [10.0, 50.0, 30.0, 20.0][k % 4],
            "vram_used_mb": 1000.0 + 10 * k,
            "decoder_util": None if k == 0 else 5.0 * k,
        }
        self.given.append(sample)
        if len(self.given) >= 3:
            self.enough.set()
        return sample


def test_stage_keeps_mean_and_peak_of_its_samples() -> None:
    reader = _ScriptedReader()
    set_sample_reader(reader)
    timing._sampler.interval_s = 0.01
    try:
        timer = StageTimer()
        with timer.stage("matching", device="gpu") as rec:
            assert reader.enough.wait(10), "the sampler never read"
    finally:
        timing._sampler.interval_s = timing.SAMPLE_INTERVAL_S
    n = rec.telemetry_samples
    assert n >= 3
    seen = reader.given[:n]  # the readings taken while the stage was open, in order
    gpu = [s["gpu_util"] for s in seen]
    decoder = [s["decoder_util"] for s in seen if s["decoder_util"] is not None]
    assert rec.gpu_util_peak == max(gpu)
    assert rec.gpu_util_mean == pytest.approx(sum(gpu) / n, abs=0.01)
    assert rec.vram_peak_mb == 1000.0 + 10 * (n - 1)
    assert rec.decoder_util_mean == pytest.approx(sum(decoder) / len(decoder), abs=0.01)
    assert rec.decoder_util_peak == max(decoder)
    assert rec.peak_rss_mb >= 100.0 + n - 1  # the sampled peak or the (larger) real RSS at the end
    assert rec.device == "gpu" and rec.seconds > 0


def test_a_failing_reader_never_fails_the_stage() -> None:
    calls = threading.Event()

    def broken() -> dict[str, float | None]:
        calls.set()
        raise RuntimeError("NVML went away")

    set_sample_reader(broken)
    timer = StageTimer()
    with timer.stage("decode") as rec:
        assert calls.wait(10)
    assert rec.telemetry_samples == 0 and rec.gpu_util_mean is None
    assert rec.peak_rss_mb is not None and rec.peak_rss_mb > 0  # the stage's own end reading
    assert timer.records == [rec]


def test_records_stay_json_and_backward_compatible() -> None:
    set_sample_reader(telemetry.stage_sample)
    timer = StageTimer()
    with timer.stage("path", frames=12) as rec:
        rec.extra["candidates"] = 3
    data = json.loads(json.dumps(rec.to_dict()))
    for key in ("name", "started_at", "seconds", "cpu_seconds", "frames", "device", "peak_rss_mb", "extra"):
        assert key in data
    assert data["cpu_percent"] >= 0 and data["extra"] == {"candidates": 3}
    assert set(_NEW_FIELDS) <= set(data)
    old = StageRecord(name="decode", seconds=1.0)  # records built the old way still work
    assert old.to_dict()["telemetry_samples"] == 0 and old.to_dict()["gpu_util_peak"] is None


def test_telemetry_reader_gives_memory_and_gpu_fields_or_none() -> None:
    sample = telemetry.stage_sample()
    assert set(sample) == {"rss_mb", "gpu_util", "vram_used_mb", "decoder_util"}
    assert sample["rss_mb"] is not None and sample["rss_mb"] > 10
    if telemetry.read_sample().gpu_util is None:  # no NVML here: the GPU fields stay empty
        assert sample["gpu_util"] is None and sample["vram_used_mb"] is None


def test_busy_clock_records_carry_what_was_sampled_while_they_ran() -> None:
    reader = _ScriptedReader()
    set_sample_reader(reader)
    timer = StageTimer()
    clock = timing.BusyClock()
    with clock:
        assert reader.enough.wait(10) or len(reader.given) >= 1
    record = timer.add_busy("decode", clock, device="gpu", extra={"decoder": "nvdec"})
    assert record.telemetry_samples >= 1 and record.gpu_util_peak is not None
    assert record.to_dict()["extra"] == {"decoder": "nvdec"}
    assert timing._sampler._open == {}  # nothing left sampling
    idle = StageTimer().add_busy("features", timing.BusyClock())  # never entered: no figures
    assert idle.telemetry_samples == 0

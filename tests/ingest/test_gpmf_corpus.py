"""The GPMF fuzzer's findings stay fixed: its saved crashing inputs, a short run, and (slow) 100,000 cases."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from mtbsync.errors import TelemetryError
from mtbsync.ingest.gopro import MetPayload, telemetry_from_payloads
from mtbsync.ingest.gpmf import parse_payload, split_track

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "gpmf_corpus"
CORPUS_FILES = sorted(CORPUS.glob("*.bin"))


def _fuzzer():
    """benchmarks/fuzz_gpmf.py as a module (benchmarks/ is not a package)."""
    name = "fuzz_gpmf"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "fuzz_gpmf.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_corpus_is_there() -> None:
    # Inputs that crashed the parser before it was hardened (TypeError, struct.error, OverflowError,
    # positions off the globe); an empty folder would make the regression test below pass vacuously.
    assert len(CORPUS_FILES) >= 10


@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's invalid-value noise was a finding too
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_input_parses_or_is_refused(path: Path) -> None:
    data = path.read_bytes()
    try:
        payload = parse_payload(data)
    except TelemetryError as exc:
        assert "\n" not in str(exc)
        payload = None
    with contextlib.suppress(TelemetryError):
        split_track(data)
    if payload is not None:
        for block in payload.gps:
            lat, lon = block.values[:, 0], block.values[:, 1]
            finite = np.isfinite(lat) & np.isfinite(lon)
            assert np.all(np.abs(lat[finite]) <= 90) and np.all(np.abs(lon[finite]) <= 180)
    # The whole telemetry path never raises on it: the sample is skipped or read.
    telemetry = telemetry_from_payloads([MetPayload(data, 0.0, 1.0)])
    assert telemetry.samples == 1 and telemetry.skipped_samples in (0, 1)


def test_short_fuzz_run_finds_nothing(tmp_path: Path) -> None:
    result = _fuzzer().fuzz(2_000, seed=7, corpus=tmp_path)
    assert result.cases == 2_000
    assert result.parsed > 200 and result.with_gps > 100  # the mutations still reach the GPS decoders
    assert (result.crashes, result.hangs) == (0, 0), (dict(result.signatures), result.saved)


def test_fuzz_cases_are_deterministic() -> None:
    # Case k depends on (seed, k) alone, not on the cases before it: `--case k` replays a finding.
    fuzz = _fuzzer()
    seeds = fuzz.load_seeds()
    forward = [fuzz.make_case(seeds, 3, k) for k in range(20)]
    backward = [fuzz.make_case(fuzz.load_seeds(), 3, k) for k in reversed(range(20))]
    assert forward == backward[::-1] and len(set(forward)) > 15


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~3-5 min on a loaded 2-core machine
def test_fuzz_100k_cases_find_nothing(tmp_path: Path) -> None:
    result = _fuzzer().fuzz(100_000, seed=0, corpus=tmp_path)
    assert result.cases == 100_000
    assert (result.crashes, result.hangs) == (0, 0), (dict(result.signatures), result.saved)

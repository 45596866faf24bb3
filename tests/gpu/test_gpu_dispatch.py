"""Choosing the matching device: auto / cpu / gpu, MTBSYNC_DEVICE, --no-gpu, errors and the CPU fallback."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mtbsync.cli import app
from mtbsync.errors import ConfigError, DeviceError
from mtbsync.gpu import backend, backend_name, hamming_knn2_pairs, match_descriptors
from mtbsync.gpu.backend import Knn2
from mtbsync.timing import StageTimer

_GPU_HERE = importlib.util.find_spec("cupy") is not None


@pytest.fixture(autouse=True)
def _fresh_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MTBSYNC_DEVICE", raising=False)
    monkeypatch.delenv("MTBSYNC_NO_GPU", raising=False)
    backend._reset_backend_cache()
    yield
    backend._reset_backend_cache()


def _random(seed: int, rows: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (rows, 32), dtype=np.uint8)


def _info_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "backend" in r.getMessage()
    ]


def test_no_gpu_env_makes_auto_choose_the_cpu_with_one_line_saying_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MTBSYNC_NO_GPU", "1")
    with caplog.at_level(logging.INFO, logger="mtbsync"):
        assert backend_name() == "cpu"
        assert backend_name("auto") == "cpu"
        assert backend_name("cpu") == "cpu"
    lines = _info_lines(caplog)
    assert len(lines) == 1
    assert "chosen automatically" in lines[0] and "--no-gpu" in lines[0]


def test_explicit_gpu_with_no_gpu_flag_is_a_one_line_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTBSYNC_NO_GPU", "1")
    with pytest.raises(DeviceError, match="turned off") as info:
        backend_name("gpu")
    assert "\n" not in str(info.value)
    monkeypatch.setenv("MTBSYNC_DEVICE", "gpu")
    with pytest.raises(DeviceError):
        backend_name()  # the environment fills in auto
    assert backend_name("cpu") == "cpu"  # an explicit argument wins over the environment


@pytest.mark.skipif(_GPU_HERE, reason="CuPy is installed: this checks the message on a machine without it")
def test_gpu_without_cupy_says_what_to_install() -> None:
    with pytest.raises(DeviceError, match=r"mtbsync\[gpu\]"):
        backend_name("gpu")
    assert backend_name("auto") == "cpu"


def test_environment_variable_chooses_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTBSYNC_DEVICE", " Cpu ")
    assert backend_name() == "cpu"
    monkeypatch.setenv("MTBSYNC_DEVICE", "npu")
    backend._reset_backend_cache()
    with pytest.raises(ConfigError, match="MTBSYNC_DEVICE"):
        backend_name()


def _broken_gpu(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Register a "gpu" backend whose kernels raise, as a lost device would; returns its call count."""
    calls = [0]

    def broken(*args: object) -> Knn2:
        calls[0] += 1
        raise RuntimeError("cudaErrorLaunchFailure: unspecified launch failure\nsecond line")

    fake = backend.Backend(
        name="gpu", detail="failing double", knn2=broken, knn2_pairs=broken, nearest=broken, match=broken
    )
    monkeypatch.setitem(backend._FACTORIES, "gpu", lambda: fake)
    return calls


def test_gpu_failure_falls_back_to_cpu_once_and_the_stage_record_says_cpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = _broken_gpu(monkeypatch)
    query, train = _random(1, 40), _random(2, 60)
    train[7] = query[3]
    want = match_descriptors(query, train, device="cpu")
    timer = StageTimer()
    with (
        caplog.at_level(logging.WARNING, logger="mtbsync"),
        timer.stage("matching", device=backend_name("auto")) as rec,
    ):
        assert rec.device == "gpu"
        got = match_descriptors(query, train, device="auto")  # the fused kernel raises
        pieces = hamming_knn2_pairs(
            query, np.array([0, 40]), train, np.array([0, 60]), np.array([[0, 0]]), device="gpu"
        )
        rec.device = backend_name("auto")  # what pipeline.py records after the stage's work
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    assert 3 in got[0] and got[1][list(got[0]).index(3)] == 7
    assert pieces[0].idx1[3] == 7
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "on the CPU" in warnings[0] and "\n" not in warnings[0]
    assert calls[0] == 1  # later calls went straight to the CPU
    assert timer.records[0].device == "cpu"
    assert timer.records[0].to_dict()["device"] == "cpu"


def test_cli_device_gpu_with_no_gpu_is_one_red_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MTBSYNC_NO_GPU", "0")  # restored after the test; --no-gpu sets it to 1
    missing = tmp_path / "missing.mp4"
    result = CliRunner().invoke(
        app, ["--no-gpu", "sync", "-r", str(missing), "-n", str(missing), "--device", "gpu"]
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0] and "turned off" in lines[0]


def test_cli_rejects_an_unknown_device_on_transfer(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "transfer",
            "--reference-markers",
            str(tmp_path / "m.csv"),
            "--warp",
            str(tmp_path / "w.npz"),
            "--device",
            "tpu",
        ],
    )
    assert result.exit_code == 1
    assert "device must be one of auto, cpu, gpu" in result.output


@pytest.mark.skipif(_GPU_HERE, reason="CuPy is installed: this checks the message on a machine without it")
def test_cli_device_gpu_without_cupy_names_the_extra(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    result = CliRunner().invoke(app, ["sync", "-r", str(missing), "-n", str(missing), "--device", "gpu"])
    assert result.exit_code == 1
    assert "pip install 'mtbsync[gpu]'" in result.output  # brackets survive Rich markup

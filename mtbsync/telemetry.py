"""System telemetry: CPU, memory and (where NVML answers) GPU figures, sampled cheaply.

psutil always; nvidia-ml-py (module `pynvml`) when installed and a driver answers. Telemetry must never
block or fail the pipeline, so every probe is wrapped and a missing GPU just leaves the GPU fields None.
Set MTBSYNC_NO_GPU=1 (the CLI's --no-gpu) to keep NVML from being probed at all.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from mtbsync.timing import set_sample_reader

log = logging.getLogger("mtbsync")


@dataclass(frozen=True)
class TelemetrySample:
    """One reading of the machine and this process.

    Attributes:
        at: Unix time of the reading.
        cpu_percent: Whole-machine CPU use since the previous reading, 0-100 (all cores).
        process_cpu_percent: This process's CPU use since the previous reading, 100 = one core.
        rss_mb: This process's resident memory in MiB.
        gpu_util: GPU utilisation 0-100, None without NVML.
        vram_used_mb: GPU memory in use in MiB, None without NVML.
        vram_total_mb: GPU memory in MiB, None without NVML.
        decoder_util: NVDEC utilisation 0-100, None without NVML.
    """

    at: float
    cpu_percent: float
    process_cpu_percent: float
    rss_mb: float
    gpu_util: float | None = None
    vram_used_mb: float | None = None
    vram_total_mb: float | None = None
    decoder_util: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The sample as JSON-able data."""
        return asdict(self)


def gpu_probing_disabled() -> bool:
    """Whether the user turned GPU probing off (MTBSYNC_NO_GPU=1 or MTBSYNC_DEVICE=cpu)."""
    return os.environ.get("MTBSYNC_NO_GPU", "") not in ("", "0")


class _Nvml:
    """Lazily initialised NVML handle for GPU 0; disables itself on the first failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tried = False
        self._module: Any = None
        self._handle: Any = None

    def _init(self) -> None:
        self._tried = True
        if gpu_probing_disabled():
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            if pynvml.nvmlDeviceGetCount() < 1:
                return
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._module = pynvml
        except Exception as exc:  # no driver, no library, no device: GPU fields stay None
            log.debug("NVML unavailable: %s", exc)
            self._module = None
            self._handle = None

    def read(self) -> tuple[float | None, float | None, float | None, float | None]:
        with self._lock:
            if not self._tried:
                self._init()
            if self._module is None:
                return None, None, None, None
            nv = self._module
            try:
                util = nv.nvmlDeviceGetUtilizationRates(self._handle)
                mem = nv.nvmlDeviceGetMemoryInfo(self._handle)
                try:
                    decoder = float(nv.nvmlDeviceGetDecoderUtilization(self._handle)[0])
                except Exception:
                    decoder = None
                return float(util.gpu), mem.used / 2**20, mem.total / 2**20, decoder
            except Exception as exc:
                log.debug("NVML read failed, GPU telemetry off: %s", exc)
                self._module = None
                return None, None, None, None


_nvml = _Nvml()
_process = psutil.Process(os.getpid())


def read_sample() -> TelemetrySample:
    """Read one telemetry sample now (non-blocking; CPU percentages are since the previous call)."""
    try:
        cpu = float(psutil.cpu_percent(interval=None))
        proc_cpu = float(_process.cpu_percent(interval=None))
        rss = _process.memory_info().rss / 2**20
    except Exception:  # pragma: no cover - psutil failing is not worth a failed run
        cpu, proc_cpu, rss = 0.0, 0.0, 0.0
    gpu, vram, vram_total, decoder = _nvml.read()
    return TelemetrySample(
        at=time.time(),
        cpu_percent=cpu,
        process_cpu_percent=proc_cpu,
        rss_mb=rss,
        gpu_util=gpu,
        vram_used_mb=vram,
        vram_total_mb=vram_total,
        decoder_util=decoder,
    )


def stage_sample() -> dict[str, float | None]:
    """Memory and GPU figures for the stage timer (no CPU percentages: those are since-last-call
    readings that other samplers rely on, and stages measure their CPU time themselves).

    Returns:
        ``rss_mb``, ``gpu_util``, ``vram_used_mb`` and ``decoder_util`` (GPU figures None without NVML).
    """
    try:
        rss: float | None = _process.memory_info().rss / 2**20
    except Exception:  # pragma: no cover
        rss = None
    gpu, vram, _, decoder = _nvml.read()
    return {"rss_mb": rss, "gpu_util": gpu, "vram_used_mb": vram, "decoder_util": decoder}


# Every timed stage samples through this from now on (mtbsync.timing sits below us and cannot import us).
set_sample_reader(stage_sample)


class TelemetrySampler:
    """A daemon thread that calls `callback(sample)` every `interval_s` until stopped.

    A failing callback is logged once at debug level and sampling goes on.
    """

    def __init__(self, callback: Callable[[TelemetrySample], None], interval_s: float = 1.0) -> None:
        self._callback = callback
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mtbsync-telemetry", daemon=True)

    def start(self) -> TelemetrySampler:
        """Start sampling; returns self."""
        read_sample()  # prime psutil's since-last-call percentages
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling and wait briefly for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * self._interval_s + 1)

    def __enter__(self) -> TelemetrySampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._callback(read_sample())
            except Exception as exc:
                log.debug("telemetry callback failed: %s", exc)

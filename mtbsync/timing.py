"""Stage timing: the only code in mtbsync that reads clocks.

`pipeline.py` wraps each stage in ``with timer.stage("match", frames=n) as rec:``; the stage entry
points it hands its timer to (`extract_keyframes`, `pair_keyframes`, `transfer_with_refinement`)
record their parts on that same timer. Each finished stage becomes one `StageRecord` that goes to
every subscriber (the CLI's summary table today; the store and the dashboard's event stream later),
so there is exactly one timing mechanism.

While any stage is open, one background thread samples the machine every `SAMPLE_INTERVAL_S` (and at
once when a stage opens) and each open stage keeps the mean and peak of what it saw: resident memory
always, GPU and NVDEC utilisation and VRAM when `mtbsync.telemetry` has installed its NVML reader
(`set_sample_reader`; it does so on import). Sampling never blocks a stage: the stage's own thread
only registers and unregisters, and a failing reader is ignored.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

try:  # psutil is a dependency, but timing must never fail a run
    import psutil
except ImportError:  # pragma: no cover
    psutil = None


@dataclass
class StageRecord:
    """One timed stage.

    Attributes:
        name: Stage name (decode, features, matching, path, refine, warp, ...).
        started_at: Wall-clock start (Unix seconds).
        seconds: Elapsed wall time.
        cpu_seconds: Process CPU time used during the stage (user + system).
        frames: Frames or items the stage processed, when meaningful.
        device: Which backend ran the stage (cpu / gpu).
        peak_rss_mb: Largest resident memory of the process seen during the stage (samples and the
            stage's end), in MiB.
        extra: Free-form figures the stage reports (e.g. matches, inliers).
        gpu_util_mean: Mean GPU utilisation over the stage's samples, 0-100; None without NVML.
        gpu_util_peak: Highest GPU utilisation sampled, 0-100; None without NVML.
        vram_peak_mb: Highest GPU memory in use sampled (whole device), in MiB; None without NVML.
        decoder_util_mean: Mean NVDEC utilisation over the samples, 0-100; None without NVML.
        decoder_util_peak: Highest NVDEC utilisation sampled, 0-100; None without NVML.
        telemetry_samples: How many samples the figures above rest on (0 for very short stages).
    """

    name: str
    started_at: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    frames: int | None = None
    device: str = "cpu"
    peak_rss_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    gpu_util_mean: float | None = None
    gpu_util_peak: float | None = None
    vram_peak_mb: float | None = None
    decoder_util_mean: float | None = None
    decoder_util_peak: float | None = None
    telemetry_samples: int = 0

    @property
    def cpu_percent(self) -> float:
        """Average CPU use over the stage, 100 = one core busy."""
        return 100.0 * self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-able data."""
        data = asdict(self)
        data["cpu_percent"] = round(self.cpu_percent, 1)
        return data


Subscriber = Callable[[StageRecord], None]


def _rss_mb() -> float | None:
    if psutil is None:
        return None
    try:
        return psutil.Process(os.getpid()).memory_info().rss / 2**20
    except Exception:
        return None


SAMPLE_INTERVAL_S = 0.5

SampleReader = Callable[[], Mapping[str, float | None]]
"""Returns a reading with any of ``rss_mb``, ``gpu_util``, ``vram_used_mb``, ``decoder_util``."""


def _rss_sample() -> dict[str, float | None]:
    return {"rss_mb": _rss_mb()}


class _Figures:
    """Mean and peak of each figure sampled during one open stage."""

    def __init__(self) -> None:
        self.samples = 0
        self._sum: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._peak: dict[str, float] = {}

    def add(self, sample: Mapping[str, float | None]) -> None:
        self.samples += 1
        for key, value in sample.items():
            if value is None:
                continue
            value = float(value)
            self._sum[key] = self._sum.get(key, 0.0) + value
            self._count[key] = self._count.get(key, 0) + 1
            self._peak[key] = max(self._peak.get(key, value), value)

    def mean(self, key: str) -> float | None:
        count = self._count.get(key)
        return round(self._sum[key] / count, 2) if count else None

    def peak(self, key: str) -> float | None:
        value = self._peak.get(key)
        return round(value, 2) if value is not None else None

    def fill(self, record: StageRecord) -> None:
        record.telemetry_samples = self.samples
        record.gpu_util_mean, record.gpu_util_peak = self.mean("gpu_util"), self.peak("gpu_util")
        record.vram_peak_mb = self.peak("vram_used_mb")
        record.decoder_util_mean = self.mean("decoder_util")
        record.decoder_util_peak = self.peak("decoder_util")
        rss = [x for x in (record.peak_rss_mb, self.peak("rss_mb")) if x is not None]
        record.peak_rss_mb = max(rss) if rss else None


class _StageSampler:
    """One daemon thread for the process: samples while any stage is open, idles otherwise."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.reader: SampleReader = _rss_sample
        self._open: dict[int, _Figures] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False

    def open(self) -> _Figures:
        figures = _Figures()
        with self._lock:
            self._open[id(figures)] = figures
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mtbsync-stage-telemetry", daemon=True)
                self._thread.start()
        self._wake.set()  # a first sample now, so short stages get one too
        return figures

    def close(self, figures: _Figures) -> None:
        with self._lock:
            self._open.pop(id(figures), None)

    def _run(self) -> None:
        while True:
            with self._lock:
                idle = not self._open
            if idle:
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                sample = self.reader()
            except Exception:  # telemetry must never fail a run: skip this reading
                if not self._failed:
                    self._failed = True
                    logging.getLogger("mtbsync").debug("stage telemetry reader failed", exc_info=True)
                sample = None
            if sample is not None:
                with self._lock:
                    for figures in self._open.values():  # only the stages open right now
                        figures.add(sample)
            self._wake.wait(self.interval_s)
            self._wake.clear()


_sampler = _StageSampler()


def set_sample_reader(reader: SampleReader | None) -> None:
    """Make every stage sample with ``reader`` (None: resident memory only).

    `mtbsync.telemetry` installs its reader (psutil RSS + NVML GPU, VRAM and decoder) when imported.

    Args:
        reader: Called from the sampling thread; returns a mapping of figures (see `SampleReader`).
    """
    _sampler.reader = reader or _rss_sample


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far, in MiB (Linux/macOS)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 if os.uname().sysname == "Linux" else peak / 2**20
    except Exception:
        return _rss_mb()


class StageTimer:
    """Times named stages and hands each finished record to the subscribers.

    Thread-safe: stages may run in worker threads.
    """

    def __init__(self, subscribers: list[Subscriber] | None = None) -> None:
        self.records: list[StageRecord] = []
        self._subscribers: list[Subscriber] = list(subscribers or [])
        self._start_subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(record)`` for every stage that finishes from now on."""
        self._subscribers.append(subscriber)

    def subscribe_start(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(record)`` when a stage starts (the record is not filled in yet).

        Kept apart from `subscribe`, whose subscribers (tables, the store) expect finished records;
        the dashboard's live timeline wants to show a stage while it runs.
        """
        self._start_subscribers.append(subscriber)

    @contextmanager
    def stage(self, name: str, *, frames: int | None = None, device: str = "cpu") -> Iterator[StageRecord]:
        """Time the body of the ``with`` block as stage ``name``.

        The yielded record may be updated inside the block (``rec.frames = n``, ``rec.extra[...]``).
        The record is published even when the block raises, so failed stages are visible too.
        """
        record = StageRecord(name=name, started_at=time.time(), frames=frames, device=device)
        wall0 = time.perf_counter()
        cpu0 = time.process_time()
        for subscriber in list(self._start_subscribers):
            subscriber(record)
        figures = _sampler.open()
        try:
            yield record
        finally:
            _sampler.close(figures)
            record.seconds = time.perf_counter() - wall0
            record.cpu_seconds = time.process_time() - cpu0
            record.peak_rss_mb = _rss_mb()
            figures.fill(record)
            with self._lock:
                self.records.append(record)
                subscribers = list(self._subscribers)
            for subscriber in subscribers:
                subscriber(record)

    def add_busy(
        self,
        name: str,
        clock: BusyClock,
        *,
        frames: int | None = None,
        device: str = "cpu",
        extra: dict[str, Any] | None = None,
    ) -> StageRecord:
        """Publish the busy time measured by ``clock`` as stage ``name``."""
        record = StageRecord(
            name=name,
            started_at=clock.started_at or time.time(),
            seconds=clock.seconds,
            frames=frames if frames is not None else clock.count,
            device=device,
            peak_rss_mb=_rss_mb(),
            extra=dict(extra or {}),
        )
        if clock.figures is not None:
            # Sampled from the clock's first use until now: the wall-time span the busy time lies in.
            _sampler.close(clock.figures)
            clock.figures.fill(record)
        with self._lock:
            self.records.append(record)
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber(record)
        return record

    @property
    def total_seconds(self) -> float:
        """Wall time since the timer was made."""
        return time.perf_counter() - self._t0

    def seconds_by_stage(self) -> dict[str, float]:
        """Summed seconds per stage name, in first-seen order."""
        totals: dict[str, float] = {}
        for record in self.records:
            totals[record.name] = totals.get(record.name, 0.0) + record.seconds
        return totals


class BusyClock:
    """Accumulates the busy time of a repeated operation that overlaps other work.

    Decoding runs in a background thread while features are computed, so their wall times overlap;
    each side measures its own busy time with a `BusyClock`, and `StageTimer.add_busy` publishes it,
    with the telemetry sampled from the clock's first use until then.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.count = 0
        self.started_at: float | None = None
        self.figures: _Figures | None = None
        self._t0 = 0.0

    def __enter__(self) -> BusyClock:
        if self.started_at is None:
            self.started_at = time.time()
            self.figures = _sampler.open()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._t0
        self.count += 1

    def __del__(self) -> None:
        # A clock dropped without add_busy (a failed run) must not keep the sampler busy.
        if self.figures is not None:
            _sampler.close(self.figures)

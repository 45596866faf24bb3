"""Stage timing: the only code in mtbsync that reads clocks.

`pipeline.py` wraps each stage in ``with timer.stage("match", frames=n) as rec:``. Each finished stage
becomes one `StageRecord` that goes to every subscriber (the CLI's summary table today; the store and
the dashboard's event stream later), so there is exactly one timing mechanism.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
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
        peak_rss_mb: Resident memory of the process at the stage's end, in MiB.
        extra: Free-form figures the stage reports (e.g. matches, inliers).
    """

    name: str
    started_at: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    frames: int | None = None
    device: str = "cpu"
    peak_rss_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(record)`` for every stage that finishes from now on."""
        self._subscribers.append(subscriber)

    @contextmanager
    def stage(self, name: str, *, frames: int | None = None, device: str = "cpu") -> Iterator[StageRecord]:
        """Time the body of the ``with`` block as stage ``name``.

        The yielded record may be updated inside the block (``rec.frames = n``, ``rec.extra[...]``).
        The record is published even when the block raises, so failed stages are visible too.
        """
        record = StageRecord(name=name, started_at=time.time(), frames=frames, device=device)
        wall0 = time.perf_counter()
        cpu0 = time.process_time()
        try:
            yield record
        finally:
            record.seconds = time.perf_counter() - wall0
            record.cpu_seconds = time.process_time() - cpu0
            record.peak_rss_mb = _rss_mb()
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
    each side measures its own busy time with a `BusyClock`, and `StageTimer.add_busy` publishes it.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.count = 0
        self.started_at: float | None = None
        self._t0 = 0.0

    def __enter__(self) -> BusyClock:
        if self.started_at is None:
            self.started_at = time.time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._t0
        self.count += 1

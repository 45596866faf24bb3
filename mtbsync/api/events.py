"""The event hub behind /api/events (SSE) and /api/perf/history.

Events come from any thread (stage timers in workers, the telemetry sampler, edits in the request
thread pool) and go to every connected client. Each client has a bounded queue; a client that does
not keep up (its queue is full) is dropped rather than allowed to grow memory or slow the others; its
browser's EventSource reconnects by itself and reloads state. The recent telemetry and stage records
are kept in ring buffers for the charts' history.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mtbsync.telemetry import TelemetrySample, TelemetrySampler
from mtbsync.timing import StageRecord

log = logging.getLogger("mtbsync")

_CLOSE = object()


@dataclass(eq=False)
class _Client:
    queue: asyncio.Queue[Any]
    id: int
    dropped: bool = False
    connected_at: float = field(default_factory=time.time)


class EventBroker:
    """Fans events out to SSE clients and keeps the telemetry and stage history.

    Args:
        queue_size: Events a client may lag behind before it is dropped.
        telemetry_history: Telemetry samples kept (1 Hz: 600 = ten minutes).
        stage_history: Stage records kept.
        telemetry_interval_s: Seconds between telemetry samples; 0 disables the sampler.
    """

    def __init__(
        self,
        *,
        queue_size: int = 256,
        telemetry_history: int = 600,
        stage_history: int = 500,
        telemetry_interval_s: float = 1.0,
    ) -> None:
        self.queue_size = queue_size
        self.telemetry: deque[dict[str, Any]] = deque(maxlen=telemetry_history)
        self.stages: deque[dict[str, Any]] = deque(maxlen=stage_history)
        self._clients: set[_Client] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self._interval = telemetry_interval_s
        self._sampler: TelemetrySampler | None = None
        self.dropped_clients = 0

    # -- lifecycle (called by the app's lifespan) --------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the server's event loop and start sampling telemetry."""
        self._loop = loop
        if self._interval > 0 and self._sampler is None:
            self._sampler = TelemetrySampler(self._on_sample, self._interval).start()

    def stop(self) -> None:
        """Stop sampling and end every client's stream (so the server can shut down at once)."""
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            self._call_in_loop(self._drop, client, False)

    @property
    def clients(self) -> int:
        """Connected SSE clients."""
        with self._lock:
            return len(self._clients)

    # -- producers ---------------------------------------------------------------------------------

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """Send ``event`` with ``data`` to every client; callable from any thread."""
        if event == "stage":
            self.stages.append(data)
        message = {"event": event, "data": json.dumps(_clean(data), default=_json_default)}
        self._call_in_loop(self._fan_out, message)

    def record_stages(self, records: Sequence[StageRecord], run_id: str | None = None) -> None:
        """Add finished stages (e.g. the sync that ran before the server started) to the history."""
        for record in records:
            self.stages.append({"phase": "finish", "run_id": run_id, "record": record.to_dict()})

    def stage_subscribers(self, run_id: str | None) -> tuple[Any, Any]:
        """(on_start, on_finish) callbacks for a `StageTimer`.

        Use as ``timer.subscribe_start(on_start)`` and ``timer.subscribe(on_finish)``.
        """

        def on_start(record: StageRecord) -> None:
            self.publish("stage", {"phase": "start", "run_id": run_id, "record": record.to_dict()})

        def on_finish(record: StageRecord) -> None:
            self.publish("stage", {"phase": "finish", "run_id": run_id, "record": record.to_dict()})

        return on_start, on_finish

    def _on_sample(self, sample: TelemetrySample) -> None:
        data = sample.to_dict()
        data["sse_clients"] = self.clients
        self.telemetry.append(data)
        self.publish("telemetry", data)

    # -- consumers ---------------------------------------------------------------------------------

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        """Messages for one client until it disconnects, is dropped, or the server stops."""
        client = _Client(asyncio.Queue(maxsize=self.queue_size), next(self._ids))
        with self._lock:
            self._clients.add(client)
        try:
            yield {"event": "hello", "data": json.dumps({"client": client.id, "at": time.time()})}
            while True:
                message = await client.queue.get()
                if message is _CLOSE:
                    return
                yield message
        finally:
            with self._lock:
                self._clients.discard(client)

    def _call_in_loop(self, func: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            func(*args)
        else:
            # RuntimeError: the loop closed between the check and the call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(func, *args)

    def _fan_out(self, message: dict[str, Any]) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            if client.dropped:
                continue
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                self._drop(client, True)

    def _drop(self, client: _Client, slow: bool) -> None:
        if client.dropped:
            return
        client.dropped = True
        if slow:
            self.dropped_clients += 1
            log.info("dropped SSE client %d: it fell %d events behind", client.id, self.queue_size)
        # Make room for the close marker: the client is going anyway, its backlog is worthless.
        while not client.queue.empty():
            client.queue.get_nowait()
        client.queue.put_nowait(_CLOSE)
        with self._lock:
            self._clients.discard(client)

    def history(self, *, seconds: float | None = None) -> dict[str, Any]:
        """The kept telemetry (optionally only the last ``seconds``) and stage records."""
        telemetry = list(self.telemetry)
        if seconds is not None:
            since = time.time() - seconds
            telemetry = [s for s in telemetry if s["at"] >= since]
        return {"telemetry": telemetry, "stages": list(self.stages)}


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity (browsers reject them): those become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
    except ImportError:  # pragma: no cover
        pass
    return str(obj)

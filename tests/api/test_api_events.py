"""Server-Sent Events: telemetry, stage and marker events after an edit; slow clients are dropped."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx

from mtbsync.api.events import EventBroker


def _collect(url: str, want: set[str], timeout: float = 15.0) -> dict[str, list[dict]]:
    """Read the stream until every event kind in ``want`` arrived."""
    seen: dict[str, list[dict]] = {}
    event = None
    with httpx.stream("GET", f"{url}/api/events", timeout=timeout) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event:
                seen.setdefault(event, []).append(json.loads(line.split(":", 1)[1]))
                if want <= set(seen):
                    return seen
    return seen


def test_telemetry_events_arrive(base_url: str) -> None:
    seen = _collect(base_url, {"hello", "telemetry"})
    sample = seen["telemetry"][0]
    assert sample["rss_mb"] > 0
    assert 0 <= sample["cpu_percent"] <= 100
    assert "gpu_util" in sample and "vram_used_mb" in sample


def test_an_anchor_sends_stage_and_marker_events(base_url: str, api_token: str, preview_server) -> None:
    broker = preview_server.server.app.state.broker
    before = broker.clients
    result: dict[str, list[dict]] = {}
    reader = threading.Thread(target=lambda: result.update(_collect(base_url, {"stage", "markers"})))
    reader.start()
    for _ in range(200):  # until the reader is subscribed, so it cannot miss the edit's events
        if broker.clients > before:
            break
        time.sleep(0.02)
    response = httpx.post(
        f"{base_url}/api/runs/new/anchors",
        json={"t_new": 3.0, "t_ref": 2.74},
        headers={"Authorization": f"Bearer {api_token}"},
    )
    assert response.status_code == 201  # an anchor added
    reader.join(20)
    names = {(e["phase"], e["record"]["name"]) for e in result.get("stage", [])}
    assert ("start", "refit") in names and ("finish", "refit") in names
    assert result["markers"][0]["run_id"] == "new"
    history = httpx.get(f"{base_url}/api/perf/history").json()
    assert any(s["record"]["name"] == "transfer" for s in history["stages"])
    assert history["telemetry"]


def test_a_slow_client_is_dropped_and_the_others_keep_receiving() -> None:
    async def scenario() -> tuple[int, list[str], int]:
        broker = EventBroker(queue_size=4, telemetry_interval_s=0)
        broker.start(asyncio.get_running_loop())
        slow, fast = broker.stream(), broker.stream()
        await anext(slow)  # hello: both subscribed
        await anext(fast)
        received = []
        for k in range(10):
            broker.publish("run", {"k": k})
            received.append((await anext(fast))["event"])
        # The slow client never read: its queue overflowed and it was told to go.
        leftovers = [m async for m in slow]
        broker.stop()
        return broker.dropped_clients, received, len(leftovers)

    dropped, received, leftovers = asyncio.run(scenario())
    assert dropped == 1
    assert received == ["run"] * 10
    assert leftovers == 0

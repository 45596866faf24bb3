"""Load test of the dashboard server: many SSE clients plus API requests on loopback, for a bounded time.

The server (``mtbsync preview`` of a generated pair) runs in a child process, so its memory is measured
apart from the clients'. The clients: ``--clients`` EventSource-like streams reading /api/events, and
``--workers`` loops issuing the dashboard's API requests (runs, markers, alignment, a video range
request, and a marker edit every half second, which fans a ``markers`` event out to every stream).

Reports the p50/p95/max latency of the API requests, the events the streams received, clients the
server dropped, and the server's RSS after warm-up vs at the end.

    .venv/bin/python benchmarks/bench_sse_load.py --seconds 30 --clients 50
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psutil

TOKEN = "bench-token-123456"


def _serve(work: str, port_queue: mp.Queue) -> None:
    """Child process: make the sample pair, align it, serve the preview on a free port."""
    from mtbsync.config import preset
    from mtbsync.markers import read_reference_markers
    from mtbsync.pipeline import sync
    from mtbsync.samples import make_sample_pair
    from mtbsync.service import ApiServer, preview_app, preview_files
    from mtbsync.timing import StageTimer

    work_dir = Path(work)
    pair = make_sample_pair(
        work_dir / "pair", duration_s=14.0, seed=3, ref_size=(480, 270), new_size=(400, 224)
    )
    timer = StageTimer()
    result = sync(
        pair.reference,
        pair.new,
        work_dir / "sync",
        preset("default"),
        markers=read_reference_markers(pair.reference_markers_csv),
        timer=timer,
    )
    files = preview_files(
        pair.reference,
        pair.new,
        result.files["warp"],
        new_markers=result.files["markers"],
        reference_markers=pair.reference_markers_csv,
        out_dir=work_dir / "review",
    )
    app, _ = preview_app(files, token=TOKEN, history=timer.records)
    server = ApiServer(app, host="127.0.0.1", port=0).bind()
    port_queue.put(server.port)
    server.serve_forever()


async def _sse_client(url: str, stop: float, counts: list[int], index: int) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=30.0)) as client:
        while time.monotonic() < stop:
            try:
                async with client.stream("GET", f"{url}/api/events") as response:
                    async for line in response.aiter_lines():
                        if line.startswith("event:"):
                            counts[index] += 1
                        if time.monotonic() >= stop:
                            return
            except httpx.HTTPError:
                await asyncio.sleep(0.2)  # dropped or reset: reconnect, as a browser would


async def _api_worker(
    url: str, stop: float, latencies: list[tuple[str, float]], errors: list[str], writer: bool
) -> None:
    requests = [
        ("GET", "/api/runs", None, {}),
        ("GET", "/api/runs/new/markers", None, {}),
        ("GET", "/api/runs/new/alignment?samples=600", None, {}),
        ("GET", "/api/media/new", None, {"Range": "bytes=0-262143"}),
        ("GET", "/api/perf/history?seconds=60", None, {}),
    ]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    k = 0
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        while time.monotonic() < stop:
            if writer and k % 5 == 0:
                method, path, body, headers = (
                    "PATCH",
                    "/api/runs/new/markers/0",
                    {"reviewed": k % 10 == 0},
                    auth,
                )
            else:
                method, path, body, headers = requests[k % len(requests)]
            k += 1
            t0 = time.perf_counter()
            try:
                response = await client.request(method, path, json=body, headers=headers)
                latencies.append((f"{method} {path.split('?')[0]}", time.perf_counter() - t0))
                if response.status_code >= 400:
                    errors.append(f"{method} {path}: {response.status_code}")
            except httpx.HTTPError as exc:
                errors.append(f"{method} {path}: {type(exc).__name__}")
            if writer:
                await asyncio.sleep(0.1)


async def _load(url: str, seconds: float, clients: int, workers: int) -> dict:
    stop = time.monotonic() + seconds
    counts = [0] * clients
    latencies: list[tuple[str, float]] = []
    errors: list[str] = []
    tasks = [asyncio.create_task(_sse_client(url, stop, counts, i)) for i in range(clients)]
    tasks += [
        asyncio.create_task(_api_worker(url, stop, latencies, errors, writer=(w == 0)))
        for w in range(workers)
    ]
    await asyncio.gather(*tasks)
    return {"counts": counts, "latencies": latencies, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4, help="concurrent API request loops")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="mtbsync-sse-bench-") as work:
        ports: mp.Queue = ctx.Queue()
        child = ctx.Process(target=_serve, args=(work, ports), daemon=True)
        child.start()
        try:
            port = ports.get(timeout=300)
            url = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            proc = psutil.Process(child.pid)
            # Warm-up: every route once, so lazily built things are counted in the baseline.
            asyncio.run(_load(url, 2.0, 2, 1))
            rss_start = proc.memory_info().rss / 2**20
            t0 = time.perf_counter()
            result = asyncio.run(_load(url, args.seconds, args.clients, args.workers))
            elapsed = time.perf_counter() - t0
            rss_end = proc.memory_info().rss / 2**20
            history = httpx.get(f"{url}/api/perf/history?seconds=5").json()["telemetry"]
        finally:
            child.terminate()
            child.join(10)

    lat = sorted(t for _, t in result["latencies"])
    p = lambda q: 1000 * lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    counts = result["counts"]
    print(f"{args.clients} SSE clients + {args.workers} API loops for {elapsed:.1f} s on loopback")
    print(f"API requests: {len(lat)} ({len(lat) / elapsed:.0f}/s), errors {len(result['errors'])}")
    print(
        f"API latency ms: p50 {p(0.50):.1f}  p95 {p(0.95):.1f}  p99 {p(0.99):.1f}  max {1000 * lat[-1]:.1f}"
    )
    print(
        f"SSE events per client: min {min(counts)}  median {statistics.median(counts):.0f}  max {max(counts)}"
        f"  (server saw {history[-1].get('sse_clients') if history else '?'} clients at the end)"
    )
    print(
        f"server RSS MiB: {rss_start:.1f} after warm-up -> {rss_end:.1f} at the end "
        f"({rss_end - rss_start:+.1f})"
    )
    by_route: dict[str, list[float]] = {}
    for route, t in result["latencies"]:
        by_route.setdefault(route, []).append(1000 * t)
    for route, times in sorted(by_route.items()):
        times.sort()
        print(
            f"  {route:<36} n={len(times):<4} p50 {times[len(times) // 2]:7.1f}  "
            f"p95 {times[int(0.95 * len(times))]:7.1f} ms"
        )
    if result["errors"]:
        print("first errors:", result["errors"][:5])


if __name__ == "__main__":
    main()

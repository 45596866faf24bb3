"""Runaway SQL against `mtbsync serve`: how long until the server answers again, and how it stops.

Starts ``mtbsync serve`` in a subprocess over a fresh catalog (an empty library) and, for each case,
reports seconds and what came back:

- ``answer``: the runaway query (an endless recursive CTE) sent once by a client that waits up to
  ``--wait`` s: how long until the server answered (408 under the query budget).
- ``abandoned``: the runaway query sent ``--times`` times by a client that gives up after
  ``--client-timeout`` s each (as a rider's script would); then how long until ``SELECT 1`` is
  answered and the server's CPU a second later (idle again, or still chewing on abandoned queries).
- ``sigterm`` / ``sigint``: a fresh server with ``--times`` runaway queries in flight (their clients
  still waiting) is sent the signal: how long until the process exited, its exit code, and whether its
  output held a traceback (first for an idle server, the baseline).

    .venv/bin/python benchmarks/bench_runaway_sql.py [--times 3] [--client-timeout 3] [--budget 10]

``--budget`` sets ``MTBSYNC_SQL_TIMEOUT`` for the server (the default budget is 10 s); the numbers
depend on it, not on the machine (apart from a few milliseconds).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from mtbsync.store.service_file import read_live_service

RUNAWAY = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT count(*) FROM r"
TOKEN = "bench-runaway-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def serving(work: Path, budget: float | None) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    """``mtbsync serve`` on a free port; yields the process, its URL and the file its output goes to."""
    library = work / "library"
    library.mkdir(parents=True, exist_ok=True)
    db = work / "catalog.duckdb"
    log = work / f"serve-{time.monotonic_ns()}.log"
    env = {**os.environ, "MTBSYNC_TOKEN": TOKEN, "MTBSYNC_NO_GPU": "1"}
    if budget is not None:
        env["MTBSYNC_SQL_TIMEOUT"] = str(budget)
    command = [sys.executable, "-m", "mtbsync", "serve", "--library", str(library), "--db", str(db)]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "--port", "0", "--settle", "0.3"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        info = read_live_service(db)
        while info is None or info.pid != process.pid:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the service did not start:\n{log.read_text()}")
            time.sleep(0.1)
            info = read_live_service(db)
        yield process, info.url, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def post(url: str, sql: str, timeout: float) -> tuple[str, float]:
    """(status code or the client's exception name, seconds) of one ``POST /api/sql``."""
    start = time.monotonic()
    try:
        response = httpx.post(f"{url}/api/sql", json={"sql": sql}, headers=HEADERS, timeout=timeout)
        outcome = f"{response.status_code} {response.text[:80]}"
    except httpx.HTTPError as exc:
        outcome = type(exc).__name__
    return outcome, time.monotonic() - start


def case_answer(url: str, wait: float) -> None:
    outcome, seconds = post(url, RUNAWAY, wait)
    print(f"answer: one runaway query, client waits {wait:.0f} s -> {outcome} after {seconds:.2f} s")


def case_abandoned(url: str, pid: int, times: int, client_timeout: float) -> None:
    for _ in range(times):
        post(url, RUNAWAY, client_timeout)
    outcome, seconds = post(url, "SELECT 1", 60)
    process = psutil.Process(pid)
    process.cpu_percent()
    time.sleep(1.0)
    cpu = process.cpu_percent()
    print(
        f"abandoned: {times} runaway queries given up after {client_timeout:.0f} s each -> "
        f"SELECT 1 answered {outcome.split()[0]} in {seconds:.2f} s; server CPU a second later {cpu:.0f} %"
    )


def case_signal(work: Path, budget: float | None, times: int, signum: signal.Signals) -> None:
    with serving(work, budget) as (process, url, log):
        clients = [threading.Thread(target=post, args=(url, RUNAWAY, 60), daemon=True) for _ in range(times)]
        for client in clients:
            client.start()
        time.sleep(1.5)  # the queries are running (or, with none, the server idles)
        start = time.monotonic()
        process.send_signal(signum)
        try:
            process.wait(60)
            seconds = f"{time.monotonic() - start:.2f} s"
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            seconds = "more than 60 s (killed)"
        output = log.read_text()
        tracebacks = output.count("Traceback")
        print(
            f"{signum.name.lower()}: {times} runaway queries in flight -> exited {process.returncode} "
            f"after {seconds}; tracebacks in its output: {tracebacks}"
        )
        if tracebacks:
            errors = [line for line in output.splitlines() if "Error" in line or "exceeded" in line]
            for line in errors[:8]:
                print(f"    {line.strip()[:160]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=3, help="runaway queries per case")
    parser.add_argument("--client-timeout", type=float, default=3.0, help="seconds a client waits")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds the patient client waits")
    parser.add_argument("--budget", type=float, default=None, help="MTBSYNC_SQL_TIMEOUT for the server")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_runaway_"))
    with serving(work, args.budget) as (process, url, _):
        case_answer(url, args.wait)
        case_abandoned(url, process.pid, args.times, args.client_timeout)
    case_signal(work, args.budget, 0, signal.SIGTERM)  # the baseline: an idle server
    for signum in (signal.SIGTERM, signal.SIGINT):
        case_signal(work, args.budget, args.times, signum)


if __name__ == "__main__":
    main()

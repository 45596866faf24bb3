"""``POST /api/sql`` under runaway queries, on a real uvicorn: 408, clients that leave, shutdown.

In process: a `CatalogSource` over a real catalog file, served by `ApiServer` at 127.0.0.1. As a
process: ``mtbsync serve`` stopped by SIGTERM / SIGINT while runaway queries run. Deadlines only
detect a hang (the runaway never ends by itself).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

RUNAWAY = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT count(*) FROM r"
SEQUENCE = "SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 'runs_id_seq'"
TOKEN = "sql-budget-token-1"


@contextmanager
def catalog_server(work: Path, sql_timeout_s: float) -> Iterator[Any]:
    """The library app over a fresh catalog on a free port; yields the server (``.catalog`` set)."""
    from mtbsync.api import EventBroker, create_app
    from mtbsync.api.catalog_source import CatalogSource
    from mtbsync.service import ApiServer
    from mtbsync.store.catalog import Catalog

    work.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.open(work / "catalog.duckdb")
    source = CatalogSource(catalog, work, cache_dir=work / "proxies", sql_timeout_s=sql_timeout_s)
    app = create_app(source, token=TOKEN, broker=EventBroker(telemetry_interval_s=0))
    server = ApiServer(app, host="127.0.0.1", port=0).start()
    server.catalog = catalog
    try:
        yield server
    finally:
        server.stop()
        catalog.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server whose queries may run 1 s."""
    with catalog_server(tmp_path_factory.mktemp("sql_budget"), sql_timeout_s=1.0) as server:
        yield server


def _sql(url: str, sql: str, timeout: float = 30.0, **body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}  # read-only, but a program would send it anyway
    return httpx.post(f"{url}/api/sql", json={"sql": sql, **body}, headers=headers, timeout=timeout)


def _wait_for(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_runaway_query_is_answered_408_when_its_budget_is_spent(served) -> None:
    response = _sql(served.url, RUNAWAY)
    assert response.status_code == 408
    body = response.json()
    assert body["error"] == "query timeout" and "1 s time budget" in body["detail"]
    assert "\n" not in body["detail"]
    # A request may ask for less than the server's budget, never more.
    shorter = _sql(served.url, RUNAWAY, timeout_s=0.3)
    assert shorter.status_code == 408 and "0.3 s" in shorter.json()["detail"]
    longer = _sql(served.url, RUNAWAY, timeout_s=600)
    assert longer.status_code == 408 and "1 s" in longer.json()["detail"]
    assert served.catalog.running_queries == 0
    assert _sql(served.url, "SELECT 42").json()["rows"] == [[42]]


def test_nextval_is_refused_and_the_sequence_stays(served) -> None:
    before = _sql(served.url, SEQUENCE).json()["rows"]
    for sql in ("SELECT nextval('runs_id_seq')", "SELECT * FROM query('SELECT nextval(''runs_id_seq'')')"):
        refused = _sql(served.url, sql)
        assert refused.status_code == 400, sql
        assert "cannot call" in refused.json()["detail"] and "\n" not in refused.json()["detail"]
    assert _sql(served.url, SEQUENCE).json()["rows"] == before
    # EXPLAIN ANALYZE runs what it explains: a DELETE is a write.
    explained = _sql(served.url, "EXPLAIN ANALYZE DELETE FROM schema_migrations")
    assert (
        explained.status_code == 400 and "DELETE statements change the catalog" in explained.json()["detail"]
    )
    assert _sql(served.url, "SELECT count(*) FROM schema_migrations").json()["rows"][0][0] > 0


def test_rows_over_the_budget_are_truncated(served) -> None:
    body = _sql(served.url, "SELECT * FROM range(100000000000000)", max_rows=4).json()
    assert body["rows"] == [[0], [1], [2], [3]] and body["truncated"] is True


def test_a_client_that_leaves_gets_its_query_interrupted(tmp_path: Path) -> None:
    # The server's budget is long: only the client's leaving can stop these queries.
    with catalog_server(tmp_path / "long", sql_timeout_s=600) as server:
        for _ in range(3):
            with pytest.raises(httpx.ReadTimeout):
                _sql(server.url, RUNAWAY, timeout=0.5)
        _wait_for(lambda: server.catalog.running_queries == 0, what="the abandoned queries to stop")
        assert _sql(server.url, "SELECT 7").json()["rows"] == [[7]]


@contextmanager
def serving(work: Path, *extra: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``mtbsync serve`` on a free port (stderr to a pipe); yields the process and its URL."""
    from mtbsync.store.service_file import read_live_service

    library, db = work / "library", work / "catalog.duckdb"
    library.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MTBSYNC_TOKEN": TOKEN, "MTBSYNC_NO_GPU": "1"}
    command = [sys.executable, "-m", "mtbsync", "serve", "--library", str(library), "--db", str(db)]
    process = subprocess.Popen(
        [*command, "--port", "0", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        info = None
        while info is None or info.pid != process.pid:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the service did not announce itself"
            time.sleep(0.1)
            info = read_live_service(db)
        yield process, info.url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_promptly_and_cleanly_with_runaway_queries_running(tmp_path: Path, signum: int) -> None:
    answers: list[Any] = []

    def client(url: str) -> None:
        try:
            answers.append(_sql(url, RUNAWAY, timeout=60))
        except httpx.HTTPError as exc:  # pragma: no cover - the server went before answering
            answers.append(exc)

    with serving(tmp_path, "--sql-timeout", "600") as (process, url):
        clients = [threading.Thread(target=client, args=(url,)) for _ in range(3)]
        for thread in clients:
            thread.start()
        time.sleep(1.0)  # the queries run
        assert not answers
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=15)  # a hang detector, not a timing
    for thread in clients:
        thread.join(15)
    assert process.returncode in (0, 130), stderr
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
    # Each query was stopped and answered before the server went.
    assert [getattr(a, "status_code", a) for a in answers] == [503] * 3
    assert all(a.json()["error"] == "query stopped" for a in answers)

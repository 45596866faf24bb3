"""`mtbsync serve --library DIR` as a process: announces itself, stops on Ctrl-C, resumes after kill -9."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mtbsync.store.service_file import read_live_service, service_file_path

TOKEN = "serve-cli-token-1"


@contextmanager
def serving(library: Path, db: Path, *extra: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start ``mtbsync serve`` on a free port; yields the process and its URL (from the service file)."""
    env = {**os.environ, "MTBSYNC_TOKEN": TOKEN, "MTBSYNC_NO_GPU": "1"}
    command = [sys.executable, "-m", "mtbsync", "serve", "--library", str(library), "--db", str(db)]
    process = subprocess.Popen(
        [*command, "--port", "0", "--settle", "0.3", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        info = None
        while info is None or info.pid != process.pid:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the service did not announce itself"
            time.sleep(0.1)
            info = read_live_service(db)
        yield process, info.url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _runs(url: str) -> list[dict]:
    return httpx.get(f"{url}/api/runs", timeout=10).json()


def test_serve_announces_itself_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    library, db = tmp_path / "library", tmp_path / "catalog.duckdb"
    library.mkdir()
    with serving(library, db) as (process, url):
        health = httpx.get(f"{url}/api/health").json()
        assert health["mode"] == "library" and health["status"] == "ok"
        assert read_live_service(db).token == TOKEN
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "mtbsync serve" in output and "Traceback" not in output
    assert not service_file_path(db).exists()


def test_serve_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    from mtbsync.cli import app

    missing = CliRunner().invoke(
        app, ["serve", "--library", str(tmp_path / "nope"), "--db", str(tmp_path / "c.db")]
    )
    assert missing.exit_code == 1 and "is not a folder" in missing.output
    assert len([line for line in missing.output.splitlines() if line.strip()]) == 1
    inside = tmp_path / "lib"
    inside.mkdir()
    nested = CliRunner().invoke(
        app, ["serve", "--library", str(inside), "--db", str(inside / "catalog.duckdb")]
    )
    assert nested.exit_code == 1 and "inside the library" in nested.output
    off = CliRunner().invoke(app, ["serve", "--library", str(inside), "--db", "none"])
    assert off.exit_code == 1 and "needs the catalog" in off.output


@pytest.mark.slow
def test_a_killed_service_resumes_its_queue_on_restart(sample_pair, tmp_path: Path) -> None:
    from mtbsync.store.catalog import Catalog

    library, db = tmp_path / "library", tmp_path / "catalog.duckdb"
    (library / "DCIM" / "100GOPRO").mkdir(parents=True)
    shutil.copy(sample_pair.reference, library / "DCIM" / "100GOPRO" / "GX010001.MP4")
    with serving(library, db) as (process, url):
        deadline = time.monotonic() + 120
        while not any(r["state"] in ("ingesting", "aligning") for r in _runs(url)):
            assert time.monotonic() < deadline, _runs(url)
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)  # mid-job
        process.wait(10)
    with Catalog.open(db, read_only=True) as catalog:
        assert len(catalog.jobs("running")) == 1  # left running by the killed service
    with serving(library, db) as (process, url):
        deadline = time.monotonic() + 180
        while True:
            runs = _runs(url)
            if runs and runs[0]["state"] not in ("queued", "ingesting", "aligning"):
                break
            assert time.monotonic() < deadline, runs
            time.sleep(0.2)
        assert runs[0]["state"] == "ready" and runs[0]["is_reference"]
        rows = httpx.post(
            f"{url}/api/sql", json={"sql": "SELECT kind, state, attempts FROM jobs ORDER BY job_id"}
        ).json()["rows"]
        assert [r[:2] for r in rows] == [["ingest", "done"], ["align", "done"]]
        assert max(r[2] for r in rows) == 2  # the interrupted job ran again
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        assert process.returncode == 0

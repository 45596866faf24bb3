"""`mtbsync sql / runs / trails / trail / prune` in process, and the service client over real HTTP."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest
from store_cases import build_known_catalog
from typer.testing import CliRunner

from mtbsync.cli import EXIT_OK, EXIT_USER_ERROR, app
from mtbsync.errors import CatalogError
from mtbsync.store.catalog import Catalog
from mtbsync.store.queries import run_sql
from mtbsync.store.service_file import (
    frame_to_rows,
    read_live_service,
    remove_service_file,
    service_file_path,
    write_service_file,
)

runner = CliRunner()


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "known.duckdb"
    with Catalog.open(path) as catalog:
        build_known_catalog(catalog)
    return path


def test_store_cli_sql_formats(db: Path, tmp_path: Path) -> None:
    query = "SELECT run_id, name FROM runs ORDER BY run_id"
    table = _run("sql", query, "--db", db)
    assert table.exit_code == EXIT_OK, table.output
    assert "RUN_A" in table.output and "5 rows" in table.output

    as_csv = _run("sql", query, "--format", "csv", "--db", db)
    assert list(csv.reader(io.StringIO(as_csv.output)))[:3] == [
        ["run_id", "name"],
        ["1", "REF"],
        ["2", "RUN_A"],
    ]

    as_json = _run("sql", query, "--format", "json", "--db", db)
    assert json.loads(as_json.output)[1] == {"run_id": 2, "name": "RUN_A"}

    out = tmp_path / "runs.parquet"
    parquet = _run("sql", query, "--format", "parquet", "--out", out, "--db", db)
    assert parquet.exit_code == EXIT_OK
    assert pl.read_parquet(out)["name"].to_list() == ["REF", "RUN_A", "RUN_B", "RUN_C", "RUN_D"]

    missing_out = _run("sql", query, "--format", "parquet", "--db", db)
    assert missing_out.exit_code == EXIT_USER_ERROR and "needs --out" in missing_out.output


def test_store_cli_sql_refuses_writes_without_write(db: Path) -> None:
    refused = _run("sql", "DELETE FROM markers", "--db", db)
    assert refused.exit_code == EXIT_USER_ERROR
    assert _lines(refused.output) == [
        "error: DELETE statements change the catalog; `mtbsync sql` only reads unless --write is given"
    ]
    allowed = _run("sql", "DELETE FROM markers WHERE source = 'manual'", "--write", "--db", db)
    assert allowed.exit_code == EXIT_OK, allowed.output
    with Catalog.open(db, read_only=True) as catalog:
        assert run_sql(catalog, "SELECT count(*) AS n FROM markers WHERE source = 'manual'")["n"][0] == 0
        assert run_sql(catalog, "SELECT count(*) AS n FROM markers")["n"][0] == 16


@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT * FROM nowhere", "SELECT missing_column FROM runs"])
def test_store_cli_sql_error_is_one_red_line(db: Path, sql: str) -> None:
    result = _run("sql", sql, "--db", db)
    assert result.exit_code == EXIT_USER_ERROR
    lines = _lines(result.output)
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in result.output


def test_store_cli_runs_and_trails(db: Path) -> None:
    runs = _run("runs", "--format", "csv", "--db", db)
    assert runs.exit_code == EXIT_OK, runs.output
    rows = list(csv.DictReader(io.StringIO(runs.output)))
    assert {r["run"] for r in rows} == {"REF", "RUN_A", "RUN_B", "RUN_C", "RUN_D"}
    assert next(r for r in rows if r["run"] == "RUN_B")["needs_review"] == "1"
    assert _run("runs", "--trail", "Elsewhere", "--format", "csv", "--db", db).output.count("\n") == 1

    trails = _run("trails", "--format", "json", "--db", db)
    assert json.loads(trails.output)[0]["reference_run"] == "REF"
    table = _run("trails", "--db", db)
    assert "Dummy Hill" in table.output


def test_store_cli_trail_create_assign_and_set_reference(db: Path) -> None:
    created = _run("trail", "create", "Lower Hill", "--reference", "RUN_D", "--db", db)
    assert created.exit_code == EXIT_OK, created.output
    assigned = _run("trail", "assign", "RUN_C", "--trail", "Lower Hill", "--db", db)
    assert assigned.exit_code == EXIT_OK and "trail Lower Hill (manual" in assigned.output
    switched = _run("trail", "set-reference", "Dummy Hill", "RUN_A", "--no-realign", "--db", db)
    assert switched.exit_code == EXIT_OK, switched.output
    with Catalog.open(db, read_only=True) as catalog:
        trails = run_sql(
            catalog, "SELECT trail, reference_run, runs FROM (" + _trails_sql() + ") ORDER BY trail"
        )
        assert trails.rows() == [("Dummy Hill", "RUN_A", 3), ("Lower Hill", "RUN_D", 2)]
        # RUN_A had no manual markers: its transferred ones became the trail's reference markers.
        manual = run_sql(
            catalog, "SELECT name, t FROM markers WHERE run_id = 2 AND source = 'manual' ORDER BY t"
        )
        assert manual.rows() == [("start", 1.0), ("gap jump", 8.5), ("berm", 13.0), ("finish", 26.0)]
    unknown = _run("trail", "assign", "NO_SUCH_RUN", "--trail", "Lower Hill", "--db", db)
    assert unknown.exit_code == EXIT_USER_ERROR and "no run 'NO_SUCH_RUN'" in unknown.output


def _trails_sql() -> str:
    from mtbsync.store.queries import TRAILS_SQL

    return TRAILS_SQL.replace("ORDER BY t.name", "")


def test_store_cli_prune(db: Path) -> None:
    result = _run("prune", "--keep", "1", "--db", db)
    assert result.exit_code == EXIT_OK, result.output
    assert "Pruned 1 stage_timings" in result.output  # two decode timings of RUN_A: the older goes
    assert _run("prune", "--db", db).exit_code == EXIT_USER_ERROR


def test_store_cli_missing_catalog_is_one_line(tmp_path: Path) -> None:
    result = _run("runs", "--db", tmp_path / "none-yet.duckdb")
    assert result.exit_code == EXIT_USER_ERROR
    assert len(_lines(result.output)) == 1 and "no catalog here yet" in result.output


class _SqlService:
    """A real HTTP server speaking the service's /api/sql protocol, backed by `run_sql`."""

    def __init__(self, catalog: Catalog, token: str) -> None:
        self.requests = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                service.requests += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.headers.get("Authorization") != f"Bearer {token}":
                    return self._send(401, {"detail": "a valid token is required"})
                try:
                    frame = run_sql(catalog, body["sql"], max_rows=int(body["max_rows"]))
                except CatalogError as exc:
                    return self._send(400, {"detail": str(exc)})
                return self._send(200, frame_to_rows(frame))

            def _send(self, status: int, document: dict) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_store_cli_reads_through_a_running_service(db: Path) -> None:
    with Catalog.open(db) as catalog:  # the "service" holds the file for writing
        service = _SqlService(catalog, token="s3cret")
        try:
            write_service_file(db, service.url, token="s3cret")
            assert read_live_service(db).url == service.url
            assert service_file_path(db).stat().st_mode & 0o777 == 0o600

            runs = _run("runs", "--format", "csv", "--db", db)
            assert runs.exit_code == EXIT_OK, runs.output
            assert "RUN_A" in runs.output and service.requests == 1

            error = _run("sql", "SELECT nope FROM runs", "--db", db)
            assert error.exit_code == EXIT_USER_ERROR and len(_lines(error.output)) == 1
            assert "nope" in error.output

            times = _run(
                "sql", "SELECT name, started_utc FROM runs WHERE name = 'REF'", "-f", "json", "--db", db
            )
            assert json.loads(times.output)[0]["started_utc"]  # timestamps travel as ISO text

            write = _run("sql", "DELETE FROM runs", "--write", "--db", db)
            assert write.exit_code == EXIT_USER_ERROR and "owns the catalog" in write.output

            write_service_file(db, service.url, token="wrong")
            refused = _run("runs", "--db", db)
            assert refused.exit_code == EXIT_USER_ERROR and "a valid token is required" in refused.output
        finally:
            remove_service_file(db)
            service.close()
    assert not service_file_path(db).exists()


def test_store_stale_service_file_is_ignored(db: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    write_service_file(db, "http://127.0.0.1:9", pid=int(dead.stdout))
    assert read_live_service(db) is None
    result = _run("runs", "--format", "csv", "--db", db)
    assert result.exit_code == EXIT_OK and "RUN_A" in result.output


_HOLDER = """
import sys, time
from mtbsync.store.catalog import Catalog
catalog = Catalog.open(sys.argv[1])
print("open", flush=True)
time.sleep(60)
"""


def test_store_cli_write_through_and_locked_catalog(sample_pair, tmp_path: Path) -> None:
    """index, sync, transfer and export record into the catalog; a locked catalog only costs a note."""
    db = tmp_path / "wt.duckdb"
    index = tmp_path / "ref_index.npz"
    out = tmp_path / "sync"
    assert (
        _run(
            "index", "--reference", sample_pair.reference, "--fps", "3", "--out", index, "--db", db
        ).exit_code
        == 0
    )
    synced = _run(
        "sync", "--reference", sample_pair.reference, "--new", sample_pair.new, "--index", index,
        "--out", out, "--reference-markers", sample_pair.reference_markers_csv, "--no-plot", "--db", db,
    )  # fmt: skip
    assert synced.exit_code == EXIT_OK, synced.output
    assert "not recorded" not in synced.output
    markers_csv = out / "new_markers.csv"
    transferred = _run(
        "transfer", "--reference-markers", sample_pair.reference_markers_csv, "--warp", out / "warp.npz",
        "--out", markers_csv, "--no-refine", "--db", db,
    )  # fmt: skip
    assert transferred.exit_code == EXIT_OK, transferred.output
    exported = _run("export", "edl", "--markers", markers_csv, "--out", out / "markers.edl", "--db", db)
    assert exported.exit_code == EXIT_OK, exported.output

    with Catalog.open(db, read_only=True) as catalog:
        runs = run_sql(catalog, "SELECT run_id, name, kind FROM runs ORDER BY run_id")
        assert runs["name"].to_list() == [Path(sample_pair.reference).stem, Path(sample_pair.new).stem]
        ref_id, new_id = runs["run_id"].to_list()
        indexes = run_sql(catalog, "SELECT run_id, keyframes, params FROM indexes")
        assert indexes["run_id"].to_list() == [ref_id]
        assert indexes["keyframes"][0] > 10 and '"sample_fps": 3.0' in indexes["params"][0]  # kept by sync
        alignment = run_sql(catalog, "SELECT * FROM alignments").row(0, named=True)
        assert alignment["ok"] and (alignment["new_run_id"], alignment["ref_run_id"]) == (new_id, ref_id)
        assert (
            run_sql(
                catalog,
                f"SELECT count(*) AS n FROM warp_points WHERE alignment_id = {alignment['alignment_id']}",
            )["n"][0]
            > 2
        )
        sources = run_sql(
            catalog, "SELECT run_id, source, count(*) AS n FROM markers GROUP BY ALL ORDER BY run_id"
        )
        n_ref = len(sample_pair.reference_markers_csv.read_text().strip().splitlines()) - 1
        assert sources.rows() == [(ref_id, "manual", n_ref), (new_id, "transferred", n_ref)]
        stages = set(run_sql(catalog, f"SELECT stage FROM stage_timings WHERE run_id = {new_id}")["stage"])
        assert {"decode", "features", "matching", "warp"} <= stages
        export = run_sql(catalog, "SELECT format, run_id, markers FROM exports").row(0, named=True)
        assert export["run_id"] == new_id and export["markers"] > 0

    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HOLDER), str(db)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        locked = _run("export", "csv", "--markers", markers_csv, "--out", out / "again.csv", "--db", db)
        assert locked.exit_code == EXIT_OK, locked.output
        assert (out / "again.csv").is_file()  # the command's file is written all the same
        assert "not recorded in the catalog" in locked.output and "holds it" in locked.output
    finally:
        holder.kill()
        holder.wait(10)


def test_store_cli_odd_types_in_every_format(db: Path) -> None:
    query = "SELECT [1, 2] AS lst, {'a': 1} AS st, 'nan'::DOUBLE AS n, 1.5 AS dec, INTERVAL 3 SECOND AS iv"
    as_json = _run("sql", query, "--format", "json", "--db", db)
    assert as_json.exit_code == EXIT_OK, as_json.output
    # INTERVAL is a type polars cannot hold: the whole answer comes back as text, never a traceback.
    assert json.loads(as_json.output) == [
        {"lst": "[1, 2]", "st": "{'a': 1}", "n": "nan", "dec": "1.5", "iv": "00:00:03"}
    ]
    typed = _run("sql", query.rsplit(",", 1)[0], "--format", "json", "--db", db)
    assert json.loads(typed.output) == [{"lst": [1, 2], "st": {"a": 1}, "n": None, "dec": 1.5}]
    as_csv = _run("sql", query.rsplit(",", 1)[0], "--format", "csv", "--db", db)
    assert list(csv.reader(io.StringIO(as_csv.output))) == [
        ["lst", "st", "n", "dec"],
        ["[1, 2]", '{"a": 1}', "NaN", "1.5"],
    ]
    assert _run("sql", query, "--db", db).exit_code == EXIT_OK

"""Budgets of riders' SQL (`store.queries.run_sql`): time, rows, stopping, and functions that change state.

A real DuckDB catalog file each time; the runaway is an endless recursive CTE (one row per step, so
it burns CPU without memory). Deadlines here only detect a hang: a query that is not stopped would
run forever.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtbsync.errors import CatalogError, QueryStoppedError, QueryTimeoutError
from mtbsync.store.catalog import Catalog
from mtbsync.store.queries import refused_calls, run_sql

RUNAWAY = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT count(*) FROM r"
SEQUENCE = "SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 'runs_id_seq'"


@pytest.fixture()
def catalog(tmp_path: Path):
    with Catalog.open(tmp_path / "catalog.duckdb") as opened:
        yield opened


def _wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_runaway_query_is_stopped_when_its_time_is_spent(catalog: Catalog) -> None:
    with pytest.raises(QueryTimeoutError, match=r"0\.5 s time budget") as stopped:
        run_sql(catalog, RUNAWAY, timeout_s=0.5)
    assert stopped.value.budget_s == 0.5 and "\n" not in str(stopped.value)
    assert catalog.running_queries == 0
    assert run_sql(catalog, "SELECT 42 AS n")["n"][0] == 42  # the catalog is free again
    # The budget covers every statement, the runaway after a quick one too.
    with pytest.raises(QueryTimeoutError):
        run_sql(catalog, f"SELECT 1; {RUNAWAY}", timeout_s=0.5)


def test_a_write_past_its_budget_is_rolled_back(catalog: Catalog) -> None:
    with pytest.raises(QueryTimeoutError):
        run_sql(
            catalog,
            f"INSERT INTO trails (trail_id, name, created_at) VALUES (1, 'x', now()); {RUNAWAY}",
            write=True,
            timeout_s=0.5,
        )
    assert run_sql(catalog, "SELECT count(*) AS n FROM trails")["n"][0] == 0


def test_a_cancelled_query_stops(catalog: Catalog) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(QueryStoppedError, match="client went away"):
        run_sql(catalog, RUNAWAY, timeout_s=None, cancel=cancel)
    assert catalog.running_queries == 0


def test_stop_queries_interrupts_running_ones_and_refuses_new_ones(catalog: Catalog) -> None:
    errors: list[Exception] = []

    def runaway() -> None:
        try:
            run_sql(catalog, RUNAWAY, timeout_s=None)
        except CatalogError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=runaway) for _ in range(3)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: catalog.running_queries == 3)
    assert catalog.stop_queries("the service is stopping") == 3
    for thread in threads:
        thread.join(15)
        assert not thread.is_alive()
    assert [type(e) for e in errors] == [QueryStoppedError] * 3
    assert all("the service is stopping" in str(e) for e in errors)
    with pytest.raises(CatalogError, match="query refused: the service is stopping"):
        run_sql(catalog, "SELECT 1")


def test_closing_the_catalog_interrupts_a_running_query(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path / "catalog.duckdb")
    errors: list[Exception] = []

    def runaway() -> None:
        try:
            run_sql(catalog, RUNAWAY, timeout_s=None)
        except CatalogError as exc:
            errors.append(exc)

    thread = threading.Thread(target=runaway)
    thread.start()
    _wait_for(lambda: catalog.running_queries == 1)
    catalog.close()  # no "connection is busy": the query gave up first
    thread.join(15)
    assert not thread.is_alive() and isinstance(errors[0], QueryStoppedError)


def test_rows_are_bounded_without_computing_the_rest(catalog: Catalog) -> None:
    # A hundred trillion rows: only possible within the budget if DuckDB stops after max_rows + 1.
    frame = run_sql(catalog, "SELECT * FROM range(100000000000000)", max_rows=3, timeout_s=30)
    assert frame["range"].to_list() == [0, 1, 2]
    # A query before the last only binds: its rows are never computed.
    frame = run_sql(catalog, f"{RUNAWAY}; SELECT 2 AS x", timeout_s=30)
    assert frame["x"].to_list() == [2]
    with pytest.raises(CatalogError, match="time budget must be more than 0"):
        run_sql(catalog, "SELECT 1", timeout_s=0)


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("SELECT nextval('runs_id_seq')", "nextval"),
        ("SELECT \"NEXTVAL\"('runs_id_seq')", "nextval"),
        ("SELECT main.setval('runs_id_seq', 99)", "setval"),
        ("WITH x AS (SELECT nextval('runs_id_seq') AS v) SELECT * FROM x", "nextval"),
        ("SELECT list_transform([1, 2], k -> nextval('runs_id_seq'))", "nextval"),
        ("SELECT * FROM runs WHERE run_id IN (SELECT nextval/**/('runs_id_seq'))", "nextval"),
        ("EXPLAIN ANALYZE SELECT nextval('runs_id_seq')", "nextval"),
        ("SELECT 1; SELECT nextval('runs_id_seq')", "nextval"),
        ("SELECT * FROM query('SELECT nextval(''runs_id_seq'')')", "query"),
        ("SELECT * FROM query_table('runs')", "query_table"),
        ("SELECT * FROM checkpoint()", "checkpoint"),
        ("SELECT * FROM force_checkpoint()", "force_checkpoint"),
        ("SELECT write_log('x')", "write_log"),
        ("SELECT * FROM enable_logging()", "enable_logging"),
    ],
)
def test_functions_that_change_state_are_refused_in_a_read(catalog: Catalog, sql: str, name: str) -> None:
    before = run_sql(catalog, SEQUENCE).to_dicts()
    with pytest.raises(CatalogError, match=rf"cannot call .*{name}\(\)") as refused:
        run_sql(catalog, sql)
    assert "\n" not in str(refused.value)
    assert run_sql(catalog, SEQUENCE).to_dicts() == before  # the sequence did not move


def test_harmless_calls_and_names_are_allowed(catalog: Catalog) -> None:
    assert refused_calls(catalog, "SELECT 'nextval' AS nextval, random() < 2 AS r, uuid() IS NOT NULL") == []
    assert refused_calls(catalog, "SELECT * FROM duckdb_sequences()") == []
    assert run_sql(catalog, "SELECT 'nextval' AS name")["name"][0] == "nextval"
    assert catalog.query("SELECT 1 AS one")["one"][0] == 1  # the checks left this thread's connection free
    # The existing statement-type checks still hold.
    for sql in ("SET threads = 1", "PRAGMA version", "CALL checkpoint()", "ATTACH ':memory:' AS m"):
        with pytest.raises(CatalogError, match="change the catalog"):
            run_sql(catalog, sql)


@pytest.mark.parametrize(
    "sql",
    [
        "EXPLAIN ANALYZE DELETE FROM trails",
        "explain /* why */ analyse delete from trails",
        "EXPLAIN (ANALYZE, FORMAT json) DELETE FROM trails",
        "EXPLAIN ANALYZE UPDATE trails SET name = 'y'",
    ],
)
def test_explain_analyze_of_a_write_is_a_write(catalog: Catalog, sql: str) -> None:
    run_sql(catalog, "INSERT INTO trails (trail_id, name, created_at) VALUES (1, 'x', now())", write=True)
    with pytest.raises(CatalogError, match=r"(DELETE|UPDATE) statements change the catalog"):
        run_sql(catalog, sql)
    assert run_sql(catalog, "SELECT name FROM trails")["name"].to_list() == ["x"]
    # EXPLAIN alone runs nothing; EXPLAIN ANALYZE of a query runs only the query.
    assert len(run_sql(catalog, "EXPLAIN DELETE FROM trails")) >= 1
    assert len(run_sql(catalog, "EXPLAIN (FORMAT json) SELECT * FROM trails")) >= 1
    assert len(run_sql(catalog, "EXPLAIN ANALYZE SELECT count(*) FROM trails")) >= 1
    assert run_sql(catalog, "SELECT name FROM trails")["name"].to_list() == ["x"]


def test_a_write_may_call_nextval(catalog: Catalog) -> None:
    first = run_sql(catalog, "SELECT nextval('runs_id_seq') AS id", write=True)["id"][0]
    assert run_sql(catalog, SEQUENCE)["last_value"][0] == first


def test_the_sql_command_stops_a_runaway_query_with_one_red_line(tmp_path: Path) -> None:
    from mtbsync.cli import app

    db = tmp_path / "catalog.duckdb"
    Catalog.open(db).close()
    result = CliRunner().invoke(app, ["sql", RUNAWAY, "--timeout", "0.5", "--db", str(db)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "time budget" in lines[0], result.output
    refused = CliRunner().invoke(app, ["sql", "SELECT nextval('runs_id_seq')", "--db", str(db)])
    assert refused.exit_code == 1 and "cannot call nextval()" in refused.output

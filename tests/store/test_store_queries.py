"""Riders' SQL: read-only by statement type, one-line errors, the README examples, views, prune."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from store_cases import build_known_catalog

from mtbsync.errors import CatalogError
from mtbsync.store.catalog import Catalog, utcnow
from mtbsync.store.queries import EXAMPLE_QUERIES, list_runs, list_trails, prune, run_sql, statement_types
from mtbsync.timing import StageRecord


@pytest.fixture()
def known(tmp_path: Path):
    with Catalog.open(tmp_path / "known.duckdb") as catalog:
        ids = build_known_catalog(catalog)
        yield catalog, ids


def test_store_example_fastest_run_this_month(known) -> None:
    catalog, _ = known
    rows = run_sql(catalog, EXAMPLE_QUERIES["fastest_this_month"])
    assert rows["run"].to_list() == ["RUN_A"]  # RUN_C is faster but was ridden last month
    assert rows["seconds"].to_list() == [25.0]


def test_store_example_runs_needing_review(known) -> None:
    catalog, _ = known
    rows = run_sql(catalog, EXAMPLE_QUERIES["needs_review"])
    assert rows.select("run", "needs_review", "aligned").rows() == [("RUN_B", 1, True), ("RUN_D", 0, False)]
    assert rows["align_reason"].to_list() == ["", "too little coverage"]


def test_store_example_time_between_two_markers(known) -> None:
    catalog, _ = known
    rows = run_sql(catalog, EXAMPLE_QUERIES["between_two_markers"])
    assert rows.rows() == [("RUN_C", 3.0), ("RUN_A", 4.5), ("REF", 5.0), ("RUN_B", 6.0)]


def test_store_example_splits_against_the_reference(known) -> None:
    catalog, _ = known
    rows = run_sql(catalog, EXAMPLE_QUERIES["splits_vs_reference"])
    run_a = rows.filter(rows["run"] == "RUN_A")
    assert run_a.select("from_marker", "to_marker", "split_s", "delta_s").rows() == [
        ("start", "gap jump", 7.5, -0.5),
        ("gap jump", "berm", 4.5, -0.5),
        ("berm", "finish", 13.0, -2.0),
    ]
    assert set(rows["run"]) == {"RUN_A", "RUN_B", "RUN_C"}  # not the reference, not the unplaced run


def test_store_example_slowest_stages(known) -> None:
    catalog, _ = known
    rows = run_sql(catalog, EXAMPLE_QUERIES["slowest_stages"])
    assert rows.select("stage", "device", "runs", "avg_s").rows() == [
        ("decode", "cpu", 2, 3.0),
        ("matching", "gpu", 1, 1.0),
    ]


def test_store_run_summary_and_lists(known) -> None:
    catalog, _ = known
    runs = list_runs(catalog)
    assert len(runs) == 5
    ref = runs.filter(runs["run"] == "REF").row(0, named=True)
    assert ref["is_reference"] and ref["markers"] == 4 and ref["marker_span_s"] == 28.0
    assert list_runs(catalog, trail="Nope").is_empty()
    assert len(list_runs(catalog, trail="Dummy Hill")) == 5
    trails = list_trails(catalog)
    assert trails.select("trail", "reference_run", "runs").rows() == [("Dummy Hill", "REF", 5)]


def test_store_former_reference_is_measured_by_its_own_markers(known) -> None:
    """A run with manual markers uses them in the views even when it also got transferred ones."""
    from mtbsync.store.catalog import MarkerRow

    catalog, ids = known
    catalog.record_markers(ids["REF"], [MarkerRow("start", 99.0, 2.0)], source="transferred")
    splits = run_sql(catalog, "SELECT split_s FROM splits WHERE run = 'REF' ORDER BY split_no")
    assert splits["split_s"].to_list() == [8.0, 5.0, 15.0]


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("DELETE FROM runs", "DELETE"),
        ("UPDATE markers SET t = 0", "UPDATE"),
        ("SELECT 1; DROP TABLE runs", "DROP"),
        ("CREATE TABLE x AS SELECT 1", "CREATE"),
        ("COPY runs TO '/tmp/runs.csv'", "COPY"),
        ("ATTACH '/tmp/other.duckdb'", "ATTACH"),
        ("INSERT INTO trails (name, created_at) VALUES ('x', now())", "INSERT"),
    ],
)
def test_store_writes_are_refused_without_write(known, sql: str, kind: str) -> None:
    catalog, _ = known
    before = catalog.query("SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM markers) AS n")["n"][0]
    with pytest.raises(CatalogError, match=f"{kind} statements change the catalog"):
        run_sql(catalog, sql)
    after = catalog.query("SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM markers) AS n")["n"][0]
    assert before == after


def test_store_reads_of_every_kind_are_allowed(known) -> None:
    catalog, _ = known
    assert statement_types(
        catalog, "DESCRIBE runs; SHOW TABLES; EXPLAIN SELECT 1; WITH a AS (SELECT 1) FROM a"
    ) == [
        "SELECT",
        "SELECT",
        "EXPLAIN",
        "SELECT",
    ]
    assert "run_id" in run_sql(catalog, "DESCRIBE runs")["column_name"].to_list()


def test_store_write_runs_in_one_transaction(known) -> None:
    catalog, _ = known
    run_sql(catalog, "UPDATE markers SET review_state = 'reviewed' WHERE needs_review", write=True)
    assert run_sql(catalog, "SELECT count(*) AS n FROM run_summary WHERE needs_review > 0")["n"][0] == 0
    with pytest.raises(CatalogError):
        run_sql(catalog, "DELETE FROM markers; SELECT no_such_column FROM runs", write=True)
    assert run_sql(catalog, "SELECT count(*) AS n FROM markers")["n"][0] > 0  # the DELETE was rolled back


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELEC * FROM runs", "syntax error"),
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("SELECT nope FROM runs", "nope"),
        ("", "no SQL given"),
        ("-- just a comment", "no SQL statement"),
    ],
)
def test_store_sql_errors_are_one_line(known, sql: str, fragment: str) -> None:
    catalog, _ = known
    with pytest.raises(CatalogError) as info:
        run_sql(catalog, sql)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message and "LINE 1" not in message


def test_store_max_rows_caps_the_answer(known) -> None:
    catalog, _ = known
    assert len(run_sql(catalog, "SELECT * FROM range(100)", max_rows=7)) == 7
    with pytest.raises(CatalogError):
        run_sql(catalog, "SELECT 1", max_rows=0)


def test_store_read_only_catalog_refuses_writes_even_with_write(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    Catalog.open(path).close()
    with Catalog.open(path, read_only=True) as catalog, pytest.raises(CatalogError, match="read-only"):
        run_sql(catalog, "DELETE FROM runs", write=True)


def test_store_prune_keeps_the_newest_and_drops_the_old(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        base = 1_700_000_000.0
        records = [StageRecord("decode", started_at=base + k, seconds=1.0) for k in range(5)]
        catalog.record_stage_timings(records, run_id=1)
        catalog.record_stage_timings([StageRecord("decode", started_at=base, seconds=1.0)], run_id=2)
        for k in range(3):
            catalog.log_ingest_event("/card/a.mp4", f"event{k}")
        job = catalog.enqueue("align", 1)
        catalog.claim_job()
        catalog.finish_job(job)
        catalog.enqueue("align", 2)  # queued jobs are never pruned

        deleted = prune(catalog, keep=2)
        assert deleted == {"stage_timings": 3, "ingest_events": 1, "jobs": 0}
        kept = catalog.query("SELECT run_id, started_at FROM stage_timings ORDER BY run_id, started_at")
        assert kept["run_id"].to_list() == [1, 1, 2]

        deleted = prune(catalog, older_than=timedelta(days=1), now=utcnow() + timedelta(days=2))
        assert deleted == {"stage_timings": 3, "ingest_events": 2, "jobs": 1}
        assert catalog.query("SELECT state FROM jobs")["state"].to_list() == ["queued"]
        with pytest.raises(CatalogError, match="--keep N or --older-than"):
            prune(catalog)

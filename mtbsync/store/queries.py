"""Questions asked of the catalog: riders' SQL (read-only unless asked), lists, retention.

`run_sql` is what ``mtbsync sql`` and the service's ``POST /api/sql`` both call: it refuses any
statement that is not a query unless ``write=True`` (by DuckDB's own statement type, not by pattern
matching on the text), and turns every DuckDB error into one line.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from mtbsync.errors import CatalogError
from mtbsync.store.catalog import Catalog, one_line, utcnow

log = logging.getLogger("mtbsync")

DEFAULT_MAX_ROWS = 10_000

# Statement types that only read. DESCRIBE / SHOW / SUMMARIZE / VALUES parse as SELECT.
_READ_TYPES = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


def _type_name(statement_type: Any) -> str:
    return str(getattr(statement_type, "name", statement_type)).upper()


def statement_types(catalog: Catalog, sql: str) -> list[str]:
    """The DuckDB statement type of each statement in ``sql`` (SELECT, INSERT, CREATE, ...).

    Raises:
        CatalogError: The text does not parse (DuckDB's one-line reason), or holds no statement.
    """
    return [_type_name(s.type) for s in _parse(catalog, sql)]


def _parse(catalog: Catalog, sql: str) -> list[Any]:
    if not sql or not sql.strip():
        raise CatalogError("no SQL given")
    try:
        statements = catalog._conn().extract_statements(sql)
    except duckdb.Error as exc:
        raise CatalogError(one_line(exc)) from None
    if not statements:
        raise CatalogError("no SQL statement found (only comments?)")
    return list(statements)


def run_sql(
    catalog: Catalog, sql: str, *, write: bool = False, max_rows: int = DEFAULT_MAX_ROWS
) -> pl.DataFrame:
    """Run a rider's SQL against the catalog.

    Several statements may be given (separated by ``;``); the result is the last one's. With
    ``write=True`` they run in one transaction, so a failing statement leaves nothing changed.

    Args:
        catalog: The open catalog.
        sql: One or more statements.
        write: Allow statements that change the catalog (INSERT, UPDATE, DELETE, CREATE, COPY, ...).
        max_rows: Return at most this many rows.

    Returns:
        The last statement's rows (at most ``max_rows``); an empty frame for statements without rows.

    Raises:
        CatalogError: A write statement without ``write=True`` (naming the statement type), a write on
            a read-only catalog, or any SQL error, as one line.
    """
    if max_rows < 1:
        raise CatalogError("max_rows must be at least 1")
    statements = _parse(catalog, sql)
    writes = sorted({_type_name(s.type) for s in statements if s.type not in _READ_TYPES})
    if writes and not write:
        raise CatalogError(
            f"{', '.join(writes)} statements change the catalog; "
            "`mtbsync sql` only reads unless --write is given"
        )
    if writes and catalog.read_only:
        raise CatalogError("the catalog is open read-only; cannot run " + ", ".join(writes))
    if writes:
        with catalog.transaction():
            return _run(catalog, statements, max_rows)
    return _run(catalog, statements, max_rows)


def _run(catalog: Catalog, statements: list[Any], max_rows: int) -> pl.DataFrame:
    conn = catalog._conn()
    try:
        for statement in statements[:-1]:
            conn.execute(statement.query).fetchall()
        last = statements[-1]
        relation = conn.sql(last.query)
        if relation is None:
            return pl.DataFrame()
        limited = relation.limit(max_rows + 1)
        try:
            frame = limited.pl()
        except duckdb.Error:
            raise
        except Exception as exc:
            # polars cannot hold every DuckDB type (INTERVAL, ...): show such results as text.
            log.info("sql: result shown as text (%s)", exc)
            frame = limited.project(
                ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in limited.columns)
            ).pl()
    except duckdb.Error as exc:
        raise CatalogError(one_line(exc)) from None
    if len(frame) > max_rows:
        log.info("sql: only the first %d rows are returned", max_rows)
        frame = frame.head(max_rows)
    return frame


def sql_literal(value: str) -> str:
    """A string as a SQL literal (for queries sent as text to the service)."""
    return "'" + value.replace("'", "''") + "'"


def runs_sql(trail: str | None = None) -> str:
    """The query behind ``mtbsync runs`` (optionally one trail's runs)."""
    where = f"WHERE trail = {sql_literal(trail)} " if trail else ""
    return (
        "SELECT run_id, run, trail, is_reference, ridden_at, round(duration_s, 1) AS duration_s, "
        "round(marker_span_s, 2) AS marker_span_s, markers, needs_review, hilights, aligned, "
        "round(coverage, 2) AS coverage, round(mean_confidence, 2) AS confidence "
        f"FROM run_summary {where}ORDER BY ridden_at DESC, run_id DESC"
    )


TRAILS_SQL = """
SELECT t.trail_id, t.name AS trail, ref.name AS reference_run, count(r.run_id) AS runs,
       max(coalesce(r.started_utc, r.created_at)) AS last_ridden
FROM trails t
LEFT JOIN runs ref ON ref.run_id = t.reference_run_id
LEFT JOIN runs r ON r.trail_id = t.trail_id
GROUP BY ALL
ORDER BY t.name
""".strip()


def list_runs(catalog: Catalog, trail: str | None = None) -> pl.DataFrame:
    """Every run (newest first) with its trail, markers, review count and alignment quality."""
    return run_sql(catalog, runs_sql(trail))


def list_trails(catalog: Catalog) -> pl.DataFrame:
    """Every trail with its reference run, number of runs and when it was last ridden."""
    return run_sql(catalog, TRAILS_SQL)


def prune(
    catalog: Catalog,
    *,
    keep: int | None = None,
    older_than: timedelta | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Drop old telemetry: stage timings, ingest events and finished jobs (one transaction).

    The rider's data (runs, trails, alignments, markers, exports) is never pruned.

    Args:
        catalog: The open catalog (writable).
        keep: Keep the newest ``keep`` timings of each stage of each run, the newest ``keep`` events
            of each file, and the newest ``keep`` finished jobs of each run and kind.
        older_than: Drop those rows older than this.
        now: The present (tests).

    Returns:
        Rows deleted per table.

    Raises:
        CatalogError: Neither or a negative limit given.
    """
    if keep is None and older_than is None:
        raise CatalogError("say what to prune: --keep N or --older-than DAYS")
    if keep is not None and keep < 0:
        raise CatalogError("--keep must be 0 or more")
    cutoff = (now or utcnow()) - older_than if older_than is not None else None
    deleted = {"stage_timings": 0, "ingest_events": 0, "jobs": 0}
    plans = {
        "stage_timings": ("timing_id", "started_at", "run_id, stage, label", ""),
        "ingest_events": ("event_id", "at_utc", "path", ""),
        "jobs": ("job_id", "finished_at", "run_id, kind", "state IN ('done', 'failed')"),
    }
    with catalog.transaction() as conn:
        for table, (key, stamp, group, only) in plans.items():
            condition = f"({only}) AND " if only else ""
            if keep is not None:
                rows = conn.execute(
                    f"""DELETE FROM {table} WHERE {condition}{key} IN (
                            SELECT {key} FROM (
                                SELECT {key}, row_number() OVER (
                                    PARTITION BY {group} ORDER BY {stamp} DESC, {key} DESC) AS k
                                FROM {table} {"WHERE " + only if only else ""}
                            ) WHERE k > ?) RETURNING {key}""",
                    [keep],
                ).fetchall()
                deleted[table] += len(rows)
            if cutoff is not None:
                rows = conn.execute(
                    f"DELETE FROM {table} WHERE {condition}{stamp} < ? RETURNING {key}", [cutoff]
                ).fetchall()
                deleted[table] += len(rows)
    log.info("prune: %s", deleted)
    return deleted


# The README's example questions; tests run each against a known catalog.
EXAMPLE_QUERIES: dict[str, str] = {
    "fastest_this_month": """
SELECT run, ridden_at, round(marker_span_s, 2) AS seconds
FROM run_summary
WHERE trail = 'Dummy Hill' AND ridden_at >= date_trunc('month', current_date)
ORDER BY marker_span_s
LIMIT 1""",
    "needs_review": """
SELECT run, trail, needs_review, aligned, align_reason
FROM run_summary
WHERE needs_review > 0 OR NOT aligned
ORDER BY ridden_at DESC""",
    "between_two_markers": """
SELECT a.run, round(b.t - a.t, 2) AS seconds
FROM markers_per_run a JOIN markers_per_run b USING (run_id)
WHERE a.marker = 'gap jump' AND b.marker = 'berm' AND b.t IS NOT NULL AND a.t IS NOT NULL
ORDER BY seconds""",
    "splits_vs_reference": """
SELECT run, from_marker, to_marker, round(split_s, 2) AS split_s, round(delta_s, 2) AS delta_s
FROM splits
WHERE trail = 'Dummy Hill' AND NOT is_reference
ORDER BY run_id, split_no""",
    "slowest_stages": """
SELECT stage, device, count(*) AS runs, round(avg(seconds), 2) AS avg_s, round(max(rss_mb)) AS max_rss_mb
FROM stage_timings
GROUP BY ALL
ORDER BY avg_s DESC""",
}

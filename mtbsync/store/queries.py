"""Questions asked of the catalog: riders' SQL (read-only unless asked), lists, retention.

`run_sql` is what ``mtbsync sql`` and the service's ``POST /api/sql`` both call: it refuses any
statement that is not a query unless ``write=True`` (by DuckDB's own statement type, not by pattern
matching on the text), refuses read-only queries that call a function which changes state
(``nextval``, ``checkpoint()``, ...), and turns every DuckDB error into one line.

Budgets: every query gets a time budget (``timeout_s``; a watchdog interrupts the DuckDB connection
when it is spent, or when the caller's ``cancel`` event is set, e.g. because an HTTP client left) and
a row budget (``max_rows``: DuckDB stops after ``max_rows + 1`` rows, nothing bigger is ever
materialised). Each read runs on a cursor of its own, registered with the catalog, so a service that
stops can interrupt every query still running (`Catalog.stop_queries`).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from mtbsync.errors import CatalogError, QueryStoppedError, QueryTimeoutError
from mtbsync.store.catalog import Catalog, RunningQuery, one_line, utcnow

log = logging.getLogger("mtbsync")

DEFAULT_MAX_ROWS = 10_000
DEFAULT_TIMEOUT_S = 10.0

# Statement types that only read. DESCRIBE / SHOW / SUMMARIZE / VALUES parse as SELECT.
_READ_TYPES = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})

# Functions a read-only query may not call although they parse inside a SELECT: they change state
# (a sequence moves on, the database is checkpointed, logging / profiling / the grammar change),
# run SQL given as text (where any of these could hide in a string), or scan a Python object by its
# address (a made-up address crashes the process). Scalar functions DuckDB itself marks as having
# side effects are refused too unless listed in `_HARMLESS_SIDE_EFFECTS`, so one added by a later
# DuckDB is refused until someone looks at it.
REFUSED_FUNCTIONS = frozenset(
    {
        "nextval",
        "setval",
        "write_log",
        "checkpoint",
        "force_checkpoint",
        "query",
        "query_table",
        "json_execute_serialized_sql",
        "enable_logging",
        "disable_logging",
        "truncate_duckdb_logs",
        "enable_profiling",
        "disable_profiling",
        "add_grammar_extension",
        "remove_grammar_extension",
        "register_external_resource",
        "register_external_resource_type",
        "create_external_resource",
        "deregister_external_resource",
        "destroy_external_resource",
        "arrow_scan",
        "arrow_scan_dumb",
        "python_arrow_scan",
        "pandas_scan",
        "python_map_function",
    }
)
# Side effects that stay inside the one query (or its own cursor, closed afterwards).
_HARMLESS_SIDE_EFFECTS = frozenset(
    {
        "random",
        "setseed",
        "uuid",
        "uuidv4",
        "uuidv7",
        "gen_random_uuid",
        "currval",
        "current_connection_id",
        "current_query",
        "current_query_id",
        "current_transaction_id",
        "error",
        "stats",
        "vector_type",
        "sleep_ms",
    }
)
# The last defence, on the raw text: a sequence call anywhere, even inside a string literal.
_SEQUENCE_CALL = re.compile(r"\b(nextval|setval)\s*\(", re.IGNORECASE)

# Why a query was stopped (`RunningQuery.reason`); the catalog's own reasons are sentences.
_TIMED_OUT = "its time budget ran out"
_CLIENT_GONE = "its client went away"
_POLL_S = 0.1  # how often the watchdog looks at a cancel event, and re-interrupts a stopped query


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


def _what_runs(catalog: Catalog, statement: Any) -> tuple[Any, str]:
    """The type and text of what a statement runs: EXPLAIN ANALYZE runs the statement it explains.

    A plain EXPLAIN runs nothing (its type stays EXPLAIN; the text is the explained statement's).

    Raises:
        CatalogError: The explained statement does not parse.
    """
    if statement.type != duckdb.StatementType.EXPLAIN:
        return statement.type, statement.query
    explained = _explained(statement.query)
    if explained is None:  # pragma: no cover - a form of EXPLAIN DuckDB parses but this does not know
        raise CatalogError("cannot tell what this EXPLAIN would run; EXPLAIN [ANALYZE] the query alone")
    inner, analyze = explained
    inner_statement = _parse(catalog, inner)[0]
    if analyze:
        return _what_runs(catalog, inner_statement)
    return statement.type, inner_statement.query


def _explained(text: str) -> tuple[str, bool] | None:
    """(the statement after ``EXPLAIN [ANALYZE | (options)]``, whether it is analysed, i.e. run).

    By DuckDB's own tokenizer, so comments anywhere and the option-list form are understood.
    """
    try:
        every = list(duckdb.tokenize(text))
    except (duckdb.Error, RuntimeError, TypeError):  # pragma: no cover - tokenize never fails on parsed text
        return None
    ends = [o for o, _ in every[1:]] + [len(text)]
    # Each token's text runs to the next token (a comment included); comments are then left out.
    tokens = [
        (o, text[o:end].strip().upper())
        for (o, t), end in zip(every, ends, strict=True)
        if "comment" not in str(t)
    ]
    words = [word for _, word in tokens]
    if not words or words[0] != "EXPLAIN" or len(words) < 2:
        return None
    analyze, k = False, 1
    if words[1] in ("ANALYZE", "ANALYSE"):
        analyze, k = True, 2
    elif words[1] == "(":
        close = words.index(")", 1) if ")" in words[1:] else len(words) - 1
        analyze = any(w.rstrip(",") in ("ANALYZE", "ANALYSE") for w in words[2:close])
        k = close + 1
    if k >= len(tokens):
        return None
    return text[tokens[k][0] :], analyze


def refused_calls(catalog: Catalog, sql: str) -> list[str]:
    """The functions in ``sql`` a read-only query may not call (see `REFUSED_FUNCTIONS`), sorted.

    Each statement's parse tree (DuckDB's ``json_serialize_sql``) is searched for function calls, so
    a quoted, schema-qualified or commented name is found and a column called ``nextval`` is not;
    where DuckDB cannot give the tree, the text is searched for ``name(``. As the last defence
    against SQL run from a string, ``nextval(`` and ``setval(`` are also looked for in the raw text,
    strings included (so a string literal holding ``nextval(`` is refused too).

    Raises:
        CatalogError: The text does not parse.
    """
    return _refused_calls(catalog, _parse(catalog, sql))


def _refused_calls(catalog: Catalog, statements: list[Any]) -> list[str]:
    conn = catalog._conn()
    refused = _refused_names(conn)
    found: set[str] = set()
    for statement in statements:
        _, text = _what_runs(catalog, statement)
        calls = _function_calls(conn, text)
        if calls is None:  # not a tree DuckDB serialises: fall back to the text
            calls = {m.group(1).lower() for m in _any_call(refused).finditer(statement.query)}
        found |= calls & refused
        found |= {m.group(1).lower() for m in _SEQUENCE_CALL.finditer(statement.query)}
    return sorted(found)


_side_effects: frozenset[str] | None = None


def _refused_names(conn: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """`REFUSED_FUNCTIONS` and the scalar functions DuckDB marks with side effects, less the harmless."""
    global _side_effects
    if _side_effects is None:
        try:
            rows = conn.execute(
                "SELECT DISTINCT function_name FROM duckdb_functions() WHERE has_side_effects"
            ).fetchall()
        except duckdb.Error:  # pragma: no cover - an older DuckDB without the column
            rows = []
        _side_effects = frozenset(str(name).lower() for (name,) in rows)
    return REFUSED_FUNCTIONS | (_side_effects - _HARMLESS_SIDE_EFFECTS)


@functools.cache
def _any_call(names: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(sorted(map(re.escape, names)))
    return re.compile(rf'(?<![\w$])"?({alternatives})"?\s*\(', re.IGNORECASE)


def _function_calls(conn: duckdb.DuckDBPyConnection, text: str) -> set[str] | None:
    """Every function name called in a SELECT statement (lower case), or None without a parse tree."""
    try:
        # fetchall: a result left half-read makes the connection refuse its next call.
        rows = conn.execute("SELECT json_serialize_sql(?)", [text]).fetchall()
        tree = json.loads(rows[0][0]) if rows else None
    except (duckdb.Error, TypeError, ValueError):
        return None
    if not isinstance(tree, dict) or tree.get("error"):
        return None
    names: set[str] = set()
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class") == "FUNCTION" and isinstance(node.get("function_name"), str):
                names.add(node["function_name"].lower())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def run_sql(
    catalog: Catalog,
    sql: str,
    *,
    write: bool = False,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    cancel: threading.Event | None = None,
) -> pl.DataFrame:
    """Run a rider's SQL against the catalog, within a time and a row budget.

    Several statements may be given (separated by ``;``); the result is the last one's. With
    ``write=True`` they run in one transaction, so a failing statement leaves nothing changed.

    Args:
        catalog: The open catalog.
        sql: One or more statements.
        write: Allow statements that change the catalog (INSERT, UPDATE, DELETE, CREATE, COPY, ...).
        max_rows: Return at most this many rows (DuckDB stops after one more, to tell).
        timeout_s: Seconds the statements may run together; then they are interrupted (None: no
            limit). A write interrupted this way is rolled back.
        cancel: Set from another thread to stop the query (e.g. its HTTP client went away).

    Returns:
        The last statement's rows (at most ``max_rows``); an empty frame for statements without rows.

    Raises:
        QueryTimeoutError: The time budget ran out (the query was interrupted).
        QueryStoppedError: ``cancel`` was set, or the catalog stopped its queries (`Catalog.stop_queries`).
        CatalogError: A write statement without ``write=True`` (naming the statement type), a call of
            a function that changes state without it, a write on a read-only catalog, or any SQL
            error, as one line.
    """
    if max_rows < 1:
        raise CatalogError("max_rows must be at least 1")
    if timeout_s is not None and not timeout_s > 0:
        raise CatalogError("the time budget must be more than 0 seconds")
    statements = _parse(catalog, sql)
    # By what runs: EXPLAIN ANALYZE DELETE deletes.
    runs = [_what_runs(catalog, s)[0] for s in statements]
    writes = sorted({_type_name(kind) for kind in runs if kind not in _READ_TYPES})
    if writes and not write:
        raise CatalogError(
            f"{', '.join(writes)} statements change the catalog; "
            "`mtbsync sql` only reads unless --write is given"
        )
    if writes and catalog.read_only:
        raise CatalogError("the catalog is open read-only; cannot run " + ", ".join(writes))
    if not write:
        refused = _refused_calls(catalog, statements)
        if refused:
            calls = ", ".join(f"{name}()" for name in refused)
            raise CatalogError(
                f"a read-only query cannot call {calls}: it changes the catalog's state or runs SQL "
                "given as text (`mtbsync sql --write` can)"
            )
    if writes:
        with catalog.transaction():
            return _run_within_budget(catalog, statements, max_rows, timeout_s, cancel, own_cursor=False)
    return _run_within_budget(catalog, statements, max_rows, timeout_s, cancel, own_cursor=True)


def _run_within_budget(
    catalog: Catalog,
    statements: list[Any],
    max_rows: int,
    timeout_s: float | None,
    cancel: threading.Event | None,
    *,
    own_cursor: bool,
) -> pl.DataFrame:
    # A write runs on this thread's connection (the transaction's); a read on a cursor of its own.
    with catalog.running_query(own_cursor=own_cursor) as query:
        watchdog = _Watchdog(query, timeout_s, cancel)
        try:
            return _run(query, statements, max_rows, timeout_s, only_bind_first=own_cursor)
        finally:
            watchdog.finish()


class _Watchdog:
    """Interrupts a query when its time is spent or ``cancel`` is set; keeps at it once stopped.

    An interrupt that lands between two statements is lost, so a stopped query is interrupted again
    every `_POLL_S` until it gives up; the runner also checks the reason before each statement.
    """

    def __init__(self, query: RunningQuery, timeout_s: float | None, cancel: threading.Event | None) -> None:
        self.query = query
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.cancel = cancel
        self._finished = False
        self._thread = threading.Thread(target=self._watch, name="mtbsync-sql-watchdog", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        query = self.query
        while not self._finished:
            wait: float | None
            if query.reason is not None:
                query.interrupt()
                wait = _POLL_S
            else:
                if self.cancel is not None and self.cancel.is_set():
                    query.stop(_CLIENT_GONE)
                    continue
                now = time.monotonic()
                if self.deadline is not None and now >= self.deadline:
                    query.stop(_TIMED_OUT)
                    continue
                wait = None if self.deadline is None else self.deadline - now
                if self.cancel is not None:
                    wait = _POLL_S if wait is None else min(wait, _POLL_S)
            query.changed.wait(wait)
            query.changed.clear()

    def finish(self) -> None:
        """The query is over: stop watching (and wait for the thread, so no late interrupt lands)."""
        self._finished = True
        self.query.changed.set()
        self._thread.join()


def _stopped(query: RunningQuery, timeout_s: float | None) -> CatalogError:
    """The error of a query that was stopped, by why."""
    if query.reason == _TIMED_OUT and timeout_s is not None:
        return QueryTimeoutError(
            f"the query ran past its {timeout_s:g} s time budget and was stopped; "
            "narrow it (WHERE, LIMIT) or give it more time",
            budget_s=timeout_s,
        )
    return QueryStoppedError(f"the query was stopped: {query.reason}")


def _run(
    query: RunningQuery,
    statements: list[Any],
    max_rows: int,
    timeout_s: float | None,
    *,
    only_bind_first: bool,
) -> pl.DataFrame:
    """The last statement's rows (at most ``max_rows + 1`` computed) after running the others.

    ``only_bind_first``: a read's statements before the last are only bound (checked), never run: they
    cannot change anything, and their rows (unbounded) would be thrown away. A write's run in full.
    """
    conn = query.cursor
    try:
        for statement in statements[:-1]:
            if query.reason is not None:
                raise _stopped(query, timeout_s)
            if only_bind_first:
                conn.sql(statement.query)  # EXPLAIN still runs here (as `sql` returns), within the budget
            else:
                conn.execute(statement.query).fetchall()
        if query.reason is not None:
            raise _stopped(query, timeout_s)
        relation = conn.sql(statements[-1].query)
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
        if query.reason is not None:
            raise _stopped(query, timeout_s) from None
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

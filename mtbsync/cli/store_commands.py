"""Catalog commands: sql, runs, trails, trail create / set-reference / assign, prune.

Reads go to a running `mtbsync serve` when one owns the catalog (its read-only SQL endpoint), else
to the file opened read-only; writes need the file itself (see `mtbsync.store.service_file`).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mtbsync.cli._common import (
    KEEP,
    PRUNE_DAYS,
    QUERY_SECONDS,
    ROWS,
    DbOption,
    FastOpt,
    ForceOpt,
    app,
    build_config,
    console,
    err_console,
    results_shown,
    user_errors,
)
from mtbsync.errors import CatalogError

FORMATS = ("table", "csv", "json", "parquet")

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, csv, json or parquet.")]
OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write to this file instead of the terminal.")
]

trail_app = typer.Typer(
    help="Trails: create one, choose its reference run, put runs on it.", no_args_is_help=True
)
app.add_typer(trail_app, name="trail")


def _db_path(db: Path | None) -> Path:
    from mtbsync.library.runs import catalog_disabled
    from mtbsync.store.catalog import default_db_path

    if catalog_disabled(db):
        raise CatalogError("the catalog is switched off (--db none / MTBSYNC_DB=none)")
    return Path(db).expanduser() if db is not None else default_db_path()


def _read(db: Path | None, sql: str, max_rows: int, timeout_s: float | None = None) -> Any:
    """Rows of a read-only query: through a running service, else from the file opened read-only.

    ``timeout_s``: the query's time budget (None: the default; a service never grants more than its own).
    """
    from mtbsync.store.catalog import Catalog
    from mtbsync.store.queries import DEFAULT_TIMEOUT_S, run_sql
    from mtbsync.store.service_file import query_service, read_live_service

    path = _db_path(db)
    service = read_live_service(path)
    if service is not None:
        return query_service(service, sql, max_rows=max_rows, query_timeout_s=timeout_s)
    with Catalog.open(path, read_only=True) as catalog:
        budget = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        return run_sql(catalog, sql, max_rows=max_rows, timeout_s=budget)


def _open_for_write(db: Path | None) -> Any:
    from mtbsync.store.catalog import Catalog
    from mtbsync.store.service_file import read_live_service

    path = _db_path(db)
    service = read_live_service(path)
    if service is not None:
        raise CatalogError(
            f"the mtbsync service at {service.url} (pid {service.pid}) owns the catalog; stop it to change "
            "the catalog from the command line, or use its API",
            path=path,
        )
    return Catalog.open(path)


def _rows(n: int) -> str:
    return "1 row" if n == 1 else f"{n} rows"


def _cell(value: Any, decimals: int | None = None) -> str:
    if value is None:
        return "[dim]-[/]"
    if isinstance(value, float):
        return f"{value:.{decimals}f}" if decimals is not None else f"{value:.6g}"
    if isinstance(value, datetime):  # microseconds are noise on a terminal (CSV/JSON keep them)
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def frame_table(frame: Any, title: str | None = None, *, decimals: int | None = None) -> Table:
    """A polars DataFrame as a Rich table.

    Args:
        frame: The rows.
        title: The table's title.
        decimals: Every float with this many decimals (a column reads ``2.00`` above ``1.55``);
            None: up to 6 significant digits, as each value needs.
    """
    table = Table(title=title, title_justify="left", show_edge=False)
    for name, dtype in frame.schema.items():
        table.add_column(name, justify="right" if dtype.is_numeric() else "left", overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*(_cell(v, decimals) for v in row))
    return table


def _flat(frame: Any) -> Any:
    """Lists and structs as JSON text, so that CSV can hold them."""
    import polars as pl

    from mtbsync.store.service_file import jsonable

    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    return frame.with_columns(
        pl.Series(
            name, [None if v is None else json.dumps(jsonable(v)) for v in frame[name].to_list()], pl.String
        )
        for name in nested
    )


def _spreadsheet_safe(frame: Any, fmt: str) -> Any:
    """For ``--format csv``: text cells (run, trail and file names) never start like a spreadsheet
    formula (`mtbsync.io.csvfile.spreadsheet_text`); other formats unchanged."""
    if fmt.lower() != "csv":
        return frame
    import polars as pl

    from mtbsync.io.csvfile import spreadsheet_text

    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(
        pl.col(name).map_elements(spreadsheet_text, return_dtype=pl.String) for name in text
    )


def _emit(frame: Any, fmt: str, out: Path | None, title: str | None = None) -> None:
    from mtbsync.io.files import atomic_write_bytes, atomic_write_text

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise CatalogError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")
    if fmt == "parquet":
        if out is None:
            raise CatalogError("--format parquet needs --out FILE")
        atomic_write_bytes(out, lambda fh: frame.write_parquet(fh))
        console.print(f"Wrote {_rows(len(frame))} -> {out}", highlight=False)
        return
    if fmt == "table":
        if out is not None:
            raise CatalogError("--out needs --format csv, json or parquet")
        console.print(frame_table(frame, title))
        console.print(f"[dim]{_rows(len(frame))}[/]", highlight=False)
        return
    from mtbsync.store.service_file import frame_to_rows

    if fmt == "json":
        plain = frame_to_rows(frame)  # NaN -> null, times as ISO text, decimals as numbers
        text = (
            json.dumps([dict(zip(plain["columns"], row, strict=True)) for row in plain["rows"]], indent=1)
            + "\n"
        )
    else:
        text = _flat(frame).write_csv()
    if out is not None:
        atomic_write_text(out, text)
        console.print(f"Wrote {_rows(len(frame))} -> {out}", highlight=False)
    else:
        typer.echo(text, nl=False)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(metavar="SQL", help='Query, e.g. "SELECT * FROM run_summary".')],
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    write: Annotated[bool, typer.Option("--write", help="Allow statements that change the catalog.")] = False,
    max_rows: Annotated[
        int, typer.Option("--max-rows", parser=ROWS, metavar="INTEGER", help="Most rows to return.")
    ] = 10_000,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            parser=QUERY_SECONDS,
            metavar="SECONDS",
            help="Seconds the query may run before it is stopped (reads: 10; --write: no limit).",
        ),
    ] = None,
    db: DbOption = None,
    force: ForceOpt = False,
) -> None:
    """Ask the catalog anything in SQL (tables: runs, trails, markers, alignments, stage_timings, ...)."""
    from mtbsync.io.files import OutputPlan
    from mtbsync.store.queries import run_sql

    with user_errors(), OutputPlan([db], force=force) as plan:
        if out is not None:
            plan.add(out, f"table-{fmt.lower()}")
        if write:
            with _open_for_write(db) as catalog:
                frame = run_sql(catalog, query, write=True, max_rows=max_rows, timeout_s=timeout)
        else:
            frame = _read(db, query, max_rows, timeout)
        _emit(_spreadsheet_safe(frame, fmt), fmt, out)


@app.command()
def runs(
    trail: Annotated[str | None, typer.Option("--trail", "-t", help="Only this trail's runs.")] = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
    db: DbOption = None,
    force: ForceOpt = False,
) -> None:
    """List the runs in the catalog, newest first."""
    from mtbsync.io.files import OutputPlan
    from mtbsync.store.queries import runs_sql

    with user_errors(), OutputPlan([db], force=force) as plan:
        if out is not None:
            plan.add(out, f"table-{fmt.lower()}")
        frame = _read(db, runs_sql(trail), 10_000)
        if fmt.lower() == "table" and out is None and len(frame):
            # The raw view is for CSV/JSON; on the terminal a run reads as a rider says it.
            console.print(runs_table(frame))
            console.print(f"[dim]{len(frame)} runs[/]", highlight=False)
            return
        _emit(_spreadsheet_safe(frame, fmt), fmt, out, "Runs")


def runs_table(frame: Any) -> Table:
    """The runs view as a concise table: minutes, m:ss lengths, the reference starred."""
    from mtbsync.cli._common import duration_text

    table = Table(title="Runs", title_justify="left", show_edge=False)
    for column in ("#", "run", "trail", "ridden", "length", "markers", "aligned"):
        table.add_column(
            column,
            justify="right" if column in ("#", "length") else "left",
            no_wrap=column in ("#", "ridden", "length"),
        )
    for row in frame.iter_rows(named=True):
        ridden = row.get("ridden_at")
        ridden_text = ridden.strftime("%Y-%m-%d %H:%M") if hasattr(ridden, "strftime") else str(ridden or "")
        trail = row.get("trail") or "[dim]-[/]"
        if row.get("is_reference"):
            trail += " [bold]*[/]"
        markers = str(row.get("markers") or 0)
        if row.get("needs_review"):
            markers += f" [yellow]({row['needs_review']} to review)[/]"
        if row.get("hilights"):
            markers += f" [dim]+{row['hilights']} HiLights[/]"
        aligned, coverage = row.get("aligned"), row.get("coverage")
        if aligned is None:
            aligned_text = "[dim]-[/]"
        elif aligned:
            aligned_text = "[green]yes[/]" + (f" {coverage:.0%}" if coverage is not None else "")
        else:
            aligned_text = "[red]no[/]"
        table.add_row(
            str(row["run_id"]),
            str(row["run"]),
            trail,
            ridden_text,
            duration_text(row.get("duration_s")),
            markers,
            aligned_text,
        )
    table.caption = "* the trail's reference run; --format csv/json for every column"
    table.caption_justify = "left"
    return table


@app.command()
def trails(
    fmt: FormatOpt = "table", out: OutOpt = None, db: DbOption = None, force: ForceOpt = False
) -> None:
    """List the trails with their reference run and number of runs."""
    from mtbsync.io.files import OutputPlan
    from mtbsync.store.queries import TRAILS_SQL

    with user_errors(), OutputPlan([db], force=force) as plan:
        if out is not None:
            plan.add(out, f"table-{fmt.lower()}")
        _emit(_spreadsheet_safe(_read(db, TRAILS_SQL, 10_000), fmt), fmt, out, "Trails")


@app.command()
def prune(
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep", parser=KEEP, metavar="N", help="Keep the newest N timings of each stage of each run."
        ),
    ] = None,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than", parser=PRUNE_DAYS, metavar="DAYS", help="Drop telemetry older than DAYS."
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Drop old telemetry (stage timings, ingest events, finished jobs); runs and markers stay."""
    from mtbsync.store.queries import prune as run_prune

    with user_errors():
        age = timedelta(days=older_than) if older_than is not None else None
        if keep is None and age is None:
            raise CatalogError("say what to prune: --keep N or --older-than DAYS")
        with _open_for_write(db) as catalog:
            deleted = run_prune(catalog, keep=keep, older_than=age)
    console.print("Pruned " + ", ".join(f"{n} {table}" for table, n in deleted.items()), highlight=False)


@trail_app.command("create")
def trail_create(
    name: Annotated[str, typer.Argument(help="Trail name.")],
    reference: Annotated[
        str | None, typer.Option("--reference", "-r", help="Reference run (name or id).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Create a trail, optionally with its reference run."""
    from mtbsync.library.runs import resolve_run

    with user_errors(), _open_for_write(db) as catalog:
        ref = resolve_run(catalog, reference) if reference else None
        existing = catalog.trail_id(name.strip())
        if existing is not None:
            # create_trail returns an existing trail unchanged: never claim a reference it did not set.
            current = catalog.trail(existing)["reference_run_id"]
            if ref is not None and ref != current:
                raise CatalogError(
                    f"trail {name!r} already exists (#{existing}); change its reference with "
                    f"`mtbsync trail set-reference {name!r} {reference}`"
                )
            console.print(f"Trail #{existing} {name} already exists", highlight=False)
            return
        trail_id = catalog.create_trail(name, reference_run_id=ref)
    console.print(f"Trail #{trail_id} {name}" + (f" (reference run #{ref})" if ref else ""), highlight=False)


@trail_app.command("set-reference")
def trail_set_reference(
    trail: Annotated[str, typer.Argument(help="Trail name or id.")],
    run: Annotated[str, typer.Argument(help="Run name or id.")],
    realign: Annotated[
        bool, typer.Option("--realign/--no-realign", help="Re-align the trail's other runs to it.")
    ] = True,
    fast: FastOpt = False,
    db: DbOption = None,
) -> None:
    """Make a run the trail's reference; the other runs are re-aligned (hand-moved markers stay)."""
    from mtbsync.library.runs import set_reference

    with user_errors(), _open_for_write(db) as catalog:
        config = build_config("default", fast, 0, "auto")
        with results_shown():  # a run not re-aligned is printed below with its reason
            done = set_reference(catalog, trail, run, config=config, realign=realign)
    for item in done:
        verdict = "[green]aligned[/]" if item.ok else f"[red]not aligned[/]: {item.reason}"
        console.print(f"run #{item.run_id}: {verdict}")
    aligned = sum(item.ok for item in done)
    console.print(
        f"Reference of {trail} is now {run} ({aligned} of {len(done)} other runs aligned to it)",
        highlight=False,
    )


@trail_app.command("assign")
def trail_assign(
    run: Annotated[str, typer.Argument(help="Run name or id.")],
    trail: Annotated[
        str | None, typer.Option("--trail", "-t", help="Trail (default: find it by GPS, then by vision).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Put a run on a trail: the one given, or the one whose reference run it matches."""
    from mtbsync.library.runs import assign_run

    with user_errors(), _open_for_write(db) as catalog:
        result = assign_run(catalog, run, trail)
        name = catalog.trail(result.trail_id)["name"] if result.trail_id is not None else None
    if name is None:
        err_console.print(f"[yellow]run {run} matches no trail's reference[/]")
        raise typer.Exit(3)
    console.print(f"Run {run} -> trail {name} ({result.method}, score {result.score:.2f})", highlight=False)


def record_results(db: Path | None, what: str, record: Any) -> None:
    """Record a command's results in the catalog; on failure say in one yellow line what was not recorded.

    The command's files are already written: a catalog that is locked (a running service), unwritable
    or broken never fails the command.
    """
    import os

    from mtbsync.library.runs import record_to_catalog

    try:
        _, note = record_to_catalog(db, what, record)
    except Exception as exc:  # the files are the result; the record must not fail the command
        if os.environ.get("MTBSYNC_DEBUG"):
            raise
        note = f"{what} was not recorded in the catalog: {type(exc).__name__}: {exc}"
    if note:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)

"""Commands that bring card dumps into the catalog: ingest (one shot) and watch (continuous)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mtbsync.cli._common import (
    GIVE_UP_SECONDS,
    WAIT_SECONDS,
    DbOption,
    SettleOpt,
    app,
    console,
    duration_text,
    err_console,
    progress_bars,
    user_errors,
)
from mtbsync.errors import CardError, ConfigError

FolderArg = Annotated[Path, typer.Argument(help="Card or dump folder (searched recursively for DCIM media).")]

_STATUS_STYLE = {
    "new": "[green]new[/]",
    "known": "[dim]known[/]",
    "duplicate": "[dim]duplicate[/]",
    "quarantined": "[red]quarantined[/]",
    "incomplete": "[yellow]incomplete[/]",
}


def _catalog_path(db: Path | None) -> Path | None:
    if db is not None and str(db).lower() == "none":
        raise ConfigError("ingest records into the catalog: give a database file with --db, not 'none'")
    return db


# Statuses whose duration, GPS and HiLights are known (read now, or from the catalog).
_RECORDED = ("new", "known")


def _gps_cell(outcome) -> str:
    if outcome.status not in _RECORDED:
        return ""
    if outcome.gps:
        return f"[green]yes[/] ({outcome.gps_source.split(':')[-1] if outcome.gps_source else '?'})"
    return "no fix" if outcome.gps_source else "no"


def _note(outcome) -> str:
    text = outcome.reason or (outcome.notes[0] if outcome.notes else "")
    return text if len(text) <= 70 else text[:67] + "..."


def outcomes_table(outcomes, title: str = "Recordings") -> Table:
    """The per-recording summary: status, chapters, duration, GPS, HiLights, the first note."""
    table = Table(title=title, title_justify="left", show_edge=False)
    for column in ("recording", "status", "chapters", "duration", "GPS", "HiLights", "run", "note"):
        table.add_column(
            column, justify="right" if column in ("chapters", "duration", "HiLights", "run") else "left"
        )
    for o in outcomes:
        table.add_row(
            o.name,
            _STATUS_STYLE.get(o.status, o.status),
            str(o.chapters),
            duration_text(o.duration_s),
            _gps_cell(o),
            str(o.hilights) if o.status in _RECORDED else "",
            f"#{o.run_id}" if o.run_id is not None else "",
            _note(o),
            style="dim" if o.status in ("known", "duplicate") else None,
        )
    return table


@app.command()
def ingest(
    folder: FolderArg,
    db: DbOption = None,
    settle: SettleOpt = 2.0,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            parser=WAIT_SECONDS,
            metavar="SECONDS",
            help="Longest time to wait for files changed in the last --settle seconds (a card just "
            "copied) before ingesting; 0: skip them.",
        ),
    ] = 60.0,
) -> None:
    """Ingest a card dump into the catalog (chapters joined, GPS and HiLights read; never modifies media)."""
    from mtbsync.library.ingest import ingest_directory
    from mtbsync.store.catalog import Catalog

    waited = False

    def waiting(files: list[Path], seconds: float) -> None:
        nonlocal waited
        waited = True
        err_console.print(
            f"[yellow]note:[/] {len(files)} file(s) changed in the last {settle:g} s (a copy just "
            f"finished?): waiting {seconds:.1f} s for them to settle (at most --wait {wait:g} s)",
            highlight=False,
            soft_wrap=True,
        )

    with user_errors(), Catalog.open(_catalog_path(db)) as catalog:
        with progress_bars() as progress:
            report = ingest_directory(
                folder, catalog, progress=progress, settle_s=settle, wait_s=wait, on_wait=waiting
            )
        db_path = catalog.path
    if not report.outcomes:
        console.print(f"No GoPro or MP4 recordings found in {folder}.")
        return
    console.print(outcomes_table(report.outcomes))
    with_gps = sum(1 for o in report.new if o.gps)
    hilights = sum(o.hilights for o in report.new)
    console.print(
        f"{len(report.new)} new ({with_gps} with GPS, {hilights} HiLights), {len(report.known)} known, "
        f"{len(report.quarantined)} quarantined, {len(report.incomplete)} still being written -> {db_path}"
    )
    if report.incomplete:
        still = f"changed in the last {settle:g} s"
        if waited:
            still = f"kept changing while mtbsync waited (--wait {wait:g} s)"
        err_console.print(
            f"[yellow]note:[/] {len(report.incomplete)} recording(s) {still} and may still be copying: "
            "run `mtbsync ingest` again when the copy is done (or use `mtbsync watch`)",
            highlight=False,
            soft_wrap=True,
        )
    for orphan in report.orphans:
        err_console.print(f"[yellow]note:[/] {orphan} has no video beside it; ignored", highlight=False)


@app.command()
def watch(
    folder: FolderArg,
    db: DbOption = None,
    settle: SettleOpt = 2.0,
    give_up: Annotated[
        float,
        typer.Option(
            "--give-up",
            parser=GIVE_UP_SECONDS,
            metavar="SECONDS",
            help="Seconds an unchanged, unreadable MP4 waits before quarantine.",
        ),
    ] = 30.0,
    poll: Annotated[
        bool, typer.Option("--poll", help="Poll the folder instead of OS notifications (network shares).")
    ] = False,
) -> None:
    """Watch a folder and ingest each recording once its files are completely written (Ctrl-C stops)."""
    from mtbsync.library.ingest import watch_and_ingest
    from mtbsync.store.catalog import Catalog

    stop = threading.Event()

    def show(outcome) -> None:
        # One line per recording: a table with its header for each would bury the stream.
        parts = [_STATUS_STYLE.get(outcome.status, outcome.status)]
        if outcome.run_id is not None:
            parts.append(f"run #{outcome.run_id}")
        if outcome.status == "new":
            parts += [
                f"{outcome.chapters} chapter{'s' if outcome.chapters != 1 else ''}",
                duration_text(outcome.duration_s),
                f"GPS {_gps_cell(outcome)}",
                f"{outcome.hilights} HiLights",
            ]
        note = _note(outcome)
        console.print(
            f"{outcome.name}: " + ", ".join(p for p in parts if p) + (f" [dim]({note})[/]" if note else "")
        )

    # watchfiles logs its own "KeyboardInterrupt caught" warning on Ctrl-C; "stopped" says it once.
    logging.getLogger("watchfiles").setLevel(logging.ERROR)
    with user_errors():
        # Check the folder before creating a catalog or saying "Watching".
        if not folder.exists():
            raise CardError("folder not found", path=folder)
        if not folder.is_dir():
            raise CardError("is not a folder (give the folder card dumps are copied into)", path=folder)
    with user_errors(), Catalog.open(_catalog_path(db)) as catalog:
        console.print(f"Watching {folder} -> {catalog.path} (Ctrl-C to stop)")
        try:
            watch_and_ingest(
                folder,
                catalog,
                stop,
                on_outcome=show,
                settle_s=settle,
                give_up_s=give_up,
                force_polling=True if poll else None,
            )
        except KeyboardInterrupt:
            stop.set()
    console.print("stopped")

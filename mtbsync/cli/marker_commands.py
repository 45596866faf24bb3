"""Marker commands: ``markers list RUN`` and ``markers import RUN FILE.csv``.

``list`` reads like ``mtbsync runs`` (through a running service, else the file opened read-only);
``import`` writes the catalog itself, so it is refused while ``mtbsync serve`` owns it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mtbsync.cli._common import DbOption, app, clock_text, console, user_errors
from mtbsync.cli.store_commands import _db_path, _open_for_write, _read
from mtbsync.errors import CatalogError

markers_app = typer.Typer(
    help="A run's markers: list them, give a trail's reference its markers.", no_args_is_help=True
)
app.add_typer(markers_app, name="markers")

# Most markers `markers list` shows (far more than a run has; the service is asked page by page).
MAX_LISTED = 100_000

RunArg = Annotated[str, typer.Argument(help="Run name or id (see `mtbsync runs`).")]


def _resolve(db: Path | None, run: str) -> tuple[int, str]:
    """(run id, name) of ``run`` by id or name, read like the other listing commands."""
    from mtbsync.store.queries import sql_literal

    name = run.strip()
    if name.isdigit():
        found = _read(db, f"SELECT run_id, name FROM runs WHERE run_id = {int(name)}", 1)
        if len(found):
            return int(found["run_id"][0]), str(found["name"][0])
    same = _read(
        db, f"SELECT run_id, name FROM runs WHERE name = {sql_literal(name)} ORDER BY run_id DESC", 6
    )
    if len(same) > 1:
        ids = ", ".join(f"#{i}" for i in same["run_id"].to_list()[:5]) + (", ..." if len(same) > 5 else "")
        raise CatalogError(
            f"several runs are called {name!r} ({ids}); give the run's number instead (see `mtbsync runs`)",
            path=_db_path(db),
        )
    if not len(same):
        raise CatalogError(f"no run {run!r} in the catalog (see `mtbsync runs`)", path=_db_path(db))
    return int(same["run_id"][0]), str(same["name"][0])


def markers_list_table(frame: Any, title: str) -> Table:
    """A run's markers as a Rich table, times as m:ss.fff."""
    table = Table(title=title, title_justify="left", show_edge=False)
    for column in ("id", "name", "source", "t", "t_ref", "confidence", "review"):
        table.add_column(column, justify="right" if column in {"id", "t", "t_ref", "confidence"} else "left")
    for r in frame.iter_rows(named=True):
        t = "-" if r["t"] is None else clock_text(float(r["t"]))
        t_ref = "" if r["t_ref"] is None else clock_text(float(r["t_ref"]))
        if r["moved_by_user"]:
            review = "[green]moved by hand[/]"
        elif r["review_state"] != "pending":
            review = str(r["review_state"])
        elif r["t"] is None:
            review = "[dim]not placed[/]"
        else:
            review = "[yellow]review[/]" if r["needs_review"] else ""
        confidence = "" if r["confidence"] is None else f"{float(r['confidence']):.2f}"
        table.add_row(str(r["marker_id"]), escape(str(r["name"])), r["source"], t, t_ref, confidence, review)
    return table


@markers_app.command("list")
def markers_list(run: RunArg, db: DbOption = None) -> None:
    """List a run's markers (its own, transferred and camera HiLights) with their times."""
    with user_errors():
        run_id, name = _resolve(db, run)
        # Every marker (a run may have more than the service returns in one answer: the read pages
        # through them), in a total order so that pages neither skip nor repeat a marker.
        frame = _read(
            db,
            "SELECT marker_id, name, source, t, t_ref, confidence, needs_review, moved_by_user, review_state "
            f"FROM markers WHERE run_id = {run_id} ORDER BY t NULLS LAST, source, ordinal, marker_id",
            MAX_LISTED,
        )
    if not len(frame):
        console.print(f"Run #{run_id} {escape(name)} has no markers", highlight=False)
        return
    console.print(markers_list_table(frame, f"Markers of run #{run_id} {escape(name)}"))


@markers_app.command("import")
def markers_import(
    run: RunArg,
    file: Annotated[Path, typer.Argument(help="Reference markers CSV: name,t_ref[,colour][,comment].")],
    db: DbOption = None,
) -> None:
    """Give a run its markers from a CSV; a trail's reference carries them onto the trail's aligned runs.

    The run's own (manual) markers are replaced; markers moved by hand on the other runs stay.
    """
    from mtbsync.library.runs import set_run_markers
    from mtbsync.markers import read_reference_markers

    with user_errors():
        markers = read_reference_markers(file)
        with _open_for_write(db) as catalog:
            update = set_run_markers(catalog, run, markers)
            trail = catalog.trail(update.trail_id) if update.trail_id is not None else None
    head = f"Run #{update.run_id}: {update.markers} markers from {escape(file.name)}"
    if trail is None:
        console.print(f"{head} (it is no trail's reference: nothing to carry over)", highlight=False)
        return
    rest = f", {len(update.not_aligned)} not aligned to it" if update.not_aligned else ""
    console.print(
        f"{head}; carried onto {len(update.transferred)} runs of trail {escape(str(trail['name']))}{rest}",
        highlight=False,
    )

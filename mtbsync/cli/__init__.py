"""The mtbsync command line: parse options, call the library, render the result.

Exit codes: 0 aligned / done, 1 user error (one red line), 3 ran but the runs are not aligned.
Set MTBSYNC_DEBUG=1 to see tracebacks. Each module here registers its commands on the one Typer app.
"""

from __future__ import annotations

import sys

from mtbsync.cli import (
    align_commands,
    export_commands,
    ingest_commands,
    marker_commands,
    sample_commands,
    serve_commands,
    store_commands,
)
from mtbsync.cli._common import EXIT_NOT_ALIGNED, EXIT_OK, EXIT_USER_ERROR, app, err_console

__all__ = ["EXIT_NOT_ALIGNED", "EXIT_OK", "EXIT_USER_ERROR", "app", "main"]

# The command modules register themselves on `app` when imported.
_COMMANDS = (
    align_commands,
    export_commands,
    ingest_commands,
    marker_commands,
    sample_commands,
    serve_commands,
    store_commands,
)


# `mtbsync --help` in the order a rider works: card -> trails -> align -> review; aliases last.
_PANELS = (
    ("Cards and catalog", ("ingest", "watch", "runs", "trails", "trail", "markers", "sql", "prune")),
    ("Align and export", ("index", "sync", "transfer", "export", "plot", "warp")),
    ("Review", ("preview", "serve")),
    ("Samples", ("sample", "demo")),
    ("Kept for earlier versions", ("transfer-markers", "export-markers")),
)


def _order_help() -> None:
    rank = {name: (p, i) for p, (_, names) in enumerate(_PANELS) for i, name in enumerate(names)}
    panel = {name: title for title, names in _PANELS for name in names}

    def name_of(info) -> str:
        return info.name or info.callback.__name__.replace("_", "-")

    app.registered_commands.sort(key=lambda c: rank.get(name_of(c), (len(_PANELS), 0)))
    for info in (*app.registered_commands, *app.registered_groups):
        info.rich_help_panel = panel.get(name_of(info), info.rich_help_panel)


_order_help()


def main() -> None:
    """Console entry point."""
    message = "[red]interrupted[/] (files are written whole or not at all: run the command again)"
    try:
        app()
    except KeyboardInterrupt:  # outside a command, e.g. while starting up
        err_console.print(message)
        sys.exit(130)
    except SystemExit as exc:
        # Typer turns Ctrl-C inside a command into a silent exit 130: say it once.
        if exc.code == 130:
            err_console.print(message)
        raise

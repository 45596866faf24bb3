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
    sample_commands,
    serve_commands,
    store_commands,
)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        sys.exit(130)

"""The mtbsync error tree.

The library raises these (never prints or exits); the CLI turns each into one red line and an exit code.
Every error carries the context a rider needs to act on it (the file, the line, the offset).
"""

from __future__ import annotations

from pathlib import Path

# ``log.warning(..., extra=IN_RESULT)``: the warning is also in what the call returns (a decode
# report's warnings, an alignment's GPS notes, a re-alignment's reason). A front end that shows the
# result hides such records while it runs the call (`mtbsync.cli._common.results_shown`), so the
# rider reads each warning once; everywhere else (the service, a script) they are logged as usual.
IN_RESULT = {"mtbsync_in_result": True}


class MtbsyncError(Exception):
    """Base class of every error mtbsync raises on purpose.

    Args:
        message: A one-line explanation a rider or editor can act on.
        path: The file the problem is about, if any.
        line: 1-based line number in ``path``, if the problem is in a text file.
    """

    exit_code = 1

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}"
            if self.line is not None:
                where += f", line {self.line}"
            where += ": "
        return f"{where}{self.message}"


class MediaError(MtbsyncError):
    """A video file is missing, unreadable, has no video stream or no frames."""


class IndexFileError(MtbsyncError):
    """A feature index file is unreadable, of another schema version, or built for another video."""


class MarkerFileError(MtbsyncError):
    """A markers CSV is malformed (the message names the line)."""


class PairsFileError(MtbsyncError):
    """A pairs CSV is malformed."""


class WarpFileError(MtbsyncError):
    """A warp file is unreadable or of another schema version."""


class DeviceError(MtbsyncError):
    """The requested compute device is not available."""


class ConfigError(MtbsyncError):
    """An option value is out of range or inconsistent."""


class ExportError(MtbsyncError):
    """Markers cannot be exported as asked (a bad frame rate, timecode or reel, nothing to export)."""


class OutputError(MtbsyncError):
    """An output file cannot be written (a folder in its place, no permission, the disk full)."""


class TrackFileError(MtbsyncError):
    """A GPX or FIT track file is unreadable, malformed or holds no timed positions."""


class CatalogError(MtbsyncError):
    """The catalog database cannot be opened, is of a newer schema, or a query failed (one line)."""


class CatalogLockedError(CatalogError):
    """Another process (usually `mtbsync serve`) holds the catalog's write lock."""


class NotFoundError(MtbsyncError):
    """A run, marker, media file or export the request names does not exist (the API answers 404)."""


class ConflictError(MtbsyncError):
    """The request conflicts with the current state, e.g. editing the reference run's own markers (409)."""


class CardError(MtbsyncError):
    """A card dump folder is missing, not a folder or cannot be read."""


class TelemetryError(MtbsyncError):
    """Embedded GoPro telemetry (GPMF) or its MP4 index is malformed or truncated."""


class QueryTimeoutError(CatalogError):
    """A query ran past its time budget and was stopped (the API answers 408).

    Args:
        message: What happened and what to do.
        budget_s: The budget it ran out of, in seconds.
    """

    def __init__(self, message: str, *, budget_s: float) -> None:
        self.budget_s = budget_s
        super().__init__(message)


class QueryStoppedError(CatalogError):
    """A query was stopped before it finished: its client went away, or the service is stopping (503)."""

"""The mtbsync error tree.

The library raises these (never prints or exits); the CLI turns each into one red line and an exit code.
Every error carries the context a rider needs to act on it (the file, the line, the offset).
"""

from __future__ import annotations

from pathlib import Path


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

"""Atomic file writes: a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from mtbsync.errors import OutputError

# What mtbsync reads but never replaces: the rider's media, track files and catalogs. An `--out` that
# names one of them is a slip of the shell (tab completion), and the file would be lost.
PROTECTED_SUFFIXES = frozenset(
    {
        ".mp4",
        ".mov",
        ".m4v",
        ".lrv",
        ".thm",
        ".360",
        ".insv",
        ".mkv",
        ".avi",
        ".mts",
        ".gpx",
        ".fit",
        ".duckdb",
    }
)


def atomic_write_bytes(path: Path, writer: Any, *, replace_media: bool = False) -> None:
    """Write a file atomically: ``writer(fh)`` fills a temp file in the same folder, then rename.

    A crash leaves either the old file or the new one, never half of one.

    Args:
        path: The file to write.
        writer: Called with the open temp file.
        replace_media: Allow replacing an existing video, track or catalog file (sample generators only).

    Raises:
        OutputError: The file cannot be written there (a folder in its place, no permission, disk full),
            or it would replace an existing video, track or catalog file.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError("is a folder; give a file name to write", path=path)
    if not replace_media and path.suffix.lower() in PROTECTED_SUFFIXES and path.exists():
        raise OutputError(
            "is a video, track or catalog file; mtbsync never overwrites those (choose another --out)",
            path=path,
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except (FileExistsError, NotADirectoryError):
        raise OutputError("cannot create its folder: a file is in the way", path=path) from None
    except OSError as exc:
        raise OutputError(f"cannot write here ({exc.strerror or exc})", path=path) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise OutputError(f"cannot write the file ({exc.strerror or exc})", path=path) from None
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_text(
    path: str | Path, text: str, encoding: str = "utf-8", *, replace_media: bool = False
) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path (see `atomic_write_bytes`)."""
    path = Path(path)
    data = text.encode(encoding)
    atomic_write_bytes(path, lambda fh: fh.write(data), replace_media=replace_media)
    return path


def refuse_overwriting_inputs(out: str | Path, *inputs: str | Path | None) -> None:
    """Stop before a command's output replaces one of its own input files.

    Raises:
        OutputError: ``out`` is the same file as one of ``inputs``.
    """
    target = Path(out).expanduser().resolve()
    for given in inputs:
        if given is not None and Path(given).expanduser().resolve() == target:
            raise OutputError("is also an input of this command; choose another --out", path=out)

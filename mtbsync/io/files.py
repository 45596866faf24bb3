"""Atomic file writes: a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from mtbsync.errors import OutputError


def atomic_write_bytes(path: Path, writer: Any) -> None:
    """Write a file atomically: ``writer(fh)`` fills a temp file in the same folder, then rename.

    A crash leaves either the old file or the new one, never half of one.

    Raises:
        OutputError: The file cannot be written there (a folder in its place, no permission, disk full).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError("is a folder; give a file name to write", path=path)
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


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    path = Path(path)
    data = text.encode(encoding)
    atomic_write_bytes(path, lambda fh: fh.write(data))
    return path

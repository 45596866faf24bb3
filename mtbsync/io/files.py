"""File writes: atomic (a crash leaves the old file or the new one, never half of one), with the
mode the user's umask asks for, and the one check every command runs before it writes (`OutputPlan`).

What a command "wrote before": each folder mtbsync writes into through an `OutputPlan` holds a small
list, ``.mtbsync-files.json``, of the files it wrote there, each with its kind (``pairs``,
``new-markers``, ``export-edl`` ...), size and SHA-256. A re-run may replace a file of that list
that is unchanged since and of the same kind; anything else in the way (the rider's reference
markers, a file edited since, another kind of output, a folder copied from an older mtbsync) is
replaced only with ``--force``. A command never writes over one of its own inputs, force or not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from mtbsync.errors import OutputError

log = logging.getLogger("mtbsync")

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

WRITTEN_LIST_NAME = ".mtbsync-files.json"
"""The list of files mtbsync wrote in a folder (see the module docstring)."""
_WRITTEN_LIST_VERSION = 1

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without leaving it changed.

    Linux reports it in ``/proc/self/status``. Elsewhere it can only be read by setting it: the
    stand-in is 0o077 (not 0), so that a file another thread creates in that instant is private
    rather than writable by everyone.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def _mode_for(path: Path, mode: int | None) -> int:
    """The permission bits for a file written at ``path``: ``mode`` when given, else the replaced
    file's own, else what ``open()`` would give (0o666 less the umask)."""
    if mode is not None:
        return mode
    try:
        st = os.stat(path)
    except OSError:
        return 0o666 & ~current_umask()
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else 0o666 & ~current_umask()


def atomic_write_bytes(
    path: Path, writer: Any, *, replace_media: bool = False, mode: int | None = None
) -> None:
    """Write a file atomically: ``writer(fh)`` fills a temp file in the same folder, then rename.

    A crash leaves either the old file or the new one, never half of one. The file gets the mode a
    plain ``open()`` would give it (0o666 less the umask; the temp file alone would be 0600), or the
    mode of the file it replaces, or ``mode``.

    Args:
        path: The file to write.
        writer: Called with the open temp file.
        replace_media: Allow replacing an existing video, track or catalog file (sample generators only).
        mode: Permission bits to give the file whatever was there (0o600 for a file holding a secret:
            it is never readable by others, not even for an instant).

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
        # Before any byte is written: a secret (mode 0o600) is never readable by others.
        with contextlib.suppress(OSError):  # a file system without modes (FAT, some shares)
            os.fchmod(fd, _mode_for(path, mode))
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
    path: str | Path,
    text: str,
    encoding: str = "utf-8",
    *,
    replace_media: bool = False,
    mode: int | None = None,
) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path (see `atomic_write_bytes`)."""
    path = Path(path)
    data = text.encode(encoding)
    atomic_write_bytes(path, lambda fh: fh.write(data), replace_media=replace_media, mode=mode)
    return path


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: the same inode (hard links, symlinks, ``./``, case on
    case-insensitive disks) or, where one does not exist yet, the same resolved path."""
    try:
        if os.path.samefile(a, b):
            return True
    except (OSError, ValueError):
        pass
    return os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b))


def refuse_overwriting_inputs(out: str | Path, *inputs: str | Path | None) -> None:
    """Stop before a command's output replaces one of its own input files.

    Raises:
        OutputError: ``out`` is the same file as one of ``inputs``.
    """
    for given in inputs:
        if given is not None and same_file(out, given):
            raise OutputError("is also an input of this command; choose another --out", path=out)


def _fingerprint(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of a regular file at ``path`` (not followed if a link), else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _read_written_list(folder: Path) -> dict[str, Any] | None:
    """The folder's list of files mtbsync wrote: ``{}`` when there is none or it is unreadable,
    None when a newer mtbsync wrote it (then it is left alone)."""
    try:
        doc = json.loads((folder / WRITTEN_LIST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        return {}
    if doc.get("mtbsync_files") != _WRITTEN_LIST_VERSION:
        return None
    return doc["files"]


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` where the system has one (two commands finishing at once
    must not drop each other's entries); without one, a lost entry only means a later ``--force``."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Planned:
    path: Path
    kind: str
    before: tuple[int, int, int] | None


class OutputPlan:
    """The files one command is about to write: checked before any work, recorded once written.

    `add` refuses, with one `OutputError` naming the file:

    - a file that is one of the command's inputs (the same file through a symlink, ``./`` or a hard
      link), whatever ``force`` says;
    - a folder that cannot be written (probed with a temp file: permissions, a read-only mount, a file
      where a folder should be), so that a long run does not fail at its very end;
    - an existing file that is not this kind of mtbsync output, unchanged since mtbsync wrote it there
      (see the module docstring), unless ``force``.

    Leaving the ``with`` block (also on an error: what was written is written) adds the files that
    were written to their folder's ``.mtbsync-files.json``.

    Args:
        inputs: The command's input files (None entries are skipped).
        force: Replace existing files mtbsync did not write (never an input).
    """

    def __init__(self, inputs: Iterable[str | Path | None] = (), *, force: bool = False) -> None:
        self.force = force
        self.inputs: list[Path] = []
        self.planned: list[_Planned] = []
        self._lists: dict[Path, dict[str, Any] | None] = {}
        self._probed: set[Path] = set()
        self.add_inputs(*inputs)

    def __enter__(self) -> OutputPlan:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.record()

    def add_inputs(self, *paths: str | Path | None) -> None:
        """Also treat ``paths`` as inputs (a list of chapter files may be given as one entry)."""
        for p in paths:
            if p is None:
                continue
            if isinstance(p, list | tuple):
                self.add_inputs(*p)
            else:
                self.inputs.append(Path(p))

    def add(self, path: str | Path, kind: str, *, option: str = "--out", replace_media: bool = False) -> Path:
        """Check that ``path`` may be written as a file of ``kind`` (see the class docstring).

        Args:
            path: The file the command will write.
            kind: What it holds (``pairs``, ``new-markers``, ``export-csv``, ...).
            option: The option to name in the message.
            replace_media: The command writes videos, tracks or catalogs (sample generators);
                otherwise an existing one in the way is refused now, as `atomic_write_bytes` would
                at the end, force or not.

        Returns:
            ``path``.

        Raises:
            OutputError: Why it may not be written.
        """
        path = Path(path)
        for given in self.inputs:
            if same_file(path, given):
                raise OutputError(f"is also an input of this command; choose another {option}", path=path)
        if path.name == WRITTEN_LIST_NAME:
            raise OutputError(
                f"is mtbsync's list of the files it wrote here; choose another {option}", path=path
            )
        if path.is_dir():
            raise OutputError("is a folder; give a file name to write", path=path)
        if not replace_media and path.suffix.lower() in PROTECTED_SUFFIXES and os.path.lexists(path):
            raise OutputError(
                "is a video, track or catalog file; mtbsync never overwrites those (choose another "
                f"{option})",
                path=path,
            )
        self._check_folder(path.parent)
        before = _fingerprint(path)
        if os.path.lexists(path) and not self.force:
            why = self._why_not_replaceable(path, kind)
            if why:
                raise OutputError(
                    f"exists and {why}; add --force to replace it (or choose another {option})", path=path
                )
        self.planned.append(_Planned(path, kind, before))
        return path

    def _check_folder(self, folder: Path) -> None:
        folder = Path(os.path.abspath(folder))
        if folder in self._probed:
            return
        existing = folder
        while not os.path.lexists(existing) and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            raise OutputError("cannot create this folder: a file is in the way", path=folder)
        try:
            fd, probe = tempfile.mkstemp(prefix=".mtbsync-probe.", dir=existing)
        except OSError as exc:
            raise OutputError(f"cannot write in this folder ({exc.strerror or exc})", path=existing) from None
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
        self._probed.add(folder)

    def _written_list(self, folder: Path) -> dict[str, Any] | None:
        key = Path(os.path.abspath(folder))
        if key not in self._lists:
            self._lists[key] = _read_written_list(key)
        return self._lists[key]

    def _why_not_replaceable(self, path: Path, kind: str) -> str | None:
        entry = (self._written_list(path.parent) or {}).get(path.name)
        if not isinstance(entry, dict):
            return "mtbsync did not write it"
        if os.path.islink(path):
            return "is a link to another file"
        size = os.path.getsize(path)
        if entry.get("size") != size or entry.get("sha256") != _sha256(path):
            return "was changed since mtbsync wrote it"
        if entry.get("kind") != kind:
            return f"holds another kind of mtbsync output ({entry.get('kind')}, not {kind})"
        return None

    def record(self) -> None:
        """Add the planned files that were written to their folders' lists (never raises: a list
        that cannot be written only means that a later run needs ``--force``)."""
        by_folder: dict[Path, dict[str, dict[str, Any]]] = {}
        for planned in self.planned:
            now = _fingerprint(planned.path)
            if now is None or now == planned.before:
                continue  # not written (refused, failed, or kept as it was)
            digest = _sha256(planned.path)
            if digest is None:
                continue
            folder = Path(os.path.abspath(planned.path.parent))
            by_folder.setdefault(folder, {})[planned.path.name] = {
                "kind": planned.kind,
                "size": now[1],
                "sha256": digest,
            }
        for folder, entries in by_folder.items():
            try:
                with _folder_lock(folder):
                    files = _read_written_list(folder)
                    if files is None:
                        log.warning(
                            "%s was written by a newer mtbsync; not updating it", folder / WRITTEN_LIST_NAME
                        )
                        continue
                    files = {n: e for n, e in files.items() if (folder / n).is_file()}
                    files.update(entries)
                    doc = {"mtbsync_files": _WRITTEN_LIST_VERSION, "files": dict(sorted(files.items()))}
                    atomic_write_text(folder / WRITTEN_LIST_NAME, json.dumps(doc, indent=1) + "\n")
            except (OSError, OutputError) as exc:
                log.warning("could not note the files written in %s (%s)", folder, exc)

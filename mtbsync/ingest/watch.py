"""Watch a folder for card dumps and hand over media files once they are completely written.

A copy in progress looks like a file: it has a name, a size, maybe even its final size (preallocated).
A file is taken only when

- its size and modification time have not changed for ``settle_s`` seconds, and
- for an MP4/MOV, its index is readable (`mtbsync.io.video.probe` succeeds; cameras and copy tools
  write the MP4 index last, so a readable index means the writer finished).

LRV proxies and THM thumbnails are sidecars and are handed over as soon as they are seen. An MP4
that stays unreadable while unchanged for ``give_up_s`` is handed over too, so the ingest can put it
in quarantine with its reason (it is retried when it changes). Nothing here writes anywhere.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import watchfiles

from mtbsync.errors import CardError, MtbsyncError
from mtbsync.ingest.card import MEDIA_EXTENSIONS, VIDEO_EXTENSIONS, list_media_files
from mtbsync.io.video import probe

log = logging.getLogger("mtbsync")

DEFAULT_SETTLE_S = 2.0
DEFAULT_GIVE_UP_S = 30.0


class StopEvent(Protocol):
    """What `watch_folder` needs of its stop signal (a `threading.Event` or an `anyio.Event`)."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class FileState:
    """A file's size and modification time: the fingerprint of "has it changed"."""

    size: int
    mtime_ns: int


def file_state(path: str | Path) -> FileState | None:
    """The file's current `FileState`, or None if it is gone or not a regular file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not os.path.isfile(path):
        return None
    return FileState(st.st_size, st.st_mtime_ns)


def needs_index(path: str | Path) -> bool:
    """Whether completeness of ``path`` requires a readable MP4 index (MP4/MOV, not LRV/THM)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def index_problem(path: str | Path) -> str | None:
    """Why the file's MP4 index cannot be read, or None if it can (or the file needs none)."""
    if not needs_index(path):
        return None
    try:
        probe(path)
    except MtbsyncError as exc:
        return exc.message
    return None


def is_media_file(path: str | Path) -> bool:
    """A media file the ingest cares about (MP4/MOV/LRV/THM, any case, not hidden)."""
    p = Path(path)
    return not p.name.startswith(".") and p.suffix.lower() in MEDIA_EXTENSIONS


def wait_until_settled(
    paths: Iterable[str | Path],
    settle_s: float,
    max_wait_s: float,
    *,
    on_wait: Callable[[list[Path], float], None] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Path]:
    """Wait until no file of ``paths`` was modified in the last ``settle_s`` seconds, for at most
    ``max_wait_s`` (a one-shot ingest right after a copy waits out the settle time this way).

    The test is the one the ingest applies (modified at least ``settle_s`` ago by the wall clock), so
    a file this lets through is not then skipped as "still being written". Files that keep changing
    (a copy still running), or carry a modification time in the future, are still too recent when the
    time is up and are returned; when no file can settle within the time left, it returns at once.

    Args:
        paths: The files (missing ones are ignored: the ingest reports them).
        settle_s: Seconds a file must have stayed unchanged.
        max_wait_s: The longest wait in seconds (0: do not wait).
        on_wait: Called once, before the first wait, with the files still too recent and the seconds
            until they settle if unchanged (a front end says why it pauses).
        clock: Wall-clock seconds (file times are wall-clock times); injectable for tests.
        sleep: Sleeps so many seconds; injectable for tests.

    Returns:
        The files still modified less than ``settle_s`` ago when the time was up, sorted.
    """
    paths = [Path(p) for p in paths]
    deadline = clock() + max(0.0, max_wait_s)
    told = False
    while True:
        now = clock()
        recent: dict[Path, float] = {}
        for path in paths:
            state = file_state(path)
            if state is not None and now - state.mtime_ns / 1e9 < settle_s:
                recent[path] = state.mtime_ns / 1e9
        # Those that can settle in time (a file changed a moment ago, with a settle time longer
        # than the wait, cannot: then there is nothing to wait for).
        in_time = [t for t in recent.values() if t + settle_s <= deadline]
        if not in_time or now >= deadline:
            return sorted(recent)
        until = max(in_time) + settle_s  # the newest of them settles then (re-checked: it may change)
        if not told and on_wait is not None:
            on_wait(sorted(recent), until - now)
            told = True
        sleep(max(0.05, until - now))


@dataclass
class _Pending:
    state: FileState
    since: float  # clock time the state was first seen
    problem: str | None = None


class CompletenessTracker:
    """Files seen but not yet complete; `poll` returns those that became complete.

    Args:
        settle_s: How long size and mtime must stay unchanged.
        give_up_s: How long an unchanged MP4 may stay unreadable before it is handed over anyway
            (for the quarantine); None waits forever.
        clock: Seconds, monotonic (injectable for tests).
    """

    def __init__(
        self,
        settle_s: float = DEFAULT_SETTLE_S,
        give_up_s: float | None = DEFAULT_GIVE_UP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settle_s = settle_s
        self.give_up_s = give_up_s
        self._clock = clock
        self._pending: dict[Path, _Pending] = {}
        # What was handed over: a file is handed over again only once it changes.
        self._handed: dict[Path, FileState] = {}

    @property
    def pending(self) -> list[Path]:
        """Files seen and not handed over yet, sorted."""
        return sorted(self._pending)

    def observe(self, path: str | Path) -> None:
        """Note that ``path`` was created or changed (vanished files are forgotten)."""
        path = Path(path)
        state = file_state(path)
        if state is None:
            self._pending.pop(path, None)
            return
        if self._handed.get(path) == state:
            return
        entry = self._pending.get(path)
        if entry is None or entry.state != state:
            self._pending[path] = _Pending(state, self._clock())

    def forget(self, path: str | Path) -> None:
        """Stop tracking ``path`` (deleted)."""
        self._pending.pop(Path(path), None)
        self._handed.pop(Path(path), None)

    def poll(self) -> list[Path]:
        """Re-check every pending file; return (and stop tracking) those that are complete.

        Returns:
            Complete files, sorted; an MP4 unreadable for ``give_up_s`` counts as complete.
        """
        now = self._clock()
        ready: list[Path] = []
        for path, entry in list(self._pending.items()):
            state = file_state(path)
            if state is None:
                del self._pending[path]
                continue
            if state != entry.state:  # still being written: start the settle time again
                self._pending[path] = _Pending(state, now)
                continue
            if not needs_index(path):
                ready.append(path)  # a sidecar waits for nothing
                continue
            if now - entry.since < self.settle_s:
                continue
            problem = index_problem(path)
            if problem is None:
                ready.append(path)
            elif self.give_up_s is not None and now - entry.since >= self.give_up_s:
                log.warning("%s: unchanged for %.0f s but unreadable (%s)", path, now - entry.since, problem)
                ready.append(path)
            else:
                entry.problem = problem
        for path in ready:
            self._handed[path] = self._pending.pop(path).state
        return sorted(ready)


def watch_folder(
    root: str | Path,
    on_ready: Callable[[list[Path]], None],
    stop_event: StopEvent,
    *,
    settle_s: float = DEFAULT_SETTLE_S,
    give_up_s: float | None = DEFAULT_GIVE_UP_S,
    poll_s: float = 0.5,
    initial_scan: bool = True,
    force_polling: bool | None = None,
    on_tick: Callable[[], None] | None = None,
) -> None:
    """Watch ``root`` (recursively) and call ``on_ready`` with each batch of complete media files.

    Runs until ``stop_event`` is set. Changes are batched by watchfiles; pending files are re-checked
    at least every ``poll_s`` seconds even when nothing changes.

    Args:
        root: Folder to watch (card dumps are copied into it).
        on_ready: Called in this thread with complete files (sorted); exceptions propagate.
        stop_event: Stops the loop when set.
        settle_s: Seconds a file's size and mtime must stay unchanged.
        give_up_s: Seconds an unchanged MP4 may stay unreadable before it is handed over anyway.
        poll_s: Longest wait between re-checks of pending files.
        initial_scan: Also hand over the files already in ``root`` (once complete).
        force_polling: Poll the file system instead of OS notifications (network shares); None: auto.
        on_tick: Called after every re-check (at least every ``poll_s``), for work that waits on time.

    Raises:
        CardError: ``root`` is missing or not a folder.
    """
    # Absolute (not resolved: symlinks kept): OS events name absolute paths, and the initial listing
    # must name each file the same way or a file is tracked (and handed over) twice.
    root = Path(os.path.abspath(Path(root).expanduser()))
    if not root.is_dir():
        raise CardError("folder to watch not found or not a folder", path=root)
    tracker = CompletenessTracker(settle_s, give_up_s)

    def handle(ready: list[Path]) -> None:
        if ready:
            log.info("%d file(s) complete: %s", len(ready), ", ".join(p.name for p in ready))
            on_ready(ready)
        if on_tick is not None:
            on_tick()

    timeout_ms = max(50, int(poll_s * 1000))
    changes_iter: Iterable[set[tuple[watchfiles.Change, str]]] = watchfiles.watch(
        root,
        watch_filter=lambda _change, name: is_media_file(name) or os.path.isdir(name),
        debounce=timeout_ms,
        step=50,
        stop_event=stop_event,
        rust_timeout=timeout_ms,
        yield_on_timeout=True,
        raise_interrupt=False,
        force_polling=force_polling,
    )
    first = True
    for changes in changes_iter:
        if first and initial_scan:
            # Listed once the watch is set up (the first batch), so a file created meanwhile is not missed.
            for path in list_media_files(root):
                tracker.observe(path)
        first = False
        for change, name in changes:
            if change == watchfiles.Change.deleted:
                tracker.forget(name)
            elif os.path.isdir(name):
                # Files copied into a new folder before its watch was set up raise no event of their own.
                for path in list_media_files(Path(name)):
                    tracker.observe(path)
            else:
                tracker.observe(name)
        handle(tracker.poll())
        if stop_event.is_set():
            break

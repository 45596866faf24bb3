"""Completeness of files being copied, and the watchfiles loop that hands complete files over."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from conftest import texture_frames, write_clip

from mtbsync.errors import CardError
from mtbsync.ingest.watch import CompletenessTracker, file_state, index_problem, watch_folder


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def good_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("watch") / "good.mp4", texture_frames(30, seed=4))


def wait_for(condition, timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_watch_file_state_and_index(tmp_path: Path, good_mp4: Path) -> None:
    assert file_state(tmp_path / "missing.mp4") is None
    assert file_state(tmp_path) is None
    assert file_state(good_mp4).size == good_mp4.stat().st_size
    assert index_problem(good_mp4) is None
    half = tmp_path / "GX010001.MP4"
    half.write_bytes(good_mp4.read_bytes()[: good_mp4.stat().st_size // 2])  # moov (written last) missing
    assert index_problem(half)
    assert index_problem(tmp_path / "GL010001.LRV") is None  # a sidecar needs no index


def test_watch_tracker_waits_for_settle_and_index(tmp_path: Path, good_mp4: Path) -> None:
    clock = FakeClock()
    tracker = CompletenessTracker(settle_s=2.0, give_up_s=None, clock=clock)
    data = good_mp4.read_bytes()
    target = tmp_path / "GX010001.MP4"
    target.write_bytes(data[: len(data) // 2])
    tracker.observe(target)
    clock.now = 5.0
    assert tracker.poll() == []  # stable but unreadable: the copy may just be paused
    assert tracker.pending == [target]
    with target.open("ab") as fh:
        fh.write(data[len(data) // 2 :])
    clock.now = 6.0
    assert tracker.poll() == []  # changed: the settle time starts again
    clock.now = 7.0
    assert tracker.poll() == []
    clock.now = 8.1
    assert tracker.poll() == [target]
    assert tracker.pending == []


def test_watch_tracker_sidecars_wait_for_nothing_and_vanished_files_are_dropped(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = CompletenessTracker(settle_s=2.0, clock=clock)
    thm = tmp_path / "GX010001.THM"
    thm.write_bytes(b"\xff\xd8jpeg")
    lrv = tmp_path / "GL010001.LRV"
    lrv.write_bytes(b"partial")
    gone = tmp_path / "GX010002.MP4"
    gone.write_bytes(b"x")
    for path in (thm, lrv, gone):
        tracker.observe(path)
    gone.unlink()
    assert tracker.poll() == sorted([lrv, thm])
    assert tracker.pending == []


def test_watch_tracker_gives_up_on_unreadable_files(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = CompletenessTracker(settle_s=1.0, give_up_s=10.0, clock=clock)
    empty = tmp_path / "GX010005.MP4"
    empty.write_bytes(b"")
    tracker.observe(empty)
    clock.now = 9.0
    assert tracker.poll() == []
    clock.now = 10.5
    assert tracker.poll() == [empty]  # handed over so that the ingest can quarantine it


def test_watch_folder_hands_over_each_file_once_complete(tmp_path: Path, good_mp4: Path) -> None:
    watched = tmp_path / "dumps"
    (watched / "DCIM" / "100GOPRO").mkdir(parents=True)
    existing = watched / "GX010009.MP4"
    shutil.copy(good_mp4, existing)
    handed: list[tuple[Path, int]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def on_ready(paths: list[Path]) -> None:
        handed.extend((p, p.stat().st_size) for p in paths)

    def run() -> None:
        try:
            watch_folder(watched, on_ready, stop, settle_s=0.3, give_up_s=None, poll_s=0.1)
        except BaseException as exc:  # surfaced in the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: any(p == existing for p, _ in handed)), "files present at start are taken"
        data = good_mp4.read_bytes()
        target = watched / "DCIM" / "100GOPRO" / "GX010001.MP4"
        with target.open("wb") as fh:  # a slow copy: half, a pause longer than the settle time, the rest
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(1.0)
            assert not any(p == target for p, _ in handed), "a half-written MP4 must not be taken"
            fh.write(data[len(data) // 2 :])
        thm = watched / "DCIM" / "100GOPRO" / "GX010001.THM"
        thm.write_bytes(b"\xff\xd8thumb")
        assert wait_for(lambda: {target, thm} <= {p for p, _ in handed})
        assert (target, len(data)) in handed
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive() and not errors
    assert len([p for p, _ in handed if p == target]) == 1


def test_watch_folder_missing_root(tmp_path: Path) -> None:
    with pytest.raises(CardError):
        watch_folder(tmp_path / "nope", lambda paths: None, threading.Event())


def test_watch_tracker_hands_a_file_again_only_when_it_changes(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = CompletenessTracker(settle_s=1.0, clock=clock)
    thm = tmp_path / "GX010001.THM"
    thm.write_bytes(b"\xff\xd8one")
    tracker.observe(thm)
    assert tracker.poll() == [thm]
    tracker.observe(thm)  # e.g. a folder event re-lists it
    assert tracker.poll() == []
    thm.write_bytes(b"\xff\xd8second version")
    tracker.observe(thm)
    assert tracker.poll() == [thm]

"""A one-shot `mtbsync ingest` right after a card is copied waits out the settle time (saying so)
instead of skipping every recording as "still being written"; the wait is bounded."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtbsync.cli import app
from mtbsync.ingest.watch import wait_until_settled
from mtbsync.samples.card import build_sd_card


class FakeTime:
    """A wall clock that moves only when slept on (no real waiting in the unit tests)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _touch(path: Path, at: float) -> Path:
    if not path.exists():
        path.write_bytes(b"x")
    os.utime(path, (at, at))
    return path


def test_waits_until_the_newest_file_has_settled(tmp_path: Path) -> None:
    t = FakeTime(1000.0)
    old = _touch(tmp_path / "a.mp4", 990.0)
    fresh = _touch(tmp_path / "b.mp4", 999.5)
    told: list[tuple[list[Path], float]] = []
    left = wait_until_settled(
        [old, fresh], 2.0, 60.0, on_wait=lambda f, s: told.append((f, s)), clock=t.clock, sleep=t.sleep
    )
    assert left == []
    assert told == [([fresh], pytest.approx(1.5))]
    assert sum(t.sleeps) == pytest.approx(1.5)


def test_settled_files_are_not_waited_for(tmp_path: Path) -> None:
    t = FakeTime(1000.0)
    files = [_touch(tmp_path / f"{k}.mp4", 900.0) for k in range(3)]
    assert wait_until_settled(files, 2.0, 60.0, clock=t.clock, sleep=t.sleep) == []
    assert t.sleeps == []


def test_a_file_that_cannot_settle_in_time_is_returned_without_waiting(tmp_path: Path) -> None:
    t = FakeTime(1000.0)
    future = _touch(tmp_path / "future.mp4", 5000.0)  # a camera clock ahead, or a copy in progress
    recent = _touch(tmp_path / "recent.mp4", 999.9)
    assert wait_until_settled([future, recent], 3600.0, 60.0, clock=t.clock, sleep=t.sleep) == sorted(
        [future, recent]
    )
    assert t.sleeps == []


def test_the_wait_is_bounded_while_a_file_keeps_changing(tmp_path: Path) -> None:
    t = FakeTime(1000.0)
    growing = _touch(tmp_path / "growing.mp4", 1000.0)

    def sleep(seconds: float) -> None:
        t.sleep(seconds)
        os.utime(growing, (t.now, t.now))  # the copy goes on

    assert wait_until_settled([growing], 1.0, 5.0, clock=t.clock, sleep=sleep) == [growing]
    assert t.now <= 1000.0 + 5.0 + 1.0


def test_no_wait_asked_is_todays_behaviour(tmp_path: Path) -> None:
    t = FakeTime(1000.0)
    fresh = _touch(tmp_path / "b.mp4", 999.5)
    assert wait_until_settled([fresh], 2.0, 0.0, clock=t.clock, sleep=t.sleep) == [fresh]
    assert t.sleeps == []


@pytest.fixture(scope="module")
def card_template(tmp_path_factory: pytest.TempPathFactory):
    return build_sd_card(
        tmp_path_factory.mktemp("card"), old_camera=False, gps9=False, seconds_per_chapter=1.0
    )


def _fresh_copy(card_template, dest: Path) -> Path:
    import shutil

    shutil.copytree(card_template.root, dest)
    now = time.time()
    for path in dest.rglob("*"):
        if path.is_file():
            os.utime(path, (now, now))  # just copied, as a card dump is
    return dest


def test_cli_ingest_right_after_a_copy_waits_and_ingests(card_template, tmp_path: Path) -> None:
    card = _fresh_copy(card_template, tmp_path / "dump")
    result = CliRunner().invoke(
        app,
        ["ingest", str(card), "--db", str(tmp_path / "c.duckdb"), "--settle", "1"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "waiting" in result.output and "to settle" in result.output
    assert "1 new" in result.output and "0 still being written" in result.output


def test_cli_ingest_reports_what_is_still_being_written_after_the_wait(card_template, tmp_path: Path) -> None:
    card = _fresh_copy(card_template, tmp_path / "dump")
    video = next(card.rglob("GX020101.MP4"))
    stop = threading.Event()

    def copy_goes_on() -> None:
        while not stop.is_set():
            now = time.time()
            os.utime(video, (now, now))
            stop.wait(0.05)

    writer = threading.Thread(target=copy_goes_on, daemon=True)
    writer.start()
    try:
        result = CliRunner().invoke(
            app,
            ["ingest", str(card), "--db", str(tmp_path / "c.duckdb"), "--settle", "1", "--wait", "1.5"],
            env={"COLUMNS": "200"},
        )
    finally:
        stop.set()
        writer.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert "1 still being written" in result.output
    assert "kept changing while mtbsync waited (--wait 1.5 s)" in result.output

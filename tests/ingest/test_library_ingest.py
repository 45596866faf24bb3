"""Ingest of a realistic card into a real DuckDB catalog: identity, quarantine, crash safety, watch, CLI."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtbsync.cli import app
from mtbsync.library.ingest import ingest_directory, recording_identity, watch_and_ingest
from mtbsync.samples.card import build_sd_card
from mtbsync.store.catalog import Catalog

GOOD = {"GX010101", "GX010102", "GOPR0103", "GX010106", "VID_20240601_101500"}


@pytest.fixture(scope="module")
def card_template(tmp_path_factory: pytest.TempPathFactory):
    return build_sd_card(
        tmp_path_factory.mktemp("card"), truncated=True, zero_length=True, no_telemetry=True, non_gopro=True
    )


@pytest.fixture
def card(card_template, tmp_path: Path) -> Path:
    """A private copy of the card (tests change files), mtimes kept as a copy tool would."""
    root = tmp_path / "dump1"
    shutil.copytree(card_template.root, root)
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    return {
        str(p.relative_to(root)): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_library_ingest_records_every_recording_once(card: Path, tmp_path: Path) -> None:
    before = snapshot(card)
    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:
        report = ingest_directory(card, catalog, settle_s=0)
        status = {o.name: o.status for o in report.outcomes}
        assert {n for n, s in status.items() if s == "new"} == GOOD
        assert status["GX010104"] == "quarantined" and status["GX010105"] == "quarantined"
        by_name = {o.name: o for o in report.outcomes}
        assert by_name["GX010101"].gps and by_name["GX010101"].gps_source == "gpmf:GPS5"
        assert by_name["GX010101"].hilights == 2
        assert by_name["GX010102"].gps_source == "gpmf:GPS9"
        assert not by_name["GOPR0103"].gps  # never locked: samples kept, no fix
        assert by_name["GX010101"].duration_s == pytest.approx(6.0, abs=0.1)
        assert any("telemetry" in n for n in by_name["VID_20240601_101500"].notes)

        runs = catalog.query("SELECT run_id, name, duration_s FROM runs ORDER BY name")
        assert set(runs["name"]) == GOOD
        run = by_name["GX010101"].run_id
        media = catalog.query(
            "SELECT role, chapter, path FROM media_files WHERE run_id = ? ORDER BY role, chapter", [run]
        )
        assert media.rows() == [
            ("proxy", 1, str(card / "DCIM/100GOPRO/GL010101.LRV")),
            ("proxy", 2, str(card / "DCIM/100GOPRO/GL020101.LRV")),
            ("thumbnail", 1, str(card / "DCIM/100GOPRO/GX010101.THM")),
            ("thumbnail", 2, str(card / "DCIM/100GOPRO/GX020101.THM")),
            ("video", 1, str(card / "DCIM/100GOPRO/GX010101.MP4")),
            ("video", 2, str(card / "DCIM/100GOPRO/GX020101.MP4")),
        ]
        chapters = catalog.query(
            "SELECT chapter, count(*) AS n, min(t) AS t0, max(t) AS t1 FROM gps_samples WHERE run_id = ? "
            "GROUP BY chapter ORDER BY chapter",
            [run],
        )
        assert chapters["chapter"].to_list() == [1, 2]
        assert chapters["t0"][1] >= 3.0 - 0.1  # chapter 2's samples follow chapter 1's on one timeline
        assert len(catalog.markers(run, source="hilight")) == 2
        quarantined = catalog.quarantined()
        assert set(quarantined) == {
            str(card / "DCIM/100GOPRO/GX010104.MP4"),
            str(card / "DCIM/100GOPRO/GX010105.MP4"),
        }
        assert "empty" in quarantined[str(card / "DCIM/100GOPRO/GX010105.MP4")][2]
    assert snapshot(card) == before, "the user's media must not change (bytes, size, mtime, no new files)"


def test_library_ingest_same_card_twice_even_elsewhere_adds_nothing(card: Path, tmp_path: Path) -> None:
    second = tmp_path / "dump2"
    shutil.copytree(card, second)
    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:
        first = ingest_directory(card, catalog, settle_s=0)
        again = ingest_directory(second, catalog, settle_s=0)
        assert {o.name for o in again.known} == GOOD
        assert again.new == []
        assert catalog.query("SELECT count(*) AS n FROM runs")["n"][0] == len(GOOD)
        ids = {o.name: o.run_id for o in first.new}
        assert {o.name: o.run_id for o in again.known} == ids
        # Both dumps in one folder: each recording once, the second copy is a duplicate.
        both = ingest_directory(tmp_path, catalog, settle_s=0)
        assert len(both.new) == 0 and len(both.with_status("duplicate")) == len(GOOD)


def test_library_ingest_quarantine_is_retried_only_when_the_file_changes(
    card: Path, card_template, tmp_path: Path
) -> None:
    broken = card / "DCIM/100GOPRO/GX010104.MP4"
    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:
        ingest_directory(card, catalog, settle_s=0)
        again = ingest_directory(card, catalog, settle_s=0)
        held = next(o for o in again.outcomes if o.name == "GX010104")
        assert held.status == "quarantined" and "unchanged" in held.reason
        # The rider copies the file again, this time completely: it changes, so it is retried.
        shutil.copyfile(card_template.recordings["GX010106"].videos[0], broken)
        retried = ingest_directory(card, catalog, settle_s=0)
        fixed = next(o for o in retried.outcomes if o.name == "GX010104")
        assert fixed.status in ("new", "known")  # same content as GX010106 is recognised by identity
        assert str(broken) not in catalog.quarantined()


def test_library_ingest_skips_files_still_being_written(card: Path, tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:
        report = ingest_directory(card, catalog, settle_s=3600)
        assert {o.status for o in report.outcomes} == {"incomplete"}
        assert catalog.query("SELECT count(*) AS n FROM runs")["n"][0] == 0
        assert catalog.quarantined() == {}


def test_library_recording_identity_depends_on_chapters_and_order() -> None:
    a = recording_identity(["1:aa", "2:bb"])
    assert a == recording_identity(["1:aa", "2:bb"])
    assert a != recording_identity(["2:bb", "1:aa"])
    assert a != recording_identity(["1:aa"])


_CHILD = """
import sys
from mtbsync.library.ingest import ingest_directory
from mtbsync.store.catalog import Catalog

def progress(stage, done, total):
    print(done, flush=True)

with Catalog.open(sys.argv[2]) as catalog:
    ingest_directory(sys.argv[1], catalog, progress=progress, settle_s=0)
print("finished", flush=True)
"""


def test_library_ingest_survives_kill_9_and_resumes(card: Path, tmp_path: Path) -> None:
    db = tmp_path / "catalog.duckdb"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(card), str(db)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    lines = []
    while True:
        line = child.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        if line.strip() == "1":  # one recording done, the next one under way: kill it now
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, f"the child finished before the kill: {lines}"
    with Catalog.open(db) as catalog:
        runs = catalog.query("SELECT run_id, name FROM runs")
        assert 1 <= len(runs) < len(GOOD)
        # Nothing half-written: each recorded run has all its chapter videos; no row without its run.
        videos = catalog.query(
            "SELECT run_id, count(*) AS n FROM media_files WHERE role = 'video' GROUP BY run_id"
        )
        expected_chapters = {"GX010101": 2, "GOPR0103": 2}
        for run_id, name in runs.rows():
            n = videos.filter(videos["run_id"] == run_id)["n"].to_list()
            assert n == [expected_chapters.get(name, 1)]
        orphans = catalog.query(
            "SELECT count(*) AS n FROM media_files WHERE run_id NOT IN (SELECT run_id FROM runs)"
        )["n"][0]
        assert orphans == 0
        resumed = ingest_directory(card, catalog, settle_s=0)
        assert {o.name for o in resumed.new} | {o.name for o in resumed.known} == GOOD
        assert len(resumed.known) == len(runs)
        assert catalog.query("SELECT count(*) AS n FROM runs")["n"][0] == len(GOOD)


def test_library_watch_ingests_a_card_copied_in(card_template, tmp_path: Path) -> None:
    watched = tmp_path / "incoming"
    watched.mkdir()
    outcomes = []
    stop = threading.Event()
    errors: list[BaseException] = []
    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:

        def run() -> None:
            try:
                watch_and_ingest(watched, catalog, stop, on_outcome=outcomes.append, settle_s=0.3, poll_s=0.1)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            rec = card_template.recordings["GX010101"]
            target = watched / "DCIM" / "100GOPRO"
            target.mkdir(parents=True)
            for path in (*rec.proxies, *rec.thumbnails, *rec.videos):
                shutil.copy2(path, target / path.name)
            end = time.monotonic() + 20
            while time.monotonic() < end and not any(o.status == "new" for o in outcomes):
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(timeout=10)
        assert not errors and not thread.is_alive()
        new = [o for o in outcomes if o.status == "new"]
        assert [(o.name, o.chapters) for o in new] == [("GX010101", 2)], outcomes
        assert catalog.query("SELECT count(*) AS n FROM runs")["n"][0] == 1


def test_library_cli_ingest_prints_a_summary(card: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "cli.duckdb"
    result = runner.invoke(app, ["ingest", str(card), "--db", str(db), "--settle", "0"])
    assert result.exit_code == 0, result.output
    assert "5 new (2 with GPS, 2 HiLights), 0 known, 2 quarantined" in result.output
    again = runner.invoke(app, ["ingest", str(card), "--db", str(db), "--settle", "0"])
    assert "0 new" in again.output and "5 known" in again.output
    missing = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--db", str(db)])
    assert missing.exit_code == 1
    assert "folder not found" in missing.output and "Traceback" not in missing.output
    no_db = runner.invoke(app, ["ingest", str(card), "--db", "none"])
    assert no_db.exit_code == 1 and "--db" in no_db.output


def test_library_watch_waits_for_the_next_chapter_of_a_full_size_chapter(
    card_template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mtbsync.library.ingest as ingest_module

    # Our chapters are small: make "full size" small too, so chapter 1 looks like a camera split.
    monkeypatch.setattr(ingest_module, "CHAPTER_SPLIT_BYTES", 1000)
    watched = tmp_path / "incoming"
    watched.mkdir()
    outcomes: list = []
    stop = threading.Event()
    rec = card_template.recordings["GX010101"]
    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:
        thread = threading.Thread(
            target=watch_and_ingest,
            args=(watched, catalog, stop),
            kwargs={
                "on_outcome": outcomes.append,
                "settle_s": 0.2,
                "poll_s": 0.1,
                "next_chapter_wait_s": 1.5,
            },
            daemon=True,
        )
        thread.start()
        try:
            shutil.copy2(rec.videos[0], watched / rec.videos[0].name)
            time.sleep(1.0)  # chapter 1 is complete by now, but a next chapter may follow
            assert outcomes == []
            shutil.copy2(rec.videos[1], watched / rec.videos[1].name)
            end = time.monotonic() + 20
            while time.monotonic() < end and not outcomes:
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(timeout=10)
        assert [(o.name, o.status, o.chapters) for o in outcomes] == [("GX010101", "new", 2)]


def test_library_cli_watch_runs_until_ctrl_c(card_template, tmp_path: Path) -> None:
    watched = tmp_path / "incoming"
    watched.mkdir()
    db = tmp_path / "watch.duckdb"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "COLUMNS": "200"}
    child = subprocess.Popen(
        [sys.executable, "-m", "mtbsync", "watch", str(watched), "--db", str(db), "--settle", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    try:
        assert "Watching" in child.stdout.readline()
        video = card_template.recordings["GX010102"].videos[0]
        shutil.copy2(video, watched / video.name)
        seen = []
        for line in child.stdout:
            seen.append(line)
            if "GX010102" in line:
                break
        assert any("new" in line for line in seen), seen
        child.send_signal(signal.SIGINT)
        rest = child.communicate(timeout=20)[0]
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, rest
    assert "stopped" in rest and "Traceback" not in rest
    with Catalog.open(db) as catalog:
        assert catalog.query("SELECT name FROM runs")["name"].to_list() == ["GX010102"]


def test_library_ingest_attaches_a_thumbnail_copied_later(card: Path, tmp_path: Path) -> None:
    thumb = card / "DCIM/100GOPRO/GX010102.THM"
    kept = tmp_path / "later.THM"
    shutil.move(thumb, kept)
    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:
        first = ingest_directory(card, catalog, settle_s=0)
        run = next(o.run_id for o in first.new if o.name == "GX010102")
        roles = "SELECT role FROM media_files WHERE run_id = ? ORDER BY role"
        assert catalog.query(roles, [run])["role"].to_list() == ["proxy", "video"]
        shutil.move(kept, thumb)
        again = ingest_directory(card, catalog, settle_s=0)
        assert next(o.status for o in again.outcomes if o.name == "GX010102") == "known"
        assert catalog.query(roles, [run])["role"].to_list() == ["proxy", "thumbnail", "video"]

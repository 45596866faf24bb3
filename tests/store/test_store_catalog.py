"""The catalog on real DuckDB files: migrations, idempotent records, transactions, crashes, locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from mtbsync.errors import CatalogError, CatalogLockedError
from mtbsync.store.catalog import Catalog, MarkerRow, WarpPoints, migrate
from mtbsync.store.records import IngestedRun, MediaFileRecord
from mtbsync.store.schema import MIGRATIONS, SCHEMA_VERSION
from mtbsync.timing import StageRecord


def _ingested(identity: str = "rec-0123", folder: str = "/card1/DCIM/100GOPRO") -> IngestedRun:
    gps = pl.DataFrame(
        {
            "t": [0.0, 0.1, 0.2],
            "utc": [datetime(2026, 5, 1, 10, 0, 0, k * 100_000) for k in range(3)],
            "lat": [46.1, 46.1001, 46.1002],
            "lon": [7.1, 7.1001, 7.1002],
            "alt": [1200.0, 1199.5, 1199.0],
            "speed": [5.0, 5.1, 5.2],
            "fix": pl.Series([3, 3, 0], dtype=pl.Int8),
            "dop": [1.2, 1.1, 9.9],
            "usable": [True, True, False],
            "chapter": [1, 1, 2],
        }
    )
    media = tuple(
        MediaFileRecord(f"{folder}/{name}", role, chapter, 1000 + chapter, f"{identity}-{name}")
        for name, role, chapter in (
            ("GX010123.MP4", "video", 1),
            ("GX020123.MP4", "video", 2),
            ("GL010123.LRV", "proxy", 1),
        )
    )
    return IngestedRun(
        identity=identity,
        name="GX010123",
        source_dir=folder,
        started_utc=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
        duration_s=42.0,
        camera="HERO7 Black",
        media=media,
        gps=gps,
        gps_source="gpmf:GPS5",
        hilights_s=(3.5, 20.25),
        notes=("GPS lost in chapter 2",),
    )


def test_store_new_file_is_at_current_schema(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        assert catalog.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        names = catalog.query("SELECT name FROM schema_migrations ORDER BY version")["name"].to_list()
        assert names == [m.name for m in MIGRATIONS]


def test_store_migrates_an_older_file_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    conn = duckdb.connect(str(path))
    assert migrate(conn, migrations=MIGRATIONS[:1]) == 1  # a v1 catalog: runs but no markers table yet
    conn.execute(
        "INSERT INTO runs (identity, name, kind, created_at, updated_at) "
        "VALUES ('old-run', 'GX010001', 'recording', now(), now())"
    )
    conn.close()

    with Catalog.open(path) as catalog:
        assert catalog.schema_version == SCHEMA_VERSION
        run_id = catalog.run_id_for_identity("old-run")
        assert run_id is not None
        catalog.record_markers(run_id, [MarkerRow("drop", 4.0)], source="manual")
        assert catalog.query("SELECT marker FROM markers_per_run")["marker"].to_list() == ["drop"]


def test_store_read_only_open_of_an_old_file_says_to_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    conn = duckdb.connect(str(path))
    migrate(conn, migrations=MIGRATIONS[:2])
    conn.close()
    with pytest.raises(CatalogError, match="schema version 2 and needs upgrading"):
        Catalog.open(path, read_only=True)


def test_store_refuses_a_newer_file(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    Catalog.open(path).close()
    conn = duckdb.connect(str(path))
    conn.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', now())", [SCHEMA_VERSION + 1])
    conn.close()
    with pytest.raises(CatalogError, match="newer than this mtbsync"):
        Catalog.open(path)


def test_store_not_a_database_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CatalogError) as info:
        Catalog.open(bad)
    assert "cannot open the catalog" in str(info.value)
    assert "\n" not in str(info.value)


def test_store_record_ingested_run_is_idempotent(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        run = _ingested()
        first = catalog.record_ingested_run(run)
        again = catalog.record_ingested_run(run)
        assert first == again == catalog.run_id_for_identity(run.identity)
        assert catalog.run_id_for_identity("other") is None
        counts = catalog.query(
            "SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM media_files) AS media, "
            "(SELECT count(*) FROM gps_samples) AS gps, (SELECT count(*) FROM markers) AS markers"
        ).row(0, named=True)
        assert counts == {"runs": 1, "media": 3, "gps": 3, "markers": 2}
        row = catalog.run(first)
        assert row["started_utc"] == datetime(2026, 5, 1, 12, 0)  # stored as naive UTC
        assert row["video_path"].endswith("GX010123.MP4")
        hilights = catalog.markers(first, source="hilight")
        assert hilights["t"].to_list() == [3.5, 20.25]
        assert len(catalog.gps_samples(first)) == 2  # the sample without a fix is kept but not usable

        # The same card dumped elsewhere: same run, paths follow the files.
        moved = _ingested(folder="/card2/DCIM/100GOPRO")
        assert catalog.record_ingested_run(moved) == first
        paths = catalog.query("SELECT path FROM media_files ORDER BY path")["path"].to_list()
        assert all(p.startswith("/card2/") for p in paths)
        assert len(paths) == 3


def test_store_quarantine_and_ingest_events(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        catalog.quarantine("/card/GX010001.MP4", 10, 111, "truncated MP4")
        catalog.quarantine("/card/GX010001.MP4", 20, 222, "still truncated")
        catalog.quarantine("/card/GX020001.MP4", 5, 333, "no video stream")
        assert catalog.quarantined() == {
            "/card/GX010001.MP4": (20, 222, "still truncated"),
            "/card/GX020001.MP4": (5, 333, "no video stream"),
        }
        catalog.clear_quarantine("/card/GX010001.MP4")
        assert list(catalog.quarantined()) == ["/card/GX020001.MP4"]
        catalog.log_ingest_event("/card/GX010001.MP4", "ingested", "run #1")
        assert catalog.table("ingest_events")["event"].to_list() == ["ingested"]


def test_store_alignment_rerun_replaces_points_and_keeps_moved_markers(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        ref = catalog.record_video_run("ref", "/v/ref.mp4")
        new = catalog.record_video_run("new", "/v/new.mp4")
        params = {"sample_fps": 3.0}
        first = catalog.record_alignment(
            new, ref, ok=True, points=WarpPoints([0, 1, 2], [0, 1.1, 2.2], [1, 1, 1]), params=params
        )
        catalog.record_markers(
            new,
            [MarkerRow("a", 1.0, 1.0), MarkerRow("b", 2.0, 2.0)],
            source="transferred",
            alignment_id=first,
        )
        moved_id = catalog.markers(new).filter(pl.col("name") == "b")["marker_id"][0]
        catalog.move_marker(int(moved_id), 2.5)

        again = catalog.record_alignment(
            new, ref, ok=True, points=WarpPoints([0, 2], [0, 2.0], [0.5, 0.5]), params=params
        )
        assert again == first  # same pair + parameters: one row, updated
        assert catalog.warp_points(first)["t_ref"].to_list() == [0.0, 2.0]
        catalog.record_markers(
            new,
            [MarkerRow("a", 1.2, 1.0), MarkerRow("b", 2.1, 2.0)],
            source="transferred",
            alignment_id=again,
        )
        markers = {r["name"]: r for r in catalog.markers(new).iter_rows(named=True)}
        assert markers["a"]["t"] == pytest.approx(1.2)
        assert markers["b"]["t"] == pytest.approx(2.5)  # the hand-moved time survives the re-transfer
        assert markers["b"]["moved_by_user"] and markers["b"]["review_state"] == "reviewed"

        other = catalog.record_alignment(new, ref, ok=False, reason="no overlap", params={"sample_fps": 5.0})
        assert other != first
        assert catalog.latest_alignment(new)["alignment_id"] == other


def test_store_stage_timings_are_recorded_once(tmp_path: Path) -> None:
    records = [
        StageRecord("decode", started_at=1_700_000_000.0, seconds=1.5, cpu_seconds=3.0, frames=90),
        StageRecord(
            "matching", started_at=1_700_000_002.0, seconds=0.5, device="gpu", extra={"vram_mb": 300}
        ),
    ]
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        assert catalog.record_stage_timings(records, run_id=7) == 2
        assert catalog.record_stage_timings(records, run_id=7) == 0  # a re-run after a crash: no-op
        rows = catalog.query(
            "SELECT stage, seconds, cpu_percent, device, vram_mb FROM stage_timings ORDER BY stage"
        )
        assert rows.to_dicts() == [
            {"stage": "decode", "seconds": 1.5, "cpu_percent": 200.0, "device": "cpu", "vram_mb": None},
            {"stage": "matching", "seconds": 0.5, "cpu_percent": 0.0, "device": "gpu", "vram_mb": 300.0},
        ]


def test_store_job_queue_claims_each_job_once_and_requeues_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    with Catalog.open(path) as catalog:
        jobs = [catalog.enqueue("align", run_id) for run_id in range(1, 21)]
        assert catalog.enqueue("align", 1) == jobs[0]  # already queued: not twice
        claimed: list[int] = []
        lock = threading.Lock()

        def worker(name: str) -> None:
            while (job := catalog.claim_job(name)) is not None:
                with lock:
                    claimed.append(job.job_id)

        threads = [threading.Thread(target=worker, args=(f"w{k}",)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(claimed) == jobs  # every job exactly once
        catalog.finish_job(jobs[0])
        catalog.fail_job(jobs[1], "video missing")
    with Catalog.open(path) as catalog:  # "restart": running jobs go back in the queue
        assert catalog.requeue_running() == 18
        states = catalog.query("SELECT state, count(*) AS n FROM jobs GROUP BY state ORDER BY state").rows()
        assert states == [("done", 1), ("failed", 1), ("queued", 18)]
        assert catalog.claim_job("w", kinds=["export"]) is None
        job = catalog.claim_job("w", kinds=["align"])
        assert job is not None and job.attempts == 2


def test_store_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        with pytest.raises(RuntimeError), catalog.transaction():
            catalog.record_video_run("x", "/v/x.mp4")
            catalog.record_markers(1, [MarkerRow("a", 1.0)], source="manual")
            raise RuntimeError("crash in the middle of a stage")
        assert catalog.query("SELECT count(*) AS n FROM runs")["n"][0] == 0
        assert catalog.query("SELECT count(*) AS n FROM markers")["n"][0] == 0


def test_store_readers_see_consistent_data_during_a_write(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        written, release = threading.Event(), threading.Event()

        def writer() -> None:
            with catalog.transaction():
                run = catalog.record_video_run("w", "/v/w.mp4")
                catalog.record_markers(
                    run, [MarkerRow(f"m{k}", float(k)) for k in range(50)], source="manual"
                )
                written.set()
                release.wait(10)

        thread = threading.Thread(target=writer)
        thread.start()
        assert written.wait(10)
        during = catalog.query("SELECT (SELECT count(*) FROM runs) AS r, (SELECT count(*) FROM markers) AS m")
        release.set()
        thread.join()
        after = catalog.query("SELECT (SELECT count(*) FROM runs) AS r, (SELECT count(*) FROM markers) AS m")
        assert during.row(0) == (0, 0)  # the reader saw none of the uncommitted transaction
        assert after.row(0) == (1, 50)


_KILLED_WRITER = """
import sys, time
from mtbsync.store.catalog import Catalog, MarkerRow
catalog = Catalog.open(sys.argv[1])
catalog.record_video_run("committed", "/v/committed.mp4")
with catalog.transaction():
    run = catalog.record_video_run("half-written", "/v/half.mp4")
    catalog.record_markers(run, [MarkerRow(f"m{k}", float(k)) for k in range(2000)], source="manual")
    print("in transaction", flush=True)
    time.sleep(60)
"""


def test_store_kill_9_mid_transaction_leaves_no_partial_rows(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_KILLED_WRITER), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "in transaction"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Catalog.open(path) as catalog:
        assert catalog.query("SELECT identity FROM runs")["identity"].to_list() == ["committed"]
        assert catalog.query("SELECT count(*) AS n FROM markers")["n"][0] == 0


_HOLDER = """
import sys, time
from mtbsync.store.catalog import Catalog
catalog = Catalog.open(sys.argv[1])
print("open", flush=True)
time.sleep(60)
"""


def test_store_second_process_gets_a_clear_locked_error(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HOLDER), str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "open"
        with pytest.raises(CatalogLockedError, match="in use by another mtbsync process"):
            Catalog.open(path)
        with pytest.raises(CatalogLockedError):
            Catalog.open(path, read_only=True)
    finally:
        proc.kill()
        proc.wait(10)


def test_store_parquet_export_of_a_table_and_a_view(tmp_path: Path) -> None:
    from store_cases import build_known_catalog

    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        build_known_catalog(catalog)
        out = catalog.export_parquet("markers", tmp_path / "markers.parquet")
        view = catalog.export_parquet("splits", tmp_path / "splits.parquet")
        assert pl.read_parquet(out).shape == catalog.table("markers").shape
        assert set(pl.read_parquet(view)["run"]) == {"REF", "RUN_A", "RUN_B", "RUN_C"}
        with pytest.raises(CatalogError, match="no table or view called"):
            catalog.export_parquet("runs; DROP TABLE runs", tmp_path / "x.parquet")


def test_store_default_path_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mtbsync.store.catalog import default_db_path

    monkeypatch.setenv("MTBSYNC_DB", str(tmp_path / "env.duckdb"))
    assert default_db_path() == tmp_path / "env.duckdb"
    with Catalog.open() as catalog:
        assert catalog.path == tmp_path / "env.duckdb"
    monkeypatch.delenv("MTBSYNC_DB")
    assert default_db_path().name == "catalog.duckdb"
    assert "mtbsync" in str(default_db_path())


def test_store_sql_error_inside_a_transaction_is_a_catalog_error(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        with pytest.raises(CatalogError, match="nothing saved") as info, catalog.transaction() as conn:
            catalog.record_video_run("x", "/v/x.mp4")
            conn.execute("INSERT INTO runs (identity) VALUES ('no name')")  # NOT NULL violated
        assert "\n" not in str(info.value)
        assert catalog.run_id_for_identity("x") is None
    with (
        Catalog.open(tmp_path / "c.duckdb", read_only=True) as catalog,
        pytest.raises(CatalogError, match="read-only"),
    ):
        catalog.quarantine("/x", 1, 1, "bad")

"""The worker pool on a real catalog: the queue survives a restart, a failing run never stops the pool."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from mtbsync.library.ingest import ingest_directory
from mtbsync.library.worker import JOB_ALIGN, JOB_INGEST, JOB_KINDS, WorkerPool, one_line_reason
from mtbsync.samples.card import build_sd_card
from mtbsync.store.catalog import Catalog


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    build_sd_card(root / "card", seconds_per_chapter=1.0, old_camera=False)
    return root


def _pool(catalog: Catalog, tmp_path: Path, **kw) -> WorkerPool:
    return WorkerPool(catalog, work_dir=tmp_path / "work", cache_dir=tmp_path / "work" / "proxies", **kw)


def _jobs(catalog: Catalog) -> list[tuple[int, str, str, int, str]]:
    return [
        (r["run_id"], r["kind"], r["state"], r["attempts"], r["reason"])
        for r in catalog.jobs().iter_rows(named=True)
    ]


def test_a_restart_resumes_the_queue_where_it_stopped(library: Path, tmp_path: Path) -> None:
    db = tmp_path / "catalog.duckdb"
    with Catalog.open(db) as catalog:
        report = ingest_directory(library, catalog, settle_s=0)
        runs = [o.run_id for o in report.new]
        assert len(runs) == 2
        pool = _pool(catalog, tmp_path)
        for run_id in runs:
            assert pool.submit(run_id) is not None
            assert pool.submit(run_id) is None  # queued once only
        # A worker takes the first job and the service is killed before it finishes.
        taken = catalog.claim_job("killed-worker", JOB_KINDS)
        assert taken is not None and taken.state == "running"
    with Catalog.open(db) as catalog:
        changed: list[int] = []
        pool = _pool(catalog, tmp_path, workers=2, on_run_change=changed.append, poll_s=0.1).start()
        try:
            deadline = time.monotonic() + 60
            while not pool.idle and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            assert pool.stop()
        jobs = _jobs(catalog)
        assert {(run, kind, state) for run, kind, state, _, _ in jobs} == {
            (run, kind, "done") for run in runs for kind in (JOB_INGEST, JOB_ALIGN)
        }
        resumed = next(j for j in jobs if j[1] == JOB_INGEST and j[0] == taken.run_id)
        assert resumed[3] == 2  # claimed again after the restart
        assert set(changed) == set(runs)
        for run_id in runs:
            assert catalog.latest_index(run_id) is not None
            assert catalog.run(run_id)["trail_id"] is not None


def test_a_failing_run_is_marked_failed_and_the_pool_goes_on(library: Path, tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:
        report = ingest_directory(library, catalog, settle_s=0)
        by_name = {o.name: o.run_id for o in report.new}
        for path in (library / "card" / "DCIM" / "100GOPRO").glob("G?010102.*"):
            path.unlink()  # its files vanish after the ingest
        pool = _pool(catalog, tmp_path)
        assert sorted(pool.submit_unprocessed(library)) == sorted(by_name.values())
        assert pool.submit_unprocessed(library) == []  # already queued
        outcomes = pool.run_pending()
        failed = [o for o in outcomes if not o.ok]
        assert [(o.run_id, o.kind) for o in failed] == [(by_name["GX010102"], JOB_INGEST)]
        assert "not there any more" in failed[0].reason and "\n" not in failed[0].reason
        assert {(o.run_id, o.kind) for o in outcomes if o.ok} == {
            (by_name["GX010101"], JOB_INGEST),
            (by_name["GX010101"], JOB_ALIGN),
        }
        failed_jobs = catalog.jobs("failed")
        assert failed_jobs["reason"][0] == failed[0].reason
        # The file comes back (the watcher hands it over again): the failed run gets another try.
        shutil.rmtree(library / "card")
        build_sd_card(library / "card", seconds_per_chapter=1.0, old_camera=False)
        assert pool.submit(by_name["GX010102"]) is None
        assert pool.submit(by_name["GX010101"], retry_failed=True) is None  # done: left alone
        assert pool.submit(by_name["GX010102"], retry_failed=True) is not None
        assert [o.ok for o in pool.run_pending()] == [True, True]


def test_a_job_the_service_never_survives_is_given_up(library: Path, tmp_path: Path) -> None:
    from mtbsync.library.worker import MAX_ATTEMPTS

    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:
        run_id = ingest_directory(library, catalog, settle_s=0).new[0].run_id
        pool = _pool(catalog, tmp_path)
        pool.submit(run_id)
        for _ in range(MAX_ATTEMPTS):  # claimed, then the service dies during the job, each time
            assert catalog.claim_job("crashing", JOB_KINDS) is not None
            catalog.requeue_running()
        (outcome,) = pool.run_pending()[:1]
        assert not outcome.ok and f"gave up after {MAX_ATTEMPTS} tries" in outcome.reason
        # Its files change (the watcher hands it over again): it gets a fresh job.
        assert pool.submit(run_id, retry_failed=True) is not None
        assert all(o.ok for o in pool.run_pending())


def test_runs_outside_the_library_are_not_queued(library: Path, tmp_path: Path, clip_30fps: Path) -> None:
    from mtbsync.library.runs import record_video

    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:
        record_video(catalog, clip_30fps)  # a run the CLI recorded from elsewhere
        pool = _pool(catalog, tmp_path)
        assert pool.submit_unprocessed(library) == []


def test_reasons_are_one_line() -> None:
    assert one_line_reason(ValueError("bad\n  value")) == "ValueError: bad value"
    assert len(one_line_reason(RuntimeError("x" * 1000))) == 300

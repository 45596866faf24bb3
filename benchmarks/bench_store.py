"""Catalog figures: open/migrate, ingest record, alignment record, queries (python bench_store.py)."""

import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from mtbsync.store.catalog import Catalog, MarkerRow, WarpPoints
from mtbsync.store.queries import EXAMPLE_QUERIES, run_sql
from mtbsync.store.records import IngestedRun, MediaFileRecord
from mtbsync.timing import StageRecord


def best(fn, n=5):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


d = Path(tempfile.mkdtemp())
t0 = time.perf_counter()
Catalog.open(d / "a.duckdb").close()
create = time.perf_counter() - t0
reopen = best(lambda: Catalog.open(d / "a.duckdb").close())
reopen_ro = best(lambda: Catalog.open(d / "a.duckdb", read_only=True).close())
print(
    f"create + migrate: {create * 1000:.0f} ms; reopen: {reopen * 1000:.0f} ms; "
    f"read-only open: {reopen_ro * 1000:.0f} ms"
)

n = 18 * 3600  # one hour of GPS5 at 18 Hz
t = np.arange(n) / 18.0
gps = pl.DataFrame(
    {
        "t": t,
        "utc": (np.datetime64("2026-05-01T00:00:00") + (t * 1e6).astype("timedelta64[us]")),
        "lat": 46 + t * 1e-5,
        "lon": 7 + t * 1e-5,
        "alt": 1000 - t * 0.1,
        "speed": np.full(n, 5.0),
        "fix": pl.Series(np.full(n, 3), dtype=pl.Int8),
        "dop": np.full(n, 1.0),
        "usable": np.ones(n, bool),
        "chapter": (t // 1060 + 1).astype(int),
    }
)
with Catalog.open(d / "a.duckdb") as c:
    k = [0]

    def ingest():
        k[0] += 1
        run = IngestedRun(
            f"rec{k[0]}",
            f"GX01{k[0]:04d}",
            "/card",
            None,
            3600.0,
            "HERO",
            tuple(
                MediaFileRecord(f"/card/GX0{ch}{k[0]:04d}.MP4", "video", ch, 4_000_000_000, f"id{k[0]}-{ch}")
                for ch in range(1, 5)
            ),
            gps=gps,
            hilights_s=(10.0, 20.0),
        )
        c.record_ingested_run(run)

    ing = best(ingest)
    again = best(
        lambda: c.record_ingested_run(IngestedRun("rec1", "x", "/card", None, None, None, (), gps=gps))
    )
    print(
        f"record_ingested_run, 1 h recording (4 chapters, {n} GPS samples): {ing * 1000:.0f} ms; "
        f"same card again (no-op): {again * 1000:.1f} ms"
    )
    ref = c.record_video_run("ref", "/v/ref.mp4")
    knots = np.linspace(0, 180, 600)

    def align():
        run = c.record_video_run(f"v{time.perf_counter_ns()}", "/v/x.mp4")
        with c.transaction():
            a = c.record_alignment(
                run,
                ref,
                ok=True,
                points=WarpPoints(knots, knots * 1.02, np.full(600, 0.9)),
                metrics={"coverage": 0.95},
            )
            c.record_markers(
                run,
                [MarkerRow(f"m{i}", i * 5.0, i * 5.0, 0.9) for i in range(30)],
                source="transferred",
                alignment_id=a,
            )
            c.record_stage_timings(
                [
                    StageRecord(s, started_at=time.time() + i, seconds=1.0)
                    for i, s in enumerate(["decode", "features", "matching", "path", "refine", "warp"])
                ],
                run_id=run,
            )

    al = best(align, 20)
    print(
        "one sync result (alignment + 600 warp knots + 30 markers + 6 timings, one transaction): "
        f"{al * 1000:.0f} ms"
    )
    for _ in range(480):  # a season of riding: ~500 aligned runs
        align()
    c.record_markers(ref, [MarkerRow(f"m{i}", i * 5.0) for i in range(30)], source="manual")
    tr = c.create_trail("Dummy Hill", reference_run_id=ref)
    c.execute("UPDATE runs SET trail_id = ?", [tr])
    nruns = c.query("SELECT count(*) AS n FROM runs")["n"][0]
    for name, sql in EXAMPLE_QUERIES.items():
        q = best(lambda sql=sql: run_sql(c, sql))
        print(f"example query {name} over {nruns} runs: {q * 1000:.1f} ms")
    q = best(lambda: run_sql(c, "SELECT * FROM splits"))
    print(f"splits view, all rows ({len(run_sql(c, 'SELECT * FROM splits'))}): {q * 1000:.1f} ms")
print(f"file size: {(d / 'a.duckdb').stat().st_size / 2**20:.1f} MiB")

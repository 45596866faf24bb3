"""A small known catalog: one trail, a reference run and four runs with markers (README examples)."""

from __future__ import annotations

from datetime import timedelta

from mtbsync.store.catalog import Catalog, MarkerRow, WarpPoints, utcnow
from mtbsync.timing import StageRecord

REFERENCE = {"start": 2.0, "gap jump": 10.0, "berm": 15.0, "finish": 30.0}
# run name -> (days ago, marker times in the order of REFERENCE; None = not placed)
RUNS = {
    "RUN_A": (0, [1.0, 8.5, 13.0, 26.0]),  # this month, span 25.0
    "RUN_B": (0, [3.0, 12.0, 18.0, 33.0]),  # this month, span 30.0, "gap jump" needs review
    "RUN_C": (40, [0.0, 6.0, 9.0, 22.0]),  # last month: fastest of all (22.0) but not this month
    "RUN_D": (1, [None, None, None, None]),  # not aligned
}


def build_known_catalog(catalog: Catalog) -> dict[str, int]:
    """Fill ``catalog`` with the known trail; returns run name -> run id."""
    now = utcnow()
    ids: dict[str, int] = {}
    with catalog.transaction():
        ref = catalog.record_video_run(
            "id-REF", "/videos/REF.mp4", name="REF", started_utc=now - timedelta(days=60)
        )
        ids["REF"] = ref
        trail = catalog.create_trail("Dummy Hill", reference_run_id=ref)
        catalog.record_markers(ref, [MarkerRow(name, t) for name, t in REFERENCE.items()], source="manual")
        for name, (days, times) in RUNS.items():
            run = catalog.record_video_run(
                f"id-{name}", f"/videos/{name}.mp4", name=name, started_utc=now - timedelta(days=days)
            )
            ids[name] = run
            catalog.assign_run(run, trail)
            ok = times[0] is not None
            alignment = catalog.record_alignment(
                run,
                ref,
                ok=ok,
                reason="" if ok else "too little coverage",
                points=WarpPoints([0.0, 30.0], [0.0, 31.0], [0.9, 0.9]) if ok else None,
                metrics={"coverage": 0.95 if ok else 0.1, "mean_confidence": 0.9 if ok else 0.0},
            )
            rows = [
                MarkerRow(
                    marker,
                    t,
                    REFERENCE[marker],
                    confidence=0.4 if (name == "RUN_B" and marker == "gap jump") or t is None else 0.9,
                    needs_review=(name == "RUN_B" and marker == "gap jump") or t is None,
                )
                for marker, t in zip(REFERENCE, times, strict=True)
            ]
            catalog.record_markers(run, rows, source="transferred", alignment_id=alignment)
        for k, (stage, seconds, device) in enumerate(
            [("decode", 2.0, "cpu"), ("matching", 1.0, "gpu"), ("decode", 4.0, "cpu")]
        ):
            record = StageRecord(stage, started_at=1_700_000_000.0 + k, seconds=seconds, device=device)
            catalog.record_stage_timings([record], run_id=ids["RUN_A"])
    return ids

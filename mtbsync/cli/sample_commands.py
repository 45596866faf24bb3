"""Sample data and the end-to-end demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mtbsync.cli._common import (
    EXIT_NOT_ALIGNED,
    EXIT_OK,
    SEED,
    ForceOpt,
    ThreadsOpt,
    alignment_table,
    app,
    build_config,
    console,
    progress_bars,
    sample_duration,
    timings_table,
    user_errors,
)
from mtbsync.cli.store_commands import frame_table
from mtbsync.io.files import OutputPlan

_DEMO_SPLITS_SQL = """
SELECT from_marker || ' -> ' || to_marker AS split, round(split_s, 2) AS "new run s",
       round(reference_split_s, 2) AS "reference s", round(delta_s, 2) AS "delta s"
FROM splits WHERE trail = 'Demo trail' AND NOT is_reference ORDER BY split_no
"""


def _plan_sample(plan: OutputPlan, out: Path) -> None:
    """Check the files a sample pair writes into ``out`` (a pair made there before is replaced or reused)."""
    from mtbsync.samples.synth import _pair_paths  # the one list of the pair's file names

    for path in _pair_paths(out).values():
        plan.add(path, "sample", replace_media=True)


def splits_table(splits: Any) -> Table:
    """The demo's splits (seconds, two decimals throughout)."""
    return frame_table(splits, title="Splits against the reference run (SQL view `splits`)", decimals=2)


@app.command()
def sample(
    out: Annotated[Path, typer.Argument(help="Folder for the generated pair.")] = Path("sample"),
    duration: Annotated[
        float,
        typer.Option(
            "--duration", parser=sample_duration(4), metavar="SECONDS", help="Seconds of the reference run."
        ),
    ] = 30.0,
    seed: Annotated[
        int, typer.Option("--seed", parser=SEED, metavar="INTEGER", help="Seed of the generated trail.")
    ] = 0,
    different_trail: Annotated[bool, typer.Option("--different-trail", help="A pair of two trails.")] = False,
    force: ForceOpt = False,
) -> None:
    """Generate a sample pair (reference + time-warped new run) with known truth."""
    from mtbsync.samples import make_different_trail_pair, make_sample_pair

    with user_errors(), OutputPlan(force=force) as plan:
        _plan_sample(plan, out)
        maker = make_different_trail_pair if different_trail else make_sample_pair
        pair = maker(out, duration_s=duration, seed=seed)
    console.print(f"Wrote {pair.reference}, {pair.new} and truth files in {pair.directory}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Working folder.")] = Path("demo_out"),
    duration: Annotated[
        float,
        typer.Option(
            "--duration", parser=sample_duration(6), metavar="SECONDS", help="Seconds of the reference run."
        ),
    ] = 30.0,
    threads: ThreadsOpt = 0,
    force: ForceOpt = False,
) -> None:
    """Generate a sample pair, run index -> sync -> transfer into a catalog, and score the markers."""
    from mtbsync.cli.align_commands import plan_sync_outputs
    from mtbsync.evaluate import read_truth_markers, score_markers
    from mtbsync.library.runs import open_catalog, record_sync, record_video
    from mtbsync.markers import read_reference_markers
    from mtbsync.pipeline import build_index
    from mtbsync.pipeline import sync as run_sync
    from mtbsync.samples import make_sample_pair, read_truth
    from mtbsync.timing import StageTimer

    with user_errors(), OutputPlan(force=force) as plan:
        config = build_config("default", False, threads, "auto")
        _plan_sample(plan, out)
        plan.add(out / "ref_index.npz", "index")
        plan_sync_outputs(plan, out / "sync", markers=True, plot=True)
        console.print(f"Generating a {duration:.0f} s sample pair in {out}/ ...")
        pair = make_sample_pair(out, duration_s=duration)
        reference_markers = read_reference_markers(pair.reference_markers_csv)
        timer = StageTimer()
        with progress_bars() as progress:
            build_index(pair.reference, out / "ref_index.npz", config, timer=timer, progress=progress)
            result = run_sync(
                pair.reference,
                pair.new,
                out / "sync",
                config,
                index_path=out / "ref_index.npz",
                markers=reference_markers,
                plot=True,
                truth=read_truth(pair.truth_csv),
                timer=timer,
                progress=progress,
            )
        db_path = out / "catalog.duckdb"
        with open_catalog(db_path) as catalog:
            record_sync(
                catalog,
                result,
                reference=pair.reference,
                new=pair.new,
                config=config,
                timer=timer,
                reference_markers=reference_markers,
                index_file=out / "ref_index.npz",
            )
            ref_run = record_video(catalog, pair.reference)
            trail = catalog.create_trail("Demo trail", reference_run_id=ref_run)
            catalog.assign_run(record_video(catalog, pair.new), trail)
            splits = catalog.query(_DEMO_SPLITS_SQL)
    console.print(timings_table(timer))
    console.print(alignment_table(result.alignment.warp))
    score = score_markers(result.markers or [], read_truth_markers(pair.truth_markers_csv), 1 / pair.new_fps)
    table = Table(title="Marker error against truth", title_justify="left", show_edge=False)
    for column in ("marker", "error (ms)", "error (frames)"):
        table.add_column(column, justify="left" if column == "marker" else "right")
    for name, err in zip(score.names, score.errors_s, strict=True):
        table.add_row(name, f"{err * 1000:+.0f}", f"{err * pair.new_fps:+.2f}")
    console.print(table)
    s = score.summary()
    if s.get("markers"):
        console.print(
            f"median {s['median_frames']:.2f} frames, p90 {s['p90_frames']:.2f}, max {s['max_frames']:.2f}; "
            f"{s['within_one_frame']:.0%} within one frame; wrongly placed {s['wrongly_placed']}, "
            f"missed {s['missed']}"
        )
    if splits.height:
        console.print(splits_table(splits))
    console.print(f"Outputs in {out}/sync (alignment.png, new_markers.csv, timewarp.json)")
    console.print(f'Catalog: {db_path}  (try: mtbsync sql --db {db_path} "SELECT * FROM run_summary")')
    raise typer.Exit(EXIT_OK if result.alignment.warp.ok else EXIT_NOT_ALIGNED)

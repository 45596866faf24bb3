"""Commands of the alignment core: index, sync, warp, transfer, plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mtbsync.cli._common import (
    EXIT_NOT_ALIGNED,
    EXIT_OK,
    FRACTION,
    KEYFRAME_FPS,
    RUN_DURATION,
    SECONDS_P90,
    TRACK_OFFSET,
    DbOption,
    DeviceOpt,
    FastOpt,
    ForceOpt,
    PresetOpt,
    ReviewThresholdOpt,
    ThreadsOpt,
    alignment_table,
    app,
    build_config,
    console,
    err_console,
    markers_table,
    placed_summary,
    progress_bars,
    results_shown,
    timings_table,
    user_errors,
    with_alignment_options,
)
from mtbsync.config import SyncConfig
from mtbsync.errors import ConfigError, MtbsyncError, OutputError
from mtbsync.io.files import OutputPlan

ChaptersOpt = Annotated[
    bool,
    typer.Option(
        "--chapters/--no-chapters",
        help="Given a GoPro recording's first chapter (GX01xxxx.MP4), join its later chapters "
        "(GX02xxxx, ...) found beside it as one timeline.",
    ),
]
FpsOpt = Annotated[
    float | None,
    typer.Option("--fps", parser=KEYFRAME_FPS, metavar="FLOAT", help="Keyframes per second (0.1 to 30)."),
]
# The warp's gates, the same in `sync` and `warp`.
MinInlierFracOpt = Annotated[
    float | None,
    typer.Option("--warp-min-inlier-frac", parser=FRACTION, metavar="FLOAT", help="Gate: verified share."),
]
MaxP90Opt = Annotated[
    float | None,
    typer.Option("--warp-max-p90", parser=SECONDS_P90, metavar="SECONDS", help="Gate: residual p90 (s)."),
]
MinCoverageOpt = Annotated[
    float | None,
    typer.Option("--warp-min-coverage", parser=FRACTION, metavar="FLOAT", help="Gate: coverage."),
]

# What `sync` writes into --out (`pipeline.sync`), with the kind each file is noted as.
SYNC_FILES = (
    ("pairs.csv", "pairs"),
    ("warp.npz", "warp"),
    ("timewarp.json", "timewarp"),
    ("warp.csv", "dense-warp"),
)
SYNC_MARKERS_FILE = ("new_markers.csv", "new-markers")
SYNC_PLOT_FILE = ("alignment.png", "plot")


def plan_sync_outputs(plan: OutputPlan, out: Path, *, markers: bool, plot: bool) -> None:
    """Check, before any decoding, every file a sync will write into ``out``."""
    if out.exists() and not out.is_dir():
        raise OutputError("is a file; --out needs a folder for the sync's files", path=out)
    files = [*SYNC_FILES, *([SYNC_MARKERS_FILE] if markers else []), *([SYNC_PLOT_FILE] if plot else [])]
    for name, kind in files:
        plan.add(out / name, kind)


def run_video(video: Path, join: bool) -> Path | list[Path]:
    """``video`` alone, or with the later chapters of its recording (notes on gaps are printed)."""
    if not join:
        return video
    from mtbsync.ingest.card import recording_chapters

    chapters, notes = recording_chapters(video)
    for note in notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    return list(chapters) if len(chapters) > 1 else video


def chapters_line(role: str, facts: dict) -> str | None:
    """``reference GX010123.MP4: 3 chapters joined (12:04)`` for a recording of chapters, else None."""
    chapters = facts.get("chapters") or []
    if len(chapters) < 2:
        return None
    minutes, seconds = divmod(round(float(facts.get("duration") or 0.0)), 60)
    return f"{role} {Path(chapters[0]).name}: {len(chapters)} chapters joined ({minutes}:{seconds:02d})"


@app.command()
def index(
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Reference run video.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index file to write (.npz).")] = Path(
        "ref_index.npz"
    ),
    fps: FpsOpt = 3.0,
    keyframes_only: Annotated[
        bool,
        typer.Option(
            "--keyframes-only", help="Decode only codec key frames (automatic when they are dense)."
        ),
    ] = False,
    proxy: Annotated[bool, typer.Option("--proxy", help="Use a GoPro .LRV proxy when present.")] = False,
    chapters: ChaptersOpt = True,
    fast: FastOpt = False,
    threads: ThreadsOpt = 0,
    preset_name: PresetOpt = "default",
    db: DbOption = None,
    force: ForceOpt = False,
) -> None:
    """Build the reference run's keyframe feature index."""
    from mtbsync.pipeline import build_index
    from mtbsync.timing import StageTimer

    with user_errors():
        config = build_config(
            preset_name,
            fast,
            threads,
            "auto",
            sample_fps=fps,
            prefer_proxy=proxy,
            mode="keyframes" if keyframes_only else None,
        )
        video = run_video(reference, chapters)
        timer = StageTimer()
        with OutputPlan([video], force=force) as plan, results_shown(), progress_bars() as progress:
            plan.add(out, "index")
            result = build_index(video, out, config, timer=timer, progress=progress)
    for warning in result.report.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    joined = chapters_line("reference", result.index.video)
    if joined:
        console.print(joined, highlight=False)
    console.print(
        f"Indexed {len(result.index)} keyframes of {reference} "
        f"({result.report.mode} decode, {result.index.feature_counts.mean():.0f} keypoints/frame) -> {out}"
    )
    console.print(timings_table(timer))
    from mtbsync.cli.store_commands import record_results
    from mtbsync.library.runs import record_index

    record_results(db, f"the index of {reference.name}", lambda c: record_index(c, video, out, result, timer))


# How each decode mode reads in a summary (decode and feature extraction overlap, so the timings table
# shows each one's busy time).
_DECODE_MODES = {
    "keyframes": "from key frames only",
    "full": "at the sampling rate",
    "proxy": "from its GoPro .LRV proxy",
}


@app.command()
def sync(
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Reference run video.")],
    new: Annotated[Path, typer.Option("--new", "-n", help="New run video.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("sync_out"),
    index_file: Annotated[
        Path | None, typer.Option("--index", help="Reference index from `mtbsync index`.")
    ] = None,
    reference_markers: Annotated[
        Path | None, typer.Option("--reference-markers", help="Also transfer these markers.")
    ] = None,
    review_threshold: ReviewThresholdOpt = 0.6,
    min_inlier_frac: MinInlierFracOpt = None,
    max_p90: MaxP90Opt = None,
    min_coverage: MinCoverageOpt = None,
    fps: FpsOpt = None,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Also write alignment.png.")] = True,
    reference_track: Annotated[
        Path | None, typer.Option("--reference-track", help="Reference run's GPS track (.gpx or .fit).")
    ] = None,
    new_track: Annotated[
        Path | None, typer.Option("--new-track", help="New run's GPS track (.gpx or .fit).")
    ] = None,
    track_offset: Annotated[
        float | None,
        typer.Option(
            "--track-offset",
            parser=TRACK_OFFSET,
            metavar="SECONDS",
            help="Seconds added to the track files' times (video time of the first point); "
            "default: estimated, applied only when confident.",
        ),
    ] = None,
    use_gps: Annotated[
        bool, typer.Option("--gps/--no-gps", help="Use the GPS embedded in the videos when present.")
    ] = True,
    chapters: ChaptersOpt = True,
    fast: FastOpt = False,
    threads: ThreadsOpt = 0,
    device: DeviceOpt = "auto",
    preset_name: PresetOpt = "default",
    features: Annotated[
        str,
        typer.Option(
            "--features",
            help="Local features: auto (ORB, then learned XFeat where ORB verifies too little), orb, xfeat.",
        ),
    ] = "auto",
    dense_warp: Annotated[
        str,
        typer.Option(
            "--dense-warp",
            help="Time every new keyframe at full reference frame rate: auto (short references), on, off.",
        ),
    ] = "auto",
    db: DbOption = None,
    force: ForceOpt = False,
) -> None:
    """Align a new run to the reference run; writes pairs.csv, warp.npz, warp.csv and timewarp.json."""
    from mtbsync.ingest.gpx import read_track_file
    from mtbsync.markers import read_reference_markers
    from mtbsync.pipeline import sync as run_sync
    from mtbsync.timing import StageTimer

    with user_errors():
        config = build_config(preset_name, fast, threads, device, sample_fps=fps)
        gates = {"min_inlier_frac": min_inlier_frac, "max_p90": max_p90, "min_coverage": min_coverage}
        config = config.with_overrides(gates={k: v for k, v in gates.items() if v is not None})
        config = with_alignment_options(config, features=features, dense=dense_warp)
        if track_offset is not None and not (reference_track or new_track):
            raise ConfigError("--track-offset applies to a --reference-track or --new-track file; none given")
        reference_video, new_video = run_video(reference, chapters), run_video(new, chapters)
        inputs = [reference_video, new_video, index_file, reference_markers, reference_track, new_track]
        plan = OutputPlan(inputs, force=force)
        # Every output checked before any decoding: a refused or unwritable --out costs nothing.
        plan_sync_outputs(plan, out, markers=reference_markers is not None, plot=plot)
        markers = read_reference_markers(reference_markers) if reference_markers else None
        reference_gps = read_track_file(reference_track) if reference_track else None
        new_gps = read_track_file(new_track) if new_track else None
        timer = StageTimer()
        with plan, results_shown(), progress_bars() as progress:
            result = run_sync(
                reference_video,
                new_video,
                out,
                config,
                index_path=index_file,
                markers=markers,
                review_threshold=review_threshold,
                plot=plot,
                timer=timer,
                progress=progress,
                reference_gps=reference_gps,
                new_gps=new_gps,
                use_gps=use_gps,
                reference_track_offset=track_offset,
                new_track_offset=track_offset,
            )
    for res in (result.reference, result.new):
        for warning in res.report.warnings if res else []:
            err_console.print(f"[yellow]warning:[/] {warning}")
    modes = [
        f"{label} {_DECODE_MODES.get(res.report.mode, res.report.mode)}"
        for label, res in (("reference", result.reference), ("new", result.new))
        if res
    ]
    console.print("Decoded " + ", ".join(modes) + ".", highlight=False)
    for role in ("reference", "new"):
        joined = chapters_line(role, result.alignment.warp.meta.get(role) or {})
        if joined:
            console.print(joined, highlight=False)
    console.print(timings_table(timer))
    console.print(alignment_table(result.alignment.warp))
    if result.markers is not None:
        console.print(markers_table(result.markers))
        console.print(placed_summary(result.markers), highlight=False)
    console.print("Wrote " + ", ".join(str(p) for p in result.files.values()))
    from mtbsync.cli.store_commands import record_results
    from mtbsync.library.runs import record_sync

    record_results(
        db,
        f"the alignment of {new.name}",
        lambda c: record_sync(
            c,
            result,
            reference=reference_video,
            new=new_video,
            config=config,
            timer=timer,
            reference_markers=markers,
            index_file=index_file,
        ),
    )
    raise typer.Exit(EXIT_OK if result.alignment.warp.ok else EXIT_NOT_ALIGNED)


@app.command()
def warp(
    pairs: Annotated[Path, typer.Option("--pairs", help="pairs.csv from `mtbsync sync` (or t_new,t_ref).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Warp file to write (.npz).")] = Path("warp.npz"),
    new_duration: Annotated[
        float | None, typer.Option("--new-duration", parser=RUN_DURATION, metavar="SECONDS", help="Seconds.")
    ] = None,
    ref_duration: Annotated[
        float | None, typer.Option("--ref-duration", parser=RUN_DURATION, metavar="SECONDS", help="Seconds.")
    ] = None,
    min_inlier_frac: MinInlierFracOpt = None,
    max_p90: MaxP90Opt = None,
    min_coverage: MinCoverageOpt = None,
    force: ForceOpt = False,
) -> None:
    """Fit the monotone warp to a pairs file (e.g. after editing pairs by hand)."""
    from mtbsync.align.refit import refit_warp

    with user_errors():
        gates = {"min_inlier_frac": min_inlier_frac, "max_p90": max_p90, "min_coverage": min_coverage}
        config = SyncConfig().with_overrides(gates={k: v for k, v in gates.items() if v is not None})
        with OutputPlan([pairs, pairs.with_name("timewarp.json")], force=force) as plan:
            plan.add(out, "warp")
            plan.add(out.with_name(out.stem + ".timewarp.json"), "timewarp")  # `refit_warp` writes it too
            fitted, written = refit_warp(
                pairs, out, config, new_duration=new_duration, ref_duration=ref_duration
            )
    console.print(alignment_table(fitted))
    console.print("Wrote " + ", ".join(str(p) for p in written))
    raise typer.Exit(EXIT_OK if fitted.ok else EXIT_NOT_ALIGNED)


def _transfer(
    reference_markers: Path,
    warp_file: Path,
    out: Path,
    review_threshold: float,
    refine: bool,
    device: str,
    db: Path | None = None,
    force: bool = False,
) -> None:
    from mtbsync.align.warp import load_warp
    from mtbsync.io.sources import videos_of_warp
    from mtbsync.io.video import video_label
    from mtbsync.markers import read_reference_markers, write_new_markers
    from mtbsync.markers.full_rate import transfer_with_refinement
    from mtbsync.timing import StageTimer

    with user_errors(), OutputPlan([reference_markers, warp_file], force=force) as plan:
        plan.add(out, "new-markers")
        config = build_config("default", False, 0, device)
        markers = read_reference_markers(reference_markers)
        fitted = load_warp(warp_file)
        videos = videos_of_warp(fitted) if refine and fitted.ok else None
        if refine and fitted.ok and videos is None:
            err_console.print(
                "[yellow]note:[/] the warp's videos are not available; markers follow the warp only"
            )
        _, transferred, anchors = transfer_with_refinement(
            markers,
            fitted,
            reference=videos[0] if videos else None,
            new=videos[1] if videos else None,
            config=config,
            review_threshold=review_threshold,
            timer=StageTimer(),
        )
        write_new_markers(out, transferred)
    if anchors:
        console.print(f"Timed {len(anchors)} markers at full frame rate in {video_label(videos[1])}")
    console.print(markers_table(transferred))
    console.print(f"{placed_summary(transferred)} -> {out}", highlight=False)
    from mtbsync.cli.store_commands import record_results
    from mtbsync.library.runs import record_transfer

    record_results(
        db,
        f"the markers in {out.name}",
        lambda c: record_transfer(c, fitted, transferred, warp_file=warp_file, reference_markers=markers),
    )
    if not fitted.ok:
        err_console.print(f"[red]not aligned:[/] {fitted.reason}")
        raise typer.Exit(EXIT_NOT_ALIGNED)


@app.command()
def transfer(
    reference_markers: Annotated[
        Path, typer.Option("--reference-markers", help="name,t_ref[,colour][,comment]")
    ],
    warp_file: Annotated[Path, typer.Option("--warp", help="warp.npz or timewarp.json from `mtbsync sync`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markers CSV to write.")] = Path("new_markers.csv"),
    review_threshold: ReviewThresholdOpt = 0.6,
    refine: Annotated[
        bool,
        typer.Option("--refine/--no-refine", help="Time markers at full frame rate when the videos exist."),
    ] = True,
    device: DeviceOpt = "auto",
    db: DbOption = None,
    force: ForceOpt = False,
) -> None:
    """Carry the reference run's markers onto the new run through the warp."""
    _transfer(reference_markers, warp_file, out, review_threshold, refine, device, db, force)


@app.command("transfer-markers")
def transfer_markers_alias(
    ref_markers: Annotated[Path, typer.Option("--ref-markers", help="name,t_ref[,colour][,comment]")],
    timewarp_json: Annotated[Path, typer.Option("--timewarp-json", help="timewarp.json or warp.npz.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markers CSV to write.")] = Path("new_markers.csv"),
    review_threshold: ReviewThresholdOpt = 0.6,
    refine: Annotated[bool, typer.Option("--refine/--no-refine")] = True,
    device: DeviceOpt = "auto",
    db: DbOption = None,
    force: ForceOpt = False,
) -> None:
    """Alias of `transfer` with the option names of earlier versions."""
    _transfer(ref_markers, timewarp_json, out, review_threshold, refine, device, db, force)


@app.command()
def plot(
    pairs: Annotated[Path, typer.Option("--pairs", help="pairs.csv from `mtbsync sync`.")],
    warp_file: Annotated[Path, typer.Option("--warp", help="warp.npz or timewarp.json.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("alignment.png"),
    markers: Annotated[Path | None, typer.Option("--markers", help="new_markers.csv to draw.")] = None,
    truth: Annotated[Path | None, typer.Option("--truth", help="t_new,t_ref truth CSV to draw.")] = None,
    force: ForceOpt = False,
) -> None:
    """Draw the alignment: pairs, fitted warp, confidence bands and markers (PNG)."""
    import numpy as np

    from mtbsync.align.pairs import read_pairs_csv
    from mtbsync.align.warp import load_warp
    from mtbsync.markers import read_new_markers
    from mtbsync.plot import plot_alignment

    with user_errors(), OutputPlan([pairs, warp_file, markers, truth], force=force) as plan:
        plan.add(out, "plot")
        truth_arr = None
        if truth is not None:
            try:
                truth_arr = np.loadtxt(truth, delimiter=",", skiprows=1, ndmin=2)
            except (OSError, ValueError):
                raise MtbsyncError("not a readable t_new,t_ref CSV", path=truth) from None
        written = plot_alignment(
            out,
            pairs=read_pairs_csv(pairs),
            warp=load_warp(warp_file),
            markers=read_new_markers(markers) if markers else None,
            truth=truth_arr,
        )
    console.print(f"Wrote {written}")

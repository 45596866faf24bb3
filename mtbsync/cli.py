"""The mtbsync command line: parse options, call the library, render the result.

Exit codes: 0 aligned / done, 1 user error (one red line), 3 ran but the runs are not aligned.
Set MTBSYNC_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mtbsync import __version__
from mtbsync.config import SyncConfig, preset
from mtbsync.errors import MtbsyncError

EXIT_OK, EXIT_USER_ERROR, EXIT_NOT_ALIGNED = 0, 1, 3

app = typer.Typer(
    name="mtbsync",
    help="Align repeated mountain-bike runs and carry the reference run's markers onto new runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err_console = Console(stderr=True)

ThreadsOpt = Annotated[int, typer.Option("--threads", help="Worker threads (0 = all cores).", min=0)]
FastOpt = Annotated[bool, typer.Option("--fast", help="Faster, slightly less precise (fast preset).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="Matching device: auto, cpu or gpu.")]
PresetOpt = Annotated[str, typer.Option("--preset", help="Parameter preset: default, fast, accurate.")]


def _version(value: bool) -> None:
    if value:
        console.print(f"mtbsync {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_time=False, show_path=False)],
        force=True,
    )


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn library errors into one red line and exit code 1 (tracebacks with MTBSYNC_DEBUG=1)."""
    try:
        yield
    except MtbsyncError as exc:
        if os.environ.get("MTBSYNC_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def _config(preset_name: str, fast: bool, threads: int, device: str, **decode: Any) -> SyncConfig:
    config = preset("fast" if fast else preset_name)
    if threads:
        _set_threads(threads)
    overrides = {k: v for k, v in decode.items() if v is not None}
    return config.with_overrides(decode={**overrides, "threads": threads}, match={"device": device})


def _set_threads(threads: int) -> None:
    import cv2

    from mtbsync.gpu import set_threads

    cv2.setNumThreads(threads)
    set_threads(threads)


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int | None], None]]:
    columns = (
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=max(total or 0, done) or None)

        yield update


def _timings_table(timer: Any, title: str = "Stage timings") -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("frames/items", justify="right")
    table.add_column("device")
    for record in timer.records:
        video = str(record.extra.get("video", "")).strip()
        name = f"{record.name} ({video})" if video else record.name
        table.add_row(name, f"{record.seconds:.2f}", str(record.frames or ""), record.device)
    table.add_row("[bold]total", f"[bold]{timer.total_seconds:.2f}", "", "")
    return table


def _alignment_table(warp: Any) -> Table:
    metrics = warp.metrics
    table = Table(title="Alignment", title_justify="left", show_header=False, show_edge=False)
    verdict = "[green]aligned[/]" if warp.ok else f"[red]not aligned[/]: {warp.reason}"
    table.add_row("result", verdict)
    if not warp.is_empty:
        table.add_row("covered (new)", f"{warp.new_range[0]:.2f}-{warp.new_range[1]:.2f} s")
        table.add_row("covered (reference)", f"{warp.ref_range[0]:.2f}-{warp.ref_range[1]:.2f} s")
    table.add_row(
        "verified path points", f"{metrics.get('verified_points', 0)} of {metrics.get('path_points', 0)}"
    )
    residuals = metrics.get("residuals_s")
    if residuals:
        table.add_row(
            "residual p50 / p90", f"{residuals['p50'] * 1000:.0f} / {residuals['p90'] * 1000:.0f} ms"
        )
    if "mean_confidence" in metrics:
        table.add_row("mean confidence", f"{metrics['mean_confidence']:.2f}")
    return table


def _markers_table(markers: list[Any]) -> Table:
    table = Table(title="Markers", title_justify="left", show_edge=False)
    for column in ("name", "t_ref", "t_new", "confidence", "review"):
        table.add_column(column, justify="right" if column.startswith(("t_", "conf")) else "left")
    for m in markers:
        t_new = f"{m.t_new:.3f}" if m.t_new is not None else "-"
        review = "[yellow]review[/]" if m.needs_review else ""
        table.add_row(m.name, f"{m.t_ref:.3f}", t_new, f"{m.confidence:.2f}", review)
    return table


@app.command()
def index(
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Reference run video.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index file to write (.npz).")] = Path(
        "ref_index.npz"
    ),
    fps: Annotated[float, typer.Option("--fps", help="Keyframes per second.", min=0.1, max=30)] = 3.0,
    keyframes_only: Annotated[
        bool,
        typer.Option(
            "--keyframes-only", help="Decode only codec key frames (automatic when they are dense)."
        ),
    ] = False,
    proxy: Annotated[bool, typer.Option("--proxy", help="Use a GoPro .LRV proxy when present.")] = False,
    fast: FastOpt = False,
    threads: ThreadsOpt = 0,
    preset_name: PresetOpt = "default",
) -> None:
    """Build the reference run's keyframe feature index."""
    from mtbsync.pipeline import build_index
    from mtbsync.timing import StageTimer

    with _user_errors():
        config = _config(
            preset_name,
            fast,
            threads,
            "auto",
            sample_fps=fps,
            prefer_proxy=proxy,
            mode="keyframes" if keyframes_only else None,
        )
        timer = StageTimer()
        with _progress() as progress:
            result = build_index(reference, out, config, timer=timer, progress=progress)
    for warning in result.report.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    console.print(
        f"Indexed {len(result.index)} keyframes of {reference} "
        f"({result.report.mode} decode, {result.index.feature_counts.mean():.0f} keypoints/frame) -> {out}"
    )
    console.print(_timings_table(timer))


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
    review_threshold: Annotated[float, typer.Option("--review-threshold", min=0, max=1)] = 0.6,
    min_inlier_frac: Annotated[float | None, typer.Option("--warp-min-inlier-frac", min=0, max=1)] = None,
    max_p90: Annotated[float | None, typer.Option("--warp-max-p90", help="Seconds.", min=0)] = None,
    min_coverage: Annotated[float | None, typer.Option("--warp-min-coverage", min=0, max=1)] = None,
    fps: Annotated[float | None, typer.Option("--fps", help="Keyframes per second (no index).")] = None,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Also write alignment.png.")] = True,
    fast: FastOpt = False,
    threads: ThreadsOpt = 0,
    device: DeviceOpt = "auto",
    preset_name: PresetOpt = "default",
) -> None:
    """Align a new run to the reference run; writes pairs.csv, warp.npz and timewarp.json."""
    from mtbsync.markers import read_reference_markers
    from mtbsync.pipeline import sync as run_sync
    from mtbsync.timing import StageTimer

    with _user_errors():
        config = _config(preset_name, fast, threads, device, sample_fps=fps)
        gates = {"min_inlier_frac": min_inlier_frac, "max_p90": max_p90, "min_coverage": min_coverage}
        config = config.with_overrides(gates={k: v for k, v in gates.items() if v is not None})
        markers = read_reference_markers(reference_markers) if reference_markers else None
        timer = StageTimer()
        with _progress() as progress:
            result = run_sync(
                reference,
                new,
                out,
                config,
                index_path=index_file,
                markers=markers,
                review_threshold=review_threshold,
                timer=timer,
                progress=progress,
            )
        if plot:
            from mtbsync.plot import plot_alignment

            with timer.stage("plot"):
                result.files["plot"] = plot_alignment(
                    out / "alignment.png",
                    pairs=result.alignment.pairs,
                    warp=result.alignment.warp,
                    markers=result.markers,
                    title=f"{new.name} -> {reference.name}",
                )
    for res in (result.reference, result.new):
        for warning in res.report.warnings if res else []:
            err_console.print(f"[yellow]warning:[/] {warning}")
    modes = [
        f"{label} {res.report.mode}"
        for label, res in (("reference", result.reference), ("new", result.new))
        if res
    ]
    console.print(
        "Decoded: " + ", ".join(modes) + " (decode and features overlap; their times are busy times)"
    )
    console.print(_timings_table(timer))
    console.print(_alignment_table(result.alignment.warp))
    if result.markers is not None:
        console.print(_markers_table(result.markers))
    console.print("Wrote " + ", ".join(str(p) for p in result.files.values()))
    raise typer.Exit(EXIT_OK if result.alignment.warp.ok else EXIT_NOT_ALIGNED)


@app.command()
def warp(
    pairs: Annotated[Path, typer.Option("--pairs", help="pairs.csv from `mtbsync sync` (or t_new,t_ref).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Warp file to write (.npz).")] = Path("warp.npz"),
    new_duration: Annotated[float | None, typer.Option("--new-duration", help="Seconds.")] = None,
    ref_duration: Annotated[float | None, typer.Option("--ref-duration", help="Seconds.")] = None,
    min_inlier_frac: Annotated[float | None, typer.Option("--warp-min-inlier-frac", min=0, max=1)] = None,
    max_p90: Annotated[float | None, typer.Option("--warp-max-p90", min=0)] = None,
    min_coverage: Annotated[float | None, typer.Option("--warp-min-coverage", min=0, max=1)] = None,
) -> None:
    """Fit the monotone warp to a pairs file (e.g. after editing pairs by hand)."""
    from mtbsync.pipeline import refit_warp

    with _user_errors():
        gates = {"min_inlier_frac": min_inlier_frac, "max_p90": max_p90, "min_coverage": min_coverage}
        config = SyncConfig().with_overrides(gates={k: v for k, v in gates.items() if v is not None})
        fitted, written = refit_warp(pairs, out, config, new_duration=new_duration, ref_duration=ref_duration)
    console.print(_alignment_table(fitted))
    console.print("Wrote " + ", ".join(str(p) for p in written))
    raise typer.Exit(EXIT_OK if fitted.ok else EXIT_NOT_ALIGNED)


def _transfer(
    reference_markers: Path, warp_file: Path, out: Path, review_threshold: float, refine: bool
) -> None:
    from mtbsync.align.warp import load_warp
    from mtbsync.markers import read_reference_markers, write_new_markers
    from mtbsync.pipeline import transfer_with_refinement, videos_of_warp
    from mtbsync.timing import StageTimer

    with _user_errors():
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
            config=SyncConfig(),
            review_threshold=review_threshold,
            timer=StageTimer(),
        )
        write_new_markers(out, transferred)
    if anchors:
        console.print(f"Timed {len(anchors)} markers at full frame rate in {videos[1].name}")
    console.print(_markers_table(transferred))
    placed = sum(m.t_new is not None for m in transferred)
    review = sum(m.needs_review for m in transferred)
    console.print(f"Placed {placed} of {len(transferred)} markers ({review} need review) -> {out}")
    if not fitted.ok:
        err_console.print(f"[red]not aligned:[/] {fitted.reason}")
        raise typer.Exit(EXIT_NOT_ALIGNED)


@app.command()
def transfer(
    reference_markers: Annotated[
        Path, typer.Option("--reference-markers", help="name,t_ref[,colour][,comment]")
    ],
    warp_file: Annotated[Path, typer.Option("--warp", help="warp.npz or timewarp.json from `mtbsync sync`.")],
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("new_markers.csv"),
    review_threshold: Annotated[float, typer.Option("--review-threshold", min=0, max=1)] = 0.6,
    refine: Annotated[
        bool,
        typer.Option("--refine/--no-refine", help="Time markers at full frame rate when the videos exist."),
    ] = True,
) -> None:
    """Carry the reference run's markers onto the new run through the warp."""
    _transfer(reference_markers, warp_file, out, review_threshold, refine)


@app.command("transfer-markers")
def transfer_markers_alias(
    ref_markers: Annotated[Path, typer.Option("--ref-markers", help="name,t_ref[,colour][,comment]")],
    timewarp_json: Annotated[Path, typer.Option("--timewarp-json", help="timewarp.json or warp.npz.")],
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("new_markers.csv"),
    review_threshold: Annotated[float, typer.Option("--review-threshold", min=0, max=1)] = 0.6,
    refine: Annotated[bool, typer.Option("--refine/--no-refine")] = True,
) -> None:
    """Alias of `transfer` with the option names of earlier versions."""
    _transfer(ref_markers, timewarp_json, out, review_threshold, refine)


@app.command()
def plot(
    pairs: Annotated[Path, typer.Option("--pairs", help="pairs.csv from `mtbsync sync`.")],
    warp_file: Annotated[Path, typer.Option("--warp", help="warp.npz or timewarp.json.")],
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("alignment.png"),
    markers: Annotated[Path | None, typer.Option("--markers", help="new_markers.csv to draw.")] = None,
    truth: Annotated[Path | None, typer.Option("--truth", help="t_new,t_ref truth CSV to draw.")] = None,
) -> None:
    """Draw the alignment: pairs, fitted warp, confidence bands and markers (PNG)."""
    import numpy as np

    from mtbsync.align.pairs import read_pairs_csv
    from mtbsync.align.warp import load_warp
    from mtbsync.markers import read_new_markers
    from mtbsync.plot import plot_alignment

    with _user_errors():
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


@app.command()
def sample(
    out: Annotated[Path, typer.Argument(help="Folder for the generated pair.")] = Path("sample"),
    duration: Annotated[float, typer.Option("--duration", min=4)] = 30.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    different_trail: Annotated[bool, typer.Option("--different-trail", help="A pair of two trails.")] = False,
) -> None:
    """Generate a sample pair (reference + time-warped new run) with known truth."""
    from mtbsync.samples import make_different_trail_pair, make_sample_pair

    with _user_errors():
        maker = make_different_trail_pair if different_trail else make_sample_pair
        pair = maker(out, duration_s=duration, seed=seed)
    console.print(f"Wrote {pair.reference}, {pair.new} and truth files in {pair.directory}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Working folder.")] = Path("demo_out"),
    duration: Annotated[float, typer.Option("--duration", min=6)] = 30.0,
    threads: ThreadsOpt = 0,
) -> None:
    """Generate a sample pair, run index -> sync -> transfer, and score the markers against truth."""
    from mtbsync.evaluate import read_truth_markers, score_markers
    from mtbsync.markers import read_reference_markers
    from mtbsync.pipeline import build_index
    from mtbsync.pipeline import sync as run_sync
    from mtbsync.samples import make_sample_pair
    from mtbsync.timing import StageTimer

    with _user_errors():
        config = _config("default", False, threads, "auto")
        console.print(f"Generating a {duration:.0f} s sample pair in {out}/ ...")
        pair = make_sample_pair(out, duration_s=duration)
        timer = StageTimer()
        with _progress() as progress:
            build_index(pair.reference, out / "ref_index.npz", config, timer=timer, progress=progress)
            result = run_sync(
                pair.reference,
                pair.new,
                out / "sync",
                config,
                index_path=out / "ref_index.npz",
                markers=read_reference_markers(pair.reference_markers_csv),
                timer=timer,
                progress=progress,
            )
        import numpy as np

        from mtbsync.plot import plot_alignment

        truth = np.loadtxt(pair.truth_csv, delimiter=",", skiprows=1, ndmin=2)
        plot_alignment(
            out / "sync" / "alignment.png",
            pairs=result.alignment.pairs,
            warp=result.alignment.warp,
            markers=result.markers,
            truth=truth,
            title="demo pair",
        )
    console.print(_timings_table(timer))
    console.print(_alignment_table(result.alignment.warp))
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
    console.print(f"Outputs in {out}/sync (alignment.png, new_markers.csv, timewarp.json)")
    raise typer.Exit(EXIT_OK if result.alignment.warp.ok else EXIT_NOT_ALIGNED)


ExportFpsOpt = Annotated[
    str | None,
    typer.Option("--fps", help="Frame rate (29.97, 30000/1001, 25); default: the new video's rate."),
]
ExportNdfOpt = Annotated[bool, typer.Option("--ndf", help="Non-drop-frame timecode at 29.97 and 59.94.")]
ExportStartOpt = Annotated[
    str, typer.Option("--start-tc", help="Timeline start timecode (Resolve's default is 01:00:00:00).")
]
ExportReelOpt = Annotated[str, typer.Option("--reel", help="EDL reel name (1-8 letters, digits, _).")]
ExportVideoOpt = Annotated[
    Path | None,
    typer.Option("--video", help="The new video (rate, duration); default: the one timewarp.json names."),
]


def _export(
    fmt: str,
    markers: Path,
    out: Path | None,
    fps: str | None,
    ndf: bool,
    start_tc: str,
    reel: str,
    video: Path | None,
) -> None:
    from mtbsync.export import export_markers_file

    with _user_errors():
        result = export_markers_file(
            markers, fmt, out, fps=fps, ndf=ndf, start_timecode=start_tc, reel=reel, video=video
        )
    if result.unknown_colours:
        err_console.print(
            "[yellow]warning:[/] colours written as the default (blue): "
            + ", ".join(repr(c) for c in result.unknown_colours),
            highlight=False,
        )
    rate = result.options.rate
    extra = [f"skipped {result.skipped} not placed"]
    if result.clamped:
        extra.append(f"clamped {result.clamped} past the video's end")
    if result.merged:
        extra.append(f"merged {result.merged} on a shared frame")
    console.print(
        f"Wrote {result.written} markers ({', '.join(extra)}) at {rate.label} fps, "
        f"start {rate.frames_to_timecode(result.options.start_frame)} -> {result.path}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("export")
def export(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="csv, edl, resolve-edl, fcpxml or premiere.")],
    markers: Annotated[
        Path, typer.Option("--markers", "-m", help="new_markers.csv from `mtbsync transfer`.")
    ],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write.")] = None,
    fps: ExportFpsOpt = None,
    ndf: ExportNdfOpt = False,
    start_tc: ExportStartOpt = "01:00:00:00",
    reel: ExportReelOpt = "001",
    video: ExportVideoOpt = None,
) -> None:
    """Export transferred markers for an editor (Resolve, Premiere, Final Cut Pro, Avid, CSV)."""
    _export(fmt, markers, out, fps, ndf, start_tc, reel, video)


@app.command("export-markers")
def export_markers_preset(
    markers: Annotated[Path, typer.Argument(help="new_markers.csv from `mtbsync transfer`.")],
    preset_name: Annotated[
        str, typer.Option("--preset", help="fcpxml, premiere or resolve-edl (or csv, edl).")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write; default: beside the CSV.")
    ] = None,
    fps: ExportFpsOpt = None,
    ndf: ExportNdfOpt = False,
    start_tc: ExportStartOpt = "01:00:00:00",
    video: ExportVideoOpt = None,
) -> None:
    """Export transferred markers with an editor preset (same as `mtbsync export`)."""
    _export(preset_name, markers, out, fps, ndf, start_tc, "001", video)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        sys.exit(130)

"""Editor exports: export, export-markers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mtbsync.cli._common import (
    DbOption,
    ForceOpt,
    app,
    console,
    err_console,
    user_errors,
)
from mtbsync.io.files import OutputPlan

# Checked by `FrameRate.from_string` (one red line for nan, 0, 12.5 ... like every export error).
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
    db: Path | None = None,
    force: bool = False,
) -> None:
    from mtbsync.cli.store_commands import record_results
    from mtbsync.export import FORMATS, export_markers_file, find_new_chapters
    from mtbsync.library.runs import record_export

    spec = FORMATS.get(fmt.strip().lower())
    with user_errors(), OutputPlan(_inputs_of(markers, video), force=force) as plan:
        if spec is not None:  # (an unknown format is the library's one line)
            out = plan.add(out if out is not None else spec.default_name(markers), f"export-{spec.name}")
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
    chapters = find_new_chapters(markers) if video is None else ()
    if chapters:
        # Editors see the chapter files one by one; the markers are timed on the recording they make.
        console.print(
            f"The clip is the joined recording: {len(chapters)} chapters from {chapters[0].name}; "
            f"marker times count from the start of {chapters[0].name}. Join the chapters into one clip "
            "in the editor before adding the markers.",
            highlight=False,
            soft_wrap=True,
        )
    record_results(db, f"the export {result.path.name}", lambda c: record_export(c, result, markers))


def _inputs_of(markers: Path, video: Path | None) -> list[Path | None]:
    """What an export reads: the markers, the video, and the timewarp.json (and chapters) beside them."""
    from mtbsync.export import find_new_chapters

    return [markers, video, markers.with_name("timewarp.json"), *find_new_chapters(markers)]


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
    per_chapter: Annotated[
        bool,
        typer.Option(
            "--per-chapter",
            help="For a new run recorded in chapters: one file per chapter file, on its own time "
            "(--out is then a folder).",
        ),
    ] = False,
    db: DbOption = None,
    force: ForceOpt = False,
) -> None:
    """Export transferred markers for an editor (Resolve, Premiere, Final Cut Pro, Avid, CSV)."""
    if per_chapter:
        _export_per_chapter(fmt, markers, out, fps, ndf, start_tc, reel, force)
        return
    _export(fmt, markers, out, fps, ndf, start_tc, reel, video, db, force)


def _export_per_chapter(
    fmt: str,
    markers: Path,
    out: Path | None,
    fps: str | None,
    ndf: bool,
    start_tc: str,
    reel: str,
    force: bool = False,
) -> None:
    from mtbsync.export import FORMATS, export_markers_per_chapter, find_new_chapters

    spec = FORMATS.get(fmt.strip().lower())
    with user_errors(), OutputPlan(_inputs_of(markers, None), force=force) as plan:
        folder = out if out is not None else markers.parent
        if spec is not None:
            # Every chapter's file (`export_markers_per_chapter` names them so; a chapter without a
            # placed marker gets none, but is checked all the same).
            for chapter in find_new_chapters(markers):
                name = f"{markers.stem}.{chapter.stem}{spec.default_suffix or spec.suffix}"
                plan.add(folder / name, f"export-{spec.name}")
        results = export_markers_per_chapter(
            markers, fmt, out, fps=fps, ndf=ndf, start_timecode=start_tc, reel=reel
        )
    for result in results:
        video = result.options.video_path.name if result.options.video_path else "?"
        console.print(
            f"Wrote {result.written} markers on {video}'s own time "
            f"({result.options.rate.label} fps) -> {result.path}",
            highlight=False,
            soft_wrap=True,
        )


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
    db: DbOption = None,
    force: ForceOpt = False,
) -> None:
    """Export transferred markers with an editor preset (same as `mtbsync export`)."""
    _export(preset_name, markers, out, fps, ndf, start_tc, "001", video, db, force)

"""Commands of the web dashboard: preview (one pair from files) and serve (a library; needs the catalog)."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from mtbsync.cli._common import (
    QUERY_SECONDS,
    DbOption,
    DeviceOpt,
    FastOpt,
    PresetOpt,
    ReviewThresholdOpt,
    SettleOpt,
    ThreadsOpt,
    app,
    build_config,
    console,
    err_console,
    progress_bars,
    timings_table,
    user_errors,
)
from mtbsync.cli.align_commands import ChaptersOpt, chapters_line, run_video

HostOpt = Annotated[
    str, typer.Option("--host", help="Address to listen on; anything but 127.0.0.1 needs a token.")
]
PortOpt = Annotated[int, typer.Option("--port", help="Port to listen on (0: a free one).", min=0, max=65535)]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="Write token (generated when not given).", envvar="MTBSYNC_TOKEN"),
]
OpenOpt = Annotated[bool, typer.Option("--open/--no-open", help="Open the dashboard in a browser.")]


@app.command()
def preview(
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Reference run video.")],
    new: Annotated[Path, typer.Option("--new", "-n", help="New run video.")],
    warp: Annotated[
        Path | None, typer.Option("--warp", help="warp.npz or timewarp.json (else `sync` runs first).")
    ] = None,
    markers: Annotated[
        Path | None, typer.Option("--markers", help="The new run's markers (new_markers.csv).")
    ] = None,
    reference_markers: Annotated[
        Path | None, typer.Option("--reference-markers", help="The reference run's markers CSV.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for edits and exports (default: NEW.mp4.mtbsync/)."),
    ] = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    token: TokenOpt = None,
    open_browser: OpenOpt = True,
    review_threshold: ReviewThresholdOpt = 0.6,
    chapters: ChaptersOpt = True,
    fast: FastOpt = False,
    threads: ThreadsOpt = 0,
    device: DeviceOpt = "auto",
    preset_name: PresetOpt = "default",
) -> None:
    """Review one pair in the browser: synced players, markers, the time-delta curve, exports.

    Your input files are never changed: edits go to the --out folder.
    """
    from mtbsync.io.video import probe, video_label
    from mtbsync.service import ApiServer, preview_app, preview_files, resolve_token

    with user_errors():
        token_value, generated = resolve_token(host, token)
        reference_video, new_video = run_video(reference, chapters), run_video(new, chapters)
        # Both videos must be readable before any work is announced (a missing file: one red line).
        probe(reference_video)
        probe(new_video)
        history = []
        if warp is None:
            warp, markers, history = _sync_first(
                reference_video,
                new_video,
                reference_markers,
                markers,
                out,
                review_threshold,
                fast=fast,
                threads=threads,
                device=device,
                preset_name=preset_name,
            )
        files = preview_files(
            reference_video,
            new_video,
            warp,
            new_markers=markers,
            reference_markers=reference_markers,
            out_dir=out,
        )
        fastapi_app, source = preview_app(
            files, host=host, token=token_value, review_threshold=review_threshold, history=history
        )
        infos = (source.ref_info, source.new_info)
        if any(info.is_chaptered for info in infos):
            err_console.print("Joining the chapters into one H.264 copy per run for the browser...")
            source.prepare_media()
        elif any(info.codec != "h264" for info in infos):
            err_console.print("Making H.264 copies for the browser (HEVC does not play there)...")
            source.prepare_media()
        server = ApiServer(fastapi_app, host=host, port=port, log_level="warning").bind()
    # The token travels only in this URL's fragment: the page trades it for a session cookie.
    url = f"{server.url}/#token={token_value}"
    for role, info in (("reference", source.ref_info), ("new", source.new_info)):
        joined = chapters_line(role, {"chapters": info.chapters, "duration": info.duration})
        if joined:
            console.print(joined, highlight=False)
    console.print(
        f"[bold]mtbsync preview[/] of {video_label(new_video)} against {video_label(reference_video)}: "
        f"[link={url}]{url}[/link]",
        soft_wrap=True,
    )
    if host in ("0.0.0.0", "::"):
        console.print("From other machines, use this machine's address on your network instead of 127.0.0.1.")
    console.print(f"Edits are saved in {source.out_dir}")
    if generated:
        console.print(
            f"Write token: [bold]{token_value}[/] (send as 'Authorization: Bearer {token_value}')",
            soft_wrap=True,
        )
    console.print("Press Ctrl-C to stop.")
    if open_browser:
        webbrowser.open(url)
    server.serve_forever()


def _sync_first(
    reference: Path | list[Path],
    new: Path | list[Path],
    reference_markers: Path | None,
    markers: Path | None,
    out: Path | None,
    review_threshold: float,
    *,
    fast: bool,
    threads: int,
    device: str,
    preset_name: str,
) -> tuple[Path, Path | None, list]:
    """Align the pair (``mtbsync sync``) into the output folder; returns the warp, markers and timings.

    ``reference`` and ``new`` are a file or a recording's chapter files (as `run_video` gives them).
    """
    from mtbsync.io.video import chapter_paths, video_label
    from mtbsync.markers import read_reference_markers
    from mtbsync.pipeline import sync as run_sync
    from mtbsync.timing import StageTimer

    first = chapter_paths(new)[0]
    out_dir = (out if out is not None else first.with_name(first.name + ".mtbsync")) / "sync"
    config = build_config(preset_name, fast, threads, device)
    ref_markers = read_reference_markers(reference_markers) if reference_markers else None
    timer = StageTimer()
    err_console.print(f"No --warp given: aligning {video_label(new)} to {video_label(reference)} first...")
    with progress_bars() as progress:
        result = run_sync(
            reference,
            new,
            out_dir,
            config,
            markers=ref_markers,
            review_threshold=review_threshold,
            timer=timer,
            progress=progress,
        )
    console.print(timings_table(timer))
    new_markers = result.files.get("markers", markers)
    return result.files["warp"], new_markers, list(timer.records)


@app.command()
def serve(
    library: Annotated[
        Path, typer.Option("--library", "-l", help="Folder card dumps are copied into (watched).")
    ],
    db: DbOption = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    token: TokenOpt = None,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, max=64, help="Runs processed at the same time.")
    ] = 1,
    settle: SettleOpt = 2.0,
    poll: Annotated[
        bool, typer.Option("--poll", help="Poll the library instead of OS notifications (network shares).")
    ] = False,
    open_browser: OpenOpt = False,
    review_threshold: ReviewThresholdOpt = 0.6,
    sql_timeout: Annotated[
        float,
        typer.Option(
            "--sql-timeout",
            parser=QUERY_SECONDS,
            metavar="SECONDS",
            envvar="MTBSYNC_SQL_TIMEOUT",
            help="Seconds a query of POST /api/sql (and `mtbsync sql` meanwhile) may run.",
        ),
    ] = 10.0,
    fast: FastOpt = False,
    threads: ThreadsOpt = 0,
    device: DeviceOpt = "auto",
    preset_name: PresetOpt = "default",
) -> None:
    """Watch a library folder, take each new run through the pipeline, and serve the dashboard.

    Runs go queued -> ingesting -> aligning -> ready / needs review / not aligned / failed.

    The service owns the catalog while it runs: `mtbsync sql`, `runs` and `trails` ask it.

    Ctrl-C stops; the queue resumes on the next start.
    """
    import signal

    from mtbsync.service import LibraryService

    if db is not None and str(db).lower() == "none":
        err_console.print("[bold red]error:[/] `mtbsync serve` needs the catalog: give --db FILE, not 'none'")
        raise typer.Exit(1)
    with user_errors():
        config = build_config(preset_name, fast, threads, device)
        service = LibraryService(
            library,
            db=db,
            host=host,
            port=port,
            token=token,
            workers=workers,
            config=config,
            settle_s=settle,
            review_threshold=review_threshold,
            force_polling=True if poll else None,
            sql_timeout_s=sql_timeout,
        )
        service.start()
    # `kill` (SIGTERM) stops as cleanly as Ctrl-C: running jobs resume on the next start either way.
    signal.signal(signal.SIGTERM, _interrupt)
    # The token travels only in this URL's fragment: the page trades it for a session cookie.
    url = f"{service.url}/#token={service.token}"
    console.print(
        f"[bold]mtbsync serve[/] {service.library} ({workers} worker{'s' if workers > 1 else ''}): "
        f"[link={url}]{url}[/link]",
        soft_wrap=True,
    )
    console.print(f"Catalog {service.db_path} (owned by this service); work files in {service.work_dir}")
    if service.token_generated:
        console.print(
            f"Write token: [bold]{service.token}[/] (send as 'Authorization: Bearer {service.token}')",
            soft_wrap=True,
        )
    console.print("Press Ctrl-C to stop.")
    if open_browser:
        webbrowser.open(url)
    service.serve_forever()
    console.print("stopped")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt

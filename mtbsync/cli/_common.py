"""Shared pieces of the command line: the Typer app, consoles, option types, error mapping, tables.

Exit codes: 0 aligned / done, 1 user error (one red line), 3 ran but the runs are not aligned.
Set MTBSYNC_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mtbsync import __version__
from mtbsync.config import SyncConfig, preset
from mtbsync.errors import IN_RESULT, ConfigError, MtbsyncError

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


@dataclass(frozen=True)
class NumberRule:
    """The one rule for a numeric option, used by every command that has the option (`typer.Option`'s
    ``parser``): a finite number (a whole one with ``whole``) from ``low`` to ``high``.

    ``nan``, ``inf``, ``1e309``, an empty or a non-number value, or one out of range is a usage error
    (exit code 2) whose message says what is expected, before any work starts.

    Attributes:
        low: The smallest value allowed (None: no bound).
        high: The largest value allowed (None: no bound).
        low_open: ``low`` itself is not allowed.
        whole: Whole numbers only.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    whole: bool = False

    def expected(self) -> str:
        """What the rule allows, in words (``a number above 0 and at most 30``)."""
        kind = "a whole number" if self.whole else "a number"
        low = None if self.low is None else f"{self.low:g}"
        high = None if self.high is None else f"{self.high:g}"
        if low is not None and high is not None:
            if self.low_open:
                return f"{kind} above {low} and at most {high}"
            return f"{kind} from {low} to {high}"
        if low is not None:
            return f"{kind} above {low}" if self.low_open else f"{kind} of at least {low}"
        if high is not None:
            return f"{kind} of at most {high}"
        return f"a finite {kind.split(' ', 1)[1]}" if not self.whole else kind

    def __call__(self, value: Any) -> float | int:
        """The value as a number, or `typer.BadParameter` saying what is expected."""
        if isinstance(value, bool):
            value = int(value)
        text = value.strip() if isinstance(value, str) else value
        try:
            number: float | int = int(text) if self.whole and isinstance(text, str) else float(text)
        except (TypeError, ValueError, OverflowError):
            number = math.nan
        if self.whole and isinstance(number, float) and number.is_integer():
            number = int(number)
        ok = not (isinstance(number, float) and (self.whole or not math.isfinite(number)))
        if ok and self.low is not None:
            ok = number > self.low if self.low_open else number >= self.low
        if ok and self.high is not None:
            ok = number <= self.high
        if not ok:
            raise typer.BadParameter(f"must be {self.expected()}, not {str(value)!r}")
        return number


# One rule per option; a command that has the option uses its alias (or the rule) below.
KEYFRAME_FPS = NumberRule(0.1, 30)
FRACTION = NumberRule(0, 1)
SECONDS_P90 = NumberRule(0, 3600)
TRACK_OFFSET = NumberRule(-86_400, 86_400)
RUN_DURATION = NumberRule(0, 86_400, low_open=True)
SETTLE_SECONDS = NumberRule(0, 3600)
GIVE_UP_SECONDS = NumberRule(0, 86_400)
WAIT_SECONDS = NumberRule(0, 3600)
PRUNE_DAYS = NumberRule(0, 36_500)
THREADS = NumberRule(0, 1024, whole=True)
SEED = NumberRule(0, 2**32 - 1, whole=True)
KEEP = NumberRule(0, 1_000_000_000, whole=True)
QUERY_SECONDS = NumberRule(0, 86_400, low_open=True)
ROWS = NumberRule(1, 1_000_000_000, whole=True)


def sample_duration(shortest: float) -> NumberRule:
    """``--duration`` of a generated pair: ``shortest`` seconds (the demo needs more) to an hour."""
    return NumberRule(shortest, 3600)


ThreadsOpt = Annotated[
    int, typer.Option("--threads", help="Worker threads (0 = all cores).", parser=THREADS, metavar="INTEGER")
]
ReviewThresholdOpt = Annotated[
    float,
    typer.Option(
        "--review-threshold",
        parser=FRACTION,
        metavar="FLOAT",
        help="Markers below this confidence are flagged for review (0 to 1).",
    ),
]
SettleOpt = Annotated[
    float,
    typer.Option(
        "--settle",
        parser=SETTLE_SECONDS,
        metavar="SECONDS",
        help="Seconds a file must stay unchanged before it counts as complete.",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace existing files mtbsync did not write there (never one of the command's inputs).",
    ),
]
FastOpt = Annotated[bool, typer.Option("--fast", help="Faster, slightly less precise (fast preset).")]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device", help="Matching device: auto (the GPU when CuPy and a CUDA device answer), cpu or gpu."
    ),
]
PresetOpt = Annotated[str, typer.Option("--preset", help="Parameter preset: default, fast, accurate.")]
DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        envvar="MTBSYNC_DB",
        help="Catalog database (default: the user data dir; 'none' = do not record).",
        show_default=False,
    ),
]


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
    no_gpu: Annotated[
        bool, typer.Option("--no-gpu", help="Never use or probe a GPU (matching, decoding, telemetry).")
    ] = False,
) -> None:
    if no_gpu:
        # The library reads this everywhere a GPU could be touched: matching backend, NVDEC, NVML.
        os.environ["MTBSYNC_NO_GPU"] = "1"
    handler = RichHandler(console=err_console, show_time=False, show_path=False)
    handler.addFilter(_unless_in_result)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[handler],
        force=True,
    )


# Open `results_shown` blocks: while one runs, log records marked `IN_RESULT` are not printed.
_showing_results = 0


def _unless_in_result(record: logging.LogRecord) -> bool:
    """Logging filter: False (drop) for a record the running command prints itself from the result."""
    return not (_showing_results and any(getattr(record, key, False) for key in IN_RESULT))


@contextmanager
def results_shown() -> Iterator[None]:
    """Run a library call whose result's warnings the command prints: each warning then shows once.

    The library logs some warnings and also returns them (decode reports, GPS notes, re-alignment
    reasons; marked with `mtbsync.errors.IN_RESULT`); inside this block the log line is left out.
    A counter, not a context variable: the records come from the pipeline's worker threads too.
    """
    global _showing_results
    _showing_results += 1
    try:
        yield
    finally:
        _showing_results -= 1


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one red line and exit code 1 (tracebacks with MTBSYNC_DEBUG=1)."""
    try:
        yield
    except MtbsyncError as exc:
        if os.environ.get("MTBSYNC_DEBUG"):
            raise
        # escape: messages quote paths and commands with brackets (pip install 'mtbsync[gpu]').
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def build_config(preset_name: str, fast: bool, threads: int, device: str, **decode: Any) -> SyncConfig:
    config = preset("fast" if fast else preset_name)
    if threads:
        _set_threads(threads)
    overrides = {k: v for k, v in decode.items() if v is not None}
    if device.strip().lower() != "auto":
        # Decide an explicit device now: `--device gpu` without a GPU fails before any decoding.
        from mtbsync.gpu import backend_name

        backend_name(device)
    return config.with_overrides(decode={**overrides, "threads": threads}, match={"device": device})


def with_alignment_options(config: SyncConfig, *, features: str, dense: str) -> SyncConfig:
    """``--features`` and ``--dense-warp`` checked and applied (one line for a wrong value).

    Raises:
        ConfigError: A value outside the choices.
    """
    features, dense = features.strip().lower(), dense.strip().lower()
    if features not in {"auto", "orb", "xfeat"}:
        raise ConfigError(f"--features must be auto, orb or xfeat, not {features!r}")
    if dense not in {"auto", "on", "off"}:
        raise ConfigError(f"--dense-warp must be auto, on or off, not {dense!r}")
    from dataclasses import replace

    return replace(config.with_overrides(features={"kind": features}), dense=dense)


def _set_threads(threads: int) -> None:
    import cv2

    from mtbsync.gpu import set_threads

    cv2.setNumThreads(threads)
    set_threads(threads)


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int | None], None]]:
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


def duration_text(seconds: float | None) -> str:
    """A run's length as a rider reads it: ``0:06``, ``4:05``, ``1:02:03`` ('' when unknown)."""
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def timings_table(timer: Any, title: str = "Stage timings") -> Table:
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


def alignment_table(warp: Any) -> Table:
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
    meta = getattr(warp, "meta", None) or {}
    model = meta.get("model")
    if model:
        names = {
            "vision-orb": "vision (ORB)",
            "vision-xfeat": "vision (learned features, XFeat)",
            "vision-sequence": "vision (image sequences alone: check every marker)",
            "gps": "GPS alone (position along the trail: check every marker)",
        }
        table.add_row("model", escape(names.get(model, model)))
    features = metrics.get("features")
    if features:
        table.add_row("", f"[dim]{escape(str(features.get('why', '')))}[/]")
    if model in ("gps", "vision-sequence"):
        table.add_row("", f"[yellow]{escape(str(meta.get('model_reason', '')))}[/]")
    dense = metrics.get("dense")
    if dense:
        text = (
            f"{dense['located']} of {dense['keyframes']} keyframes timed against "
            f"{dense['reference_frames']} reference frames"
            if dense.get("ran")
            else f"not run: {dense.get('why', '')}"
        )
        table.add_row("dense warp", escape(text))
    gps = metrics.get("gps")
    if gps:
        mode_text = str(gps.get("mode", ""))
        if not warp.ok:  # "aligned by vision alone" under a "not aligned" verdict reads as a contradiction
            mode_text = mode_text.replace("aligned by vision alone", "vision alone")
        table.add_row("GPS", mode_text)
        gps_map = gps.get("map")
        if gps_map:
            table.add_row(
                "GPS map",
                f"median {gps_map['median_distance_m']:.1f} m apart, {gps_map['near_fraction']:.0%} on the "
                f"same trail, +-{gps_map.get('map_sigma_s_median') or 0:.2f} s; "
                f"{gps.get('candidates', 0)} candidate pairs, {gps.get('filled_knots', 0)} knots filled",
            )
        mode = str(gps.get("mode", ""))
        for note in gps.get("notes", []):
            # "reference: GPS off (--no-gps)" repeats what the mode line already says.
            if str(note).split(": ", 1)[-1] in mode:
                continue
            # A track offset left unapplied is a warning (shown here only, not logged again).
            style = "yellow" if "NOT applied" in str(note) else "dim"
            table.add_row("", f"[{style}]{escape(str(note))}[/]")
    return table


def clock_text(seconds: float) -> str:
    """A moment in a video as an editor reads it: ``0:05.250``, ``1:05.250``, ``1:02:03.500``."""
    millis = round(max(seconds, 0.0) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours}:{minutes:02d}:{secs:02d}.{ms:03d}" if hours else f"{minutes}:{secs:02d}.{ms:03d}"


# Most markers `markers_table` shows: a file of thousands is read in its CSV, not in a terminal.
MARKERS_TABLE_ROWS = 50


def markers_table(markers: list[Any], *, max_rows: int = MARKERS_TABLE_ROWS) -> Table:
    """Markers with their times as m:ss.fff (the CSV files keep seconds); the first ``max_rows``."""
    more = len(markers) - max_rows
    caption = f"... and {more:,} more markers, in the markers CSV" if more > 0 else None
    table = Table(
        title="Markers", title_justify="left", show_edge=False, caption=caption, caption_justify="left"
    )
    for column in ("name", "t_ref", "t_new", "confidence", "review"):
        table.add_column(column, justify="right" if column.startswith(("t_", "conf")) else "left")
    for m in markers[:max_rows]:
        if m.t_new is None:
            # Not placed is not "review": there is nothing in the new run to check.
            table.add_row(m.name, clock_text(m.t_ref), "-", "-", "[dim]not placed[/]")
            continue
        review = "[yellow]review[/]" if m.needs_review else ""
        table.add_row(m.name, clock_text(m.t_ref), clock_text(m.t_new), f"{m.confidence:.2f}", review)
    return table


def placed_summary(markers: list[Any]) -> str:
    """``Placed 6 of 10 markers (2 to review, 4 not placed)``: the same words after sync and transfer."""
    placed = [m for m in markers if m.t_new is not None]
    parts = [f"{sum(m.needs_review for m in placed)} to review"]
    if len(placed) < len(markers):
        parts.append(f"{len(markers) - len(placed)} not placed")
    return f"Placed {len(placed)} of {len(markers)} markers ({', '.join(parts)})"

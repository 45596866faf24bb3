"""Runs and trails in the catalog: record what the pipeline produced, re-align, assign to trails.

The CLI and the service call these instead of writing the catalog themselves, so every result lands
the same way: the files on disk (indexes, warps, marker CSVs, exports) stay where they were written
and the catalog references them by path; each result is one transaction.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mtbsync.errors import IN_RESULT, CatalogError, CatalogLockedError, ConfigError, MtbsyncError
from mtbsync.store.catalog import Catalog, MarkerRow, WarpPoints, default_db_path
from mtbsync.store.records import MediaFileRecord
from mtbsync.timing import StageRecord, StageTimer

log = logging.getLogger("mtbsync")

T = TypeVar("T")

# MTBSYNC_DB=none (or --db none) turns recording off (scripts, tests of other areas).
_OFF = {"none", "off", "-"}


class TimingBuffer:
    """A `StageTimer` subscriber that keeps finished stages until their results are recorded.

    ``timer.subscribe(buffer)``; after the stage's results, ``catalog.record_stage_timings(buffer.drain(),
    run_id=...)`` in the same transaction, so timings and results land together.
    """

    def __init__(self) -> None:
        self._records: list[StageRecord] = []

    def __call__(self, record: StageRecord) -> None:
        self._records.append(record)

    def drain(self) -> list[StageRecord]:
        """The buffered records (the buffer is emptied)."""
        records, self._records = self._records, []
        return records


def catalog_disabled(db: Path | str | None) -> bool:
    """True when recording is switched off (``--db none`` / ``MTBSYNC_DB=none``)."""
    import os

    value = str(db) if db is not None else os.environ.get("MTBSYNC_DB", "")
    return value.strip().lower() in _OFF


def record_to_catalog(
    db: Path | str | None, what: str, record: Callable[[Catalog], T]
) -> tuple[T | None, str | None]:
    """Run ``record(catalog)`` in one transaction on a catalog opened for it, never failing the command.

    A command's files are its real output; the catalog is a record of them. If the catalog cannot be
    opened (held by a running service, unwritable) or recording fails, the files stay and the caller
    gets one line to show the rider.

    Args:
        db: The catalog file (None: ``$MTBSYNC_DB`` / the user data dir; ``"none"``: do not record).
        what: What is being recorded, for the message ("the alignment of GX010123").
        record: Writes the results.

    Returns:
        (the value ``record`` returned, None) or (None, a one-line note of what was not recorded).
    """
    if catalog_disabled(db):
        return None, None
    path = Path(db) if db is not None else default_db_path()
    try:
        with Catalog.open(path) as catalog, catalog.transaction():
            return record(catalog), None
    except CatalogLockedError as exc:
        from mtbsync.store.service_file import read_live_service

        service = read_live_service(path)
        holder = f"the mtbsync service at {service.url}" if service else "another mtbsync process"
        log.info("catalog locked: %s", exc)
        return None, f"{what} was not recorded in the catalog {path}: {holder} holds it"
    except MtbsyncError as exc:
        return None, f"{what} was not recorded in the catalog: {exc}"


# ---------------------------------------------------------------------- recording pipeline results


def record_video(catalog: Catalog, video: Any, *, identity: str | None = None) -> int:
    """Record (or find) the run that is this video: one file, or a recording's chapter files in order.

    A recording's identity is the same whether it came from a card ingest or the CLI, so both find
    the same run.

    Args:
        catalog: The open catalog.
        video: The video file, or its chapter files (any `io.video.VideoSource`).
        identity: Its content identity when already known (skips reading the file).

    Returns:
        The run id.
    """
    from mtbsync.io.video import chapter_paths, probe

    if identity is not None:
        found = catalog.run_id_for_identity(identity)
        if found is not None:
            return found
    info = probe(video)
    found = catalog.run_id_for_identity(info.identity)
    if found is not None:
        return found
    media = []
    for chapter, path in enumerate(chapter_paths(video), start=1):
        part = probe(path) if info.is_chaptered else info
        media.append(
            MediaFileRecord(
                path=str(path.resolve()),
                role="video",
                chapter=chapter,
                size=path.stat().st_size,
                identity=part.identity,
                duration_s=part.duration,
                width=part.width,
                height=part.height,
                fps=float(part.fps),
                codec=part.codec,
            )
        )
    first = chapter_paths(video)[0]
    return catalog.record_video_run(info.identity, first, duration_s=info.duration, media=tuple(media))


def _run_for_facts(catalog: Catalog, facts: dict[str, Any]) -> int | None:
    """The run of a video described by an index's or warp's provenance (path, identity)."""
    identity = facts.get("identity")
    if identity:
        found = catalog.run_id_for_identity(str(identity))
        if found is not None:
            return found
    path = facts.get("path")
    if path and Path(path).is_file():
        return record_video(catalog, path)
    if identity:
        return catalog.record_video_run(
            str(identity), path or f"unknown:{identity}", duration_s=facts.get("duration")
        )
    return None


def _timings_by_run(
    catalog: Catalog, records: Sequence[StageRecord], ref_run: int | None, new_run: int | None
) -> None:
    ref = [r for r in records if str(r.extra.get("video", "")).strip().startswith("reference")]
    new = [r for r in records if r not in ref]
    if ref:
        catalog.record_stage_timings(ref, run_id=ref_run)
    if new:
        catalog.record_stage_timings(new, run_id=new_run)


def record_index(
    catalog: Catalog, reference: str | Path, index_file: str | Path, result: Any, timer: StageTimer
) -> int:
    """Record ``mtbsync index``: the reference run, its index file and the stage timings.

    Args:
        catalog: The open catalog.
        reference: The video indexed.
        index_file: The written index (.npz).
        result: The pipeline's `KeyframeResult`.
        timer: The timer the stages ran under.

    Returns:
        The run id.
    """
    with catalog.transaction():
        run_id = record_video(catalog, reference, identity=result.info.identity)
        catalog.record_index(run_id, index_file, keyframes=len(result.index), params=result.index.params)
        catalog.record_stage_timings(timer.records, run_id=run_id)
    return run_id


def _marker_rows(markers: Sequence[Any]) -> list[MarkerRow]:
    rows = []
    for m in markers:
        if hasattr(m, "t_new"):  # TransferredMarker
            rows.append(
                MarkerRow(m.name, m.t_new, m.t_ref, m.confidence, m.needs_review, m.colour, m.comment)
            )
        else:  # Marker of the reference run
            rows.append(MarkerRow(m.name, m.t_ref, None, 1.0, False, m.colour, m.comment))
    return rows


def _warp_points(warp: Any) -> WarpPoints:
    return WarpPoints(warp.t_new.tolist(), warp.t_ref.tolist(), warp.confidence.tolist())


def _config_params(config: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    return asdict(config) if is_dataclass(config) else dict(config or {})


def record_alignment(
    catalog: Catalog,
    warp: Any,
    *,
    ref_run: int,
    new_run: int,
    params: dict[str, Any] | None = None,
    warp_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    transferred: Sequence[Any] | None = None,
) -> int:
    """Record a warp (gates, metrics, knots) and the markers carried through it.

    Returns:
        The alignment id.
    """
    with catalog.transaction():
        alignment_id = catalog.record_alignment(
            new_run,
            ref_run,
            ok=bool(warp.ok),
            reason=warp.reason,
            points=_warp_points(warp),
            metrics=warp.metrics,
            gates=warp.gates,
            params=params,
            warp_path=warp_path,
            out_dir=out_dir,
        )
        if transferred is not None:
            catalog.record_markers(
                new_run, _marker_rows(transferred), source="transferred", alignment_id=alignment_id
            )
    return alignment_id


def pin_anchor(
    base: Any,
    anchors: Sequence[tuple[float, float]],
    t_new: float,
    t_ref: float,
    *,
    frame_s: float,
    reference_markers: Sequence[Any],
    review_threshold: float,
    timer: StageTimer,
) -> tuple[list[tuple[float, float]], Any, list[Any]]:
    """Add the anchor (t_new, t_ref), refit ``base`` through all anchors and re-transfer the markers.

    The review views (a library's runs, a preview's pair) pin the same way; each records the result
    its own way.

    Args:
        base: The warp the anchors pin (the fitted one, not an earlier pinned one).
        anchors: The anchors already set, ``(t_new, t_ref)``.
        t_new: The new anchor's time in the new run (s).
        t_ref: Its time in the reference run (s).
        frame_s: One frame of the new run (s): an anchor within it of ``t_new`` is replaced.
        reference_markers: The reference's markers to carry through the pinned warp.
        review_threshold: Confidence under which a transferred marker needs review.
        timer: Times the "refit" and "transfer" stages.

    Returns:
        (the anchors in order, the pinned warp, the transferred markers).
    """
    from mtbsync.align.fit import pin_warp
    from mtbsync.markers import transfer_markers

    # A new anchor replaces one within a frame of it: the user corrected their own pin.
    kept = [(float(a), float(b)) for a, b in anchors if abs(float(a) - t_new) > frame_s]
    pinned = sorted([*kept, (float(t_new), float(t_ref))])
    with timer.stage("refit", frames=len(pinned)):
        warp = pin_warp(base, [a for a, _ in pinned], [b for _, b in pinned])
    with timer.stage("transfer", frames=len(reference_markers)):
        transferred = transfer_markers(reference_markers, warp, review_threshold=review_threshold)
    return pinned, warp, transferred


def record_sync(
    catalog: Catalog,
    result: Any,
    *,
    reference: str | Path,
    new: str | Path,
    config: Any,
    timer: StageTimer,
    reference_markers: Sequence[Any] | None = None,
    index_file: str | Path | None = None,
) -> int:
    """Record ``mtbsync sync``: both runs, the alignment, its warp, markers and stage timings.

    Args:
        catalog: The open catalog.
        result: The pipeline's `SyncResult`.
        reference: The reference video.
        new: The new video.
        config: The `SyncConfig` used (its hash keys the alignment).
        timer: The timer the stages ran under.
        reference_markers: The reference markers given (recorded as the reference run's manual markers).
        index_file: The reference index used, if any.

    Returns:
        The alignment id.
    """
    warp = result.alignment.warp
    with catalog.transaction():
        ref_run = _run_for_facts(catalog, dict(warp.meta.get("reference") or {})) or record_video(
            catalog, reference
        )
        new_run = record_video(catalog, new, identity=result.new.info.identity)
        if index_file is not None:
            catalog.record_index(ref_run, index_file)
        if reference_markers is not None:
            catalog.record_markers(ref_run, _marker_rows(reference_markers), source="manual")
        alignment_id = record_alignment(
            catalog,
            warp,
            ref_run=ref_run,
            new_run=new_run,
            params=_config_params(config),
            warp_path=result.files.get("warp"),
            out_dir=result.out_dir,
            transferred=result.markers,
        )
        _timings_by_run(catalog, timer.records, ref_run, new_run)
    return alignment_id


def record_transfer(
    catalog: Catalog,
    warp: Any,
    transferred: Sequence[Any],
    *,
    warp_file: str | Path,
    reference_markers: Sequence[Any],
) -> int | None:
    """Record ``mtbsync transfer``: the markers carried onto the new run of a warp file.

    Returns:
        The new run's id, or None when the warp names no videos.
    """
    with catalog.transaction():
        ref_run = _run_for_facts(catalog, dict(warp.meta.get("reference") or {}))
        new_run = _run_for_facts(catalog, dict(warp.meta.get("new") or {}))
        if ref_run is None or new_run is None:
            return None
        catalog.record_markers(ref_run, _marker_rows(reference_markers), source="manual")
        existing = catalog.latest_alignment(new_run, ref_run)
        if existing is not None:
            catalog.record_markers(
                new_run,
                _marker_rows(transferred),
                source="transferred",
                alignment_id=existing["alignment_id"],
            )
        else:
            record_alignment(
                catalog,
                warp,
                ref_run=ref_run,
                new_run=new_run,
                warp_path=warp_file,
                transferred=transferred,
            )
    return new_run


def record_export(catalog: Catalog, result: Any, markers_csv: str | Path) -> int:
    """Record an editor export; its run is found through the folder the markers CSV was synced into.

    Returns:
        The export id.
    """
    folder = str(Path(markers_csv).resolve().parent)
    row = catalog.execute(
        "SELECT new_run_id, alignment_id FROM alignments WHERE out_dir = ? ORDER BY created_at DESC LIMIT 1",
        [folder],
    ).fetchall()
    run_id, alignment_id = (row[0][0], row[0][1]) if row else (None, None)
    return catalog.record_export(
        result.path, result.format, run_id=run_id, alignment_id=alignment_id, markers=result.written
    )


def sync_and_record(
    catalog: Catalog,
    reference: str | Path,
    new: str | Path,
    out_dir: str | Path,
    config: Any,
    *,
    timer: StageTimer,
    markers: Sequence[Any] | None = None,
    index_file: str | Path | None = None,
    **kwargs: Any,
) -> tuple[Any, int]:
    """`pipeline.sync` then `record_sync` (the service's and scripts' one call).

    Returns:
        (the `SyncResult`, the alignment id).
    """
    from mtbsync.pipeline import sync

    result = sync(
        reference,
        new,
        out_dir,
        config,
        index_path=index_file,
        markers=list(markers) if markers is not None else None,
        timer=timer,
        **kwargs,
    )
    alignment_id = record_sync(
        catalog,
        result,
        reference=reference,
        new=new,
        config=config,
        timer=timer,
        reference_markers=markers,
        index_file=index_file,
    )
    return result, alignment_id


# ---------------------------------------------------------------------- trails


@dataclass(frozen=True)
class Realigned:
    """One run re-aligned to a trail's (new) reference."""

    run_id: int
    ok: bool
    reason: str
    alignment_id: int | None


def resolve_run(catalog: Catalog, run: int | str) -> int:
    """A run's id from its number or its name (a name several runs share is refused, listing them).

    Raises:
        CatalogError: No such run, or an ambiguous name.
    """
    name = str(run)
    if not name.isdigit():
        # Runs recorded from the command line are named by file stem: many are called "new".
        same = [
            r[0]
            for r in catalog.execute(
                "SELECT run_id FROM runs WHERE name = ? ORDER BY run_id DESC", [name]
            ).fetchall()
        ]
        if len(same) > 1:
            ids = ", ".join(f"#{i}" for i in same[:5]) + (", ..." if len(same) > 5 else "")
            raise CatalogError(
                f"{len(same)} runs are called {name!r} ({ids}); give the run's number instead "
                "(see `mtbsync runs`)",
                path=catalog.path,
            )
    found = catalog.run_by_name(name)
    if found is None:
        raise CatalogError(f"no run {run!r} in the catalog (see `mtbsync runs`)", path=catalog.path)
    return found


def resolve_trail(catalog: Catalog, trail: int | str) -> int:
    """A trail's id from its number or name.

    Raises:
        CatalogError: No such trail.
    """
    found = catalog.trail_id(trail)
    if found is None:
        raise CatalogError(f"no trail {trail!r} in the catalog (see `mtbsync trails`)", path=catalog.path)
    return found


def _video_of(catalog: Catalog, run_id: int) -> list[Path]:
    """A run's video: its chapter files in order (one file for most runs), each still on disk."""
    rows = catalog.execute(
        "SELECT path FROM media_files WHERE run_id = ? AND role = 'video' ORDER BY chapter", [run_id]
    ).fetchall()
    paths = [str(r[0]) for r in rows if r[0]] or [str((catalog.run(run_id) or {}).get("video_path") or "")]
    for path in paths:
        if not path or not Path(path).is_file():
            raise CatalogError(f"the video of run #{run_id} is not at {path} any more", path=catalog.path)
    return [Path(p) for p in paths]


def index_matches(index_file: str | Path | None, videos: Any) -> bool:
    """Whether an index on disk was built from exactly this video (file or chapters); else rebuild it."""
    from mtbsync.features.index import load_index
    from mtbsync.io.video import probe

    if index_file is None:
        return False
    try:
        return load_index(index_file).video.get("identity") == probe(videos).identity
    except MtbsyncError:
        return False


def _reference_markers(catalog: Catalog, run_id: int) -> tuple[list[Any], str]:
    """A run's markers as reference markers, and the source they came from ("" when none)."""
    from mtbsync.markers.model import Marker

    for source in ("manual", "transferred"):
        frame = catalog.markers(run_id, source=source)
        frame = frame.filter(frame["t"].is_not_null())
        if len(frame):
            rows = frame.sort("ordinal").iter_rows(named=True)
            markers = [
                Marker(r["name"], float(r["t"]), r["colour"] or "", (r["comment"] or "").split(" | ")[0])
                for r in rows
            ]
            return markers, source
    # A reference nobody gave markers yet: the camera's HiLights are the rider's own marks on it.
    frame = catalog.markers(run_id, source="hilight")
    frame = frame.filter(frame["t"].is_not_null()).sort("t")
    markers = [
        Marker(f"HiLight {k}", float(r["t"]), r["colour"] or "", "camera HiLight")
        for k, r in enumerate(frame.iter_rows(named=True), start=1)
    ]
    return markers, "hilight" if markers else ""


def reference_markers_of(catalog: Catalog, run_id: int) -> list[Any]:
    """A run's markers as reference markers.

    Its manual ones, else its placed transferred ones, else its camera HiLights in time order named
    "HiLight 1", "HiLight 2", ... (a reference nobody gave markers yet).

    Args:
        catalog: The open catalog.
        run_id: The run.

    Returns:
        The markers (`markers.Marker`), empty when the run has none.
    """
    return _reference_markers(catalog, run_id)[0]


def set_reference(
    catalog: Catalog,
    trail: int | str,
    run: int | str,
    *,
    config: Any = None,
    realign: bool = True,
    out_root: str | Path | None = None,
    timer: StageTimer | None = None,
    review_threshold: float = 0.6,
) -> list[Realigned]:
    """Make ``run`` the trail's reference and re-align the trail's other runs to it.

    The new reference's markers are its manual ones, or (when it has none) its transferred ones made
    manual. Markers a user moved by hand on the other runs keep their times.

    Args:
        catalog: The open (writable) catalog.
        trail: Trail name or id.
        run: Run name or id.
        config: `SyncConfig` for the re-alignments (default parameters when None).
        realign: Re-align the other runs (False: only switch the reference).
        out_root: Where re-alignments write their files (default: ``alignments/`` beside the catalog).
        timer: Stage timer (a new one when None).
        review_threshold: Confidence under which a transferred marker needs review.

    Returns:
        One `Realigned` per other run (empty with ``realign=False``).

    Raises:
        CatalogError: Unknown trail or run, or a video that moved away.
    """
    from mtbsync.config import SyncConfig
    from mtbsync.pipeline import sync

    trail_id = resolve_trail(catalog, trail)
    run_id = resolve_run(catalog, run)
    markers, source = _reference_markers(catalog, run_id)
    # Find the new reference's video before switching: a moved video must leave the trail as it was.
    ref_video = _video_of(catalog, run_id) if realign else None
    with catalog.transaction():
        catalog.set_reference_run(trail_id, run_id)
        if source == "transferred":  # HiLights stay HiLights: they serve while there is no manual set
            catalog.record_markers(run_id, _marker_rows(markers), source="manual")
    if not realign:
        return []
    config = config or SyncConfig()
    timer = timer or StageTimer()
    out_root = Path(out_root) if out_root is not None else catalog.path.parent / "alignments"
    ref_video = ref_video or _video_of(catalog, run_id)
    index_file = catalog.latest_index(run_id)
    if not index_matches(index_file, ref_video):
        index_file = None  # built from other files (e.g. one chapter): sync indexes the reference anew
    done: list[Realigned] = []
    for other in catalog.trail_runs(trail_id):
        if other == run_id:
            continue
        try:
            new_video = _video_of(catalog, other)
            start = len(timer.records)
            result = sync(
                ref_video,
                new_video,
                out_root / f"run{other}-to-run{run_id}",
                config,
                index_path=index_file,
                markers=markers or None,
                review_threshold=review_threshold,
                timer=timer,
            )
        except MtbsyncError as exc:
            log.warning("run #%d not re-aligned: %s", other, exc, extra=IN_RESULT)
            done.append(Realigned(other, False, str(exc), None))
            continue
        warp = result.alignment.warp
        with catalog.transaction():
            alignment_id = record_alignment(
                catalog,
                warp,
                ref_run=run_id,
                new_run=other,
                params=_config_params(config),
                warp_path=result.files.get("warp"),
                out_dir=result.out_dir,
                transferred=result.markers,
            )
            _timings_by_run(catalog, timer.records[start:], run_id, other)
        done.append(Realigned(other, bool(warp.ok), warp.reason, alignment_id))
    return done


# ---------------------------------------------------------------------- reference markers


@dataclass(frozen=True)
class MarkerUpdate:
    """What `set_run_markers` did.

    Attributes:
        run_id: The run whose markers were set.
        markers: How many markers it now has as its manual set.
        trail_id: The trail it is the reference of (None: it is no trail's reference).
        transferred: Ids of the trail's runs the markers were carried onto (through an OK alignment).
        not_aligned: Ids of the trail's runs without an OK alignment to it (markers recorded as not
            placed where a failed alignment exists; nothing for runs never aligned).
    """

    run_id: int
    markers: int
    trail_id: int | None = None
    transferred: tuple[int, ...] = ()
    not_aligned: tuple[int, ...] = ()


def alignment_warp(catalog: Catalog, row: dict[str, Any]) -> Any:
    """The warp of an alignment row: the warp file it references, else the catalog's knots.

    Args:
        catalog: The open catalog.
        row: An ``alignments`` row as a dict (`Catalog.latest_alignment`).

    Returns:
        The `align.warp.Warp`.
    """
    import json

    from mtbsync.align.warp import Warp, load_warp

    path = row.get("warp_path")
    if path and Path(path).is_file():
        try:
            return load_warp(path)
        except MtbsyncError as exc:
            log.info("alignment #%s: warp file unusable (%s); using its knots", row["alignment_id"], exc)
    points = catalog.warp_points(int(row["alignment_id"]))

    def loads(text: Any) -> dict[str, Any]:
        try:
            value = json.loads(text) if text else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    return Warp(
        points["t_new"].to_numpy(),
        points["t_ref"].to_numpy(),
        points["confidence"].to_numpy(),
        ok=bool(row["ok"]),
        reason=str(row.get("reason") or ""),
        metrics=loads(row.get("metrics")),
        gates=loads(row.get("gates")),
    )


def _alignment_to(catalog: Catalog, new_run: int, ref_run: int) -> dict[str, Any] | None:
    """The run's newest OK alignment to ``ref_run``, else its newest one, else None."""
    frame = catalog.query(
        "SELECT * FROM alignments WHERE new_run_id = ? AND ref_run_id = ? "
        "ORDER BY ok DESC, created_at DESC, alignment_id DESC LIMIT 1",
        [new_run, ref_run],
    )
    return frame.row(0, named=True) if len(frame) else None


def _check_markers(catalog: Catalog, run_id: int, markers: Sequence[Any]) -> None:
    duration = (catalog.run(run_id) or {}).get("duration_s")
    for m in markers:
        if not str(m.name).strip():
            raise ConfigError(f"a marker of run #{run_id} has no name")
        t = float(m.t_ref)
        if not math.isfinite(t) or t < 0:
            raise ConfigError(f"marker {m.name!r}: time {t} s is not a time in the run")
        if duration and t > float(duration) + 1e-6:
            raise ConfigError(
                f"marker {m.name!r} at {t:.3f} s is past the end of run #{run_id} ({float(duration):.3f} s)"
            )


def set_run_markers(
    catalog: Catalog,
    run: int | str,
    markers: Sequence[Any],
    *,
    retransfer: bool = True,
    review_threshold: float = 0.6,
) -> MarkerUpdate:
    """Give a run its markers (its manual set) and carry them onto the trail's runs when it is a reference.

    The run's manual markers are replaced by ``markers``. When the run is a trail's reference, its
    reference markers (these, or its camera HiLights when ``markers`` is empty) are transferred to
    every other run of the trail through that run's newest OK alignment to it (the warp file the
    alignment references, else its knots), and timed at full frame rate in short windows of both
    videos when they are still there, as ``sync --reference-markers`` times them: one marker gets
    one time whichever way it was added. Markers a user moved by hand on those runs keep their
    times. Everything is recorded in one transaction.

    Args:
        catalog: The open (writable) catalog.
        run: Run name or id.
        markers: The markers (`markers.Marker`: name, t_ref in seconds of this run, colour, comment).
        retransfer: Carry them onto the trail's other runs (False: only record them).
        review_threshold: Confidence under which a transferred marker needs review.

    Returns:
        What was recorded and which runs got the markers.

    Raises:
        CatalogError: Unknown run.
        ConfigError: A marker without a name, or with a time outside the run.
    """
    run_id = resolve_run(catalog, run)
    _check_markers(catalog, run_id, markers)
    trail_id = catalog.execute(
        "SELECT min(trail_id) FROM trails WHERE reference_run_id = ?", [run_id]
    ).fetchall()[0][0]
    transferred: list[int] = []
    not_aligned: list[int] = []

    def carry(reference: list[Any]) -> list[tuple[int, int, list[Any], bool]]:
        carried_by_run = []
        for other in catalog.trail_runs(int(trail_id)):
            if other == run_id:
                continue
            row = _alignment_to(catalog, other, run_id)
            if row is None:
                not_aligned.append(other)  # the worker transfers them when it aligns the run
                continue
            warp = alignment_warp(catalog, row)
            carried = _transfer_timed(reference, warp, review_threshold=review_threshold)
            carried_by_run.append((other, int(row["alignment_id"]), carried, bool(warp.ok)))
        return carried_by_run

    carrying = trail_id is not None and retransfer
    # Decoding and matching happen before the transaction, which then only writes (an empty set
    # falls back to the run's HiLights, known once the empty set is recorded).
    carried_by_run = carry(list(markers)) if carrying and markers else []
    with catalog.transaction():
        # The whole list is the rider's new set: nothing of the old manual set is kept.
        catalog.record_markers(run_id, _marker_rows(markers), source="manual", keep_moved=False)
        if carrying and not markers:
            carried_by_run = carry(reference_markers_of(catalog, run_id))
        for other, alignment_id, carried, ok in carried_by_run:
            catalog.record_markers(
                other,
                _marker_rows(carried),
                source="transferred",
                alignment_id=alignment_id,
                keep_moved=True,
            )
            (transferred if ok else not_aligned).append(other)
    log.info(
        "run #%d: %d markers%s",
        run_id,
        len(markers),
        f", carried onto {len(transferred)} runs of trail #{trail_id}" if trail_id is not None else "",
    )
    return MarkerUpdate(
        run_id,
        len(markers),
        int(trail_id) if trail_id is not None else None,
        tuple(transferred),
        tuple(not_aligned),
    )


def _transfer_timed(markers: Sequence[Any], warp: Any, *, review_threshold: float) -> list[Any]:
    """Markers carried through ``warp`` and timed at full frame rate when its videos are still there."""
    from mtbsync.config import SyncConfig
    from mtbsync.io.sources import videos_of_warp
    from mtbsync.markers.full_rate import transfer_with_refinement
    from mtbsync.markers.transfer import transfer_markers

    videos = videos_of_warp(warp) if warp.ok and markers else None
    if videos is None:
        return transfer_markers(list(markers), warp, review_threshold=review_threshold)
    _, carried, _ = transfer_with_refinement(
        list(markers),
        warp,
        reference=videos[0],
        new=videos[1],
        config=SyncConfig(),
        review_threshold=review_threshold,
        timer=StageTimer(),
    )
    return carried


def _gps_points(catalog: Catalog, run_id: int, limit: int = 400) -> np.ndarray | None:
    frame = catalog.gps_samples(run_id)
    if len(frame) < 5:
        return None
    points = frame.select(["lat", "lon"]).drop_nulls().to_numpy()
    step = max(1, len(points) // limit)
    return points[::step]


def gps_overlap(a: np.ndarray, b: np.ndarray, radius_m: float = 30.0) -> float:
    """Share of track ``a``'s points within ``radius_m`` of a point of track ``b`` (lat, lon degrees)."""
    lat0 = math.radians(float(np.mean(b[:, 0])))
    scale = np.array([111_320.0, 111_320.0 * math.cos(lat0)])
    pa, pb = a * scale, b * scale
    d2 = ((pa[:, None, :] - pb[None, :, :]) ** 2).sum(axis=2)
    return float(np.mean(d2.min(axis=1) <= radius_m**2))


@dataclass(frozen=True)
class Assignment:
    """Where a run was put, and why."""

    run_id: int
    trail_id: int | None
    method: str  # gps / vision / none
    score: float


def assign_run(
    catalog: Catalog,
    run: int | str,
    trail: int | str | None = None,
    *,
    config: Any = None,
    min_gps_overlap: float = 0.6,
    timer: StageTimer | None = None,
) -> Assignment:
    """Put a run on a trail: the one given, or the trail whose reference it matches.

    Automatic assignment tries GPS first (the share of the run's fixes within 30 m of a reference's
    track, where both have GPS), then vision: the run is aligned to each trail's reference index
    (`pipeline.align_indexes`) and goes to the trail whose alignment passes its gates with the most
    coverage.

    Returns:
        The assignment (``trail_id`` None when no trail matched).

    Raises:
        CatalogError: Unknown run or trail.
    """
    run_id = resolve_run(catalog, run)
    if trail is not None:
        trail_id = resolve_trail(catalog, trail)
        catalog.assign_run(run_id, trail_id)
        return Assignment(run_id, trail_id, "manual", 1.0)
    trails = catalog.query("SELECT trail_id, reference_run_id FROM trails WHERE reference_run_id IS NOT NULL")
    candidates = [(int(t), int(r)) for t, r in trails.iter_rows() if int(r) != run_id]
    own = _gps_points(catalog, run_id)
    if own is not None:
        best: tuple[float, int] | None = None
        for trail_id, ref in candidates:
            theirs = _gps_points(catalog, ref)
            if theirs is None:
                continue
            score = gps_overlap(own, theirs)
            if score >= min_gps_overlap and (best is None or score > best[0]):
                best = (score, trail_id)
        if best is not None:
            catalog.assign_run(run_id, best[1])
            return Assignment(run_id, best[1], "gps", best[0])
    return _assign_by_vision(catalog, run_id, candidates, config=config, timer=timer or StageTimer())


def _assign_by_vision(
    catalog: Catalog, run_id: int, candidates: list[tuple[int, int]], *, config: Any, timer: StageTimer
) -> Assignment:
    from mtbsync.config import SyncConfig
    from mtbsync.features.index import load_index
    from mtbsync.features.keyframes import config_for_index, extract_keyframes, indexes_comparable
    from mtbsync.pipeline import align_indexes

    config = config or SyncConfig()
    indexed = [(t, r, catalog.latest_index(r)) for t, r in candidates]
    indexed = [(t, r, p) for t, r, p in indexed if p is not None]
    if not indexed:
        return Assignment(run_id, None, "none", 0.0)
    video = _video_of(catalog, run_id)
    own_file = catalog.latest_index(run_id)
    own = load_index(own_file) if index_matches(own_file, video) else None
    best: tuple[float, int] | None = None
    new_cache: dict[str, Any] = {}
    for trail_id, _ref, path in indexed:
        ref_index = load_index(path)
        new_config = config_for_index(config, ref_index)
        key = repr(new_config.decode)
        if key not in new_cache:
            # The run's own index (the service builds one first) saves decoding it again.
            new_cache[key] = (
                own
                if own is not None and indexes_comparable(own, ref_index)
                else extract_keyframes(video, new_config, timer=timer, label="new ").index
            )
        warp = align_indexes(ref_index, new_cache[key], new_config, timer=timer).warp
        coverage = float(warp.metrics.get("coverage_new", 0.0) or 0.0)
        if warp.ok and (best is None or coverage > best[0]):
            best = (coverage, trail_id)
    if best is None:
        return Assignment(run_id, None, "none", 0.0)
    catalog.assign_run(run_id, best[1])
    return Assignment(run_id, best[1], "vision", best[0])


@contextmanager
def open_catalog(db: Path | str | None = None, *, read_only: bool = False) -> Iterator[Catalog]:
    """Open the catalog named by ``--db`` / ``$MTBSYNC_DB`` / the default (a context manager)."""
    with Catalog.open(db, read_only=read_only) as catalog:
        yield catalog

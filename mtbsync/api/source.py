"""The seam between the API and where runs come from.

The routers talk only to a `RunSource`. Two implementations:

- `PreviewSource` (mtbsync/api/preview.py): one pair of videos given on the command line
  (``mtbsync preview``); edits are written to files in an mtbsync-owned output folder.
- ``CatalogSource`` (phase 2, mtbsync/api/catalog_source.py): every run of a library, read from and
  written to the DuckDB catalog through `mtbsync.store`; ``run_sql`` calls
  ``mtbsync.store.queries.run_sql``. It implements the same protocol, so routers and dashboard do
  not change.

The helpers below turn a `Warp` and markers into the API's views; both sources use them.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mtbsync.align.warp import Warp
from mtbsync.api.schemas import (
    AlignmentOut,
    AnchorOut,
    CurveOut,
    HistogramOut,
    MarkerOut,
    MarkerPatch,
    MarkersOut,
    ReferenceMarkerOut,
    RunOut,
    SplitOut,
    SqlOut,
)

# publish(event, data): hands an event to every SSE client (thread-safe).
Publish = Callable[[str, dict[str, Any]], None]


class RunSource(Protocol):
    """Where the API reads runs from and writes edits to.

    Every method may be called from several threads at once; implementations lock as needed.
    Methods raise `mtbsync.errors.NotFoundError` for unknown ids (404), `ConflictError` for edits the
    current state does not allow (409), and other `MtbsyncError`s for bad input (400).
    """

    mode: str  # "preview" or "library"

    def set_publisher(self, publish: Publish) -> None:
        """Receive the function that publishes events (run state changes, stage timings)."""

    def list_runs(self) -> list[RunOut]:
        """Every run, newest first."""

    def get_run(self, run_id: str) -> RunOut:
        """One run."""

    def alignment(self, run_id: str, *, samples: int = 600) -> AlignmentOut:
        """The run's warp, densely sampled both ways, and its quality."""

    def markers(self, run_id: str) -> MarkersOut:
        """The run's markers, the reference's markers and the split times."""

    def update_marker(self, run_id: str, marker_id: int, patch: MarkerPatch) -> MarkerOut:
        """Move a marker and/or mark it reviewed; persisted before returning."""

    def add_anchor(self, run_id: str, t_new: float, t_ref: float) -> AlignmentOut:
        """Pin the warp at (t_new, t_ref), refit it and re-transfer the markers not moved by hand."""

    def add_marker(self, run_id: str, name: str, t: float) -> MarkersOut:
        """Add a marker to a trail's reference run and carry it onto the trail's aligned runs."""

    def export(self, run_id: str, fmt: str) -> Path:
        """Write the run's markers in an editor format (a key of `mtbsync.export.FORMATS`); the file."""

    def media_path(self, media_id: str) -> Path:
        """A browser-playable (H.264) file for a media id, confined to the source's files."""

    def run_sql(
        self,
        sql: str,
        max_rows: int,
        *,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
    ) -> SqlOut:
        """Run read-only SQL on the catalog (NotFoundError without one), within a time budget.

        ``timeout_s`` may shorten the source's budget, never lengthen it; setting ``cancel`` stops the
        query (QueryStoppedError). A query past its budget raises QueryTimeoutError.
        """

    def close(self) -> None:
        """Release files and threads."""


def confine(path: str | Path, roots: Sequence[Path]) -> Path:
    """``path`` resolved (symlinks followed), if it lies inside one of ``roots``; else NotFoundError.

    A path that escapes through ``..`` or a symlink is answered exactly like a missing one, so a
    prober learns nothing about files outside.
    """
    from mtbsync.errors import NotFoundError

    resolved = Path(path).resolve()
    for root in roots:
        root = root.resolve()
        if resolved == root or resolved.is_relative_to(root):
            return resolved
    raise NotFoundError("no such file")


def sample_warp(warp: Warp, samples: int) -> tuple[CurveOut, CurveOut]:
    """``to_ref`` over the covered part of the new run and ``to_new`` over the reference's, evenly sampled."""
    if warp.is_empty:
        empty = CurveOut(t_new=[], t_ref=[], delta=[], confidence=[])
        return empty, empty
    lo, hi = warp.new_range
    t_new = np.unique(np.concatenate([np.linspace(lo, hi, samples), warp.t_new]))
    t_ref = warp.to_ref(t_new)
    forward = _curve(warp, t_new, t_ref)
    rlo, rhi = warp.ref_range
    r = np.linspace(rlo, rhi, samples)
    n = _fast_inverse(warp, r)
    keep = np.isfinite(n)
    inverse = _curve(warp, n[keep], r[keep])
    return forward, inverse


def _fast_inverse(warp: Warp, t_ref: np.ndarray, step: float = 0.002) -> np.ndarray:
    """`Warp.to_new` for many times at once: the forward map sampled every ``step`` seconds, inverted.

    ``to_new`` bisects per time (tens of PCHIP evaluations each), which made a dense curve cost a
    third of a second; on a 2 ms grid linear interpolation of the monotone map is within microseconds
    of it, and the first arrival on a flat stretch (a stop) is kept by taking the first grid point
    reaching each time.
    """
    lo, hi = warp.new_range
    grid = np.unique(np.concatenate([np.linspace(lo, hi, max(2, int((hi - lo) / step) + 1)), warp.t_new]))
    values = np.maximum.accumulate(warp.to_ref(grid))
    k = np.clip(np.searchsorted(values, t_ref, side="left"), 1, len(grid) - 1)
    a, b = values[k - 1], values[k]
    frac = np.where(b > a, (t_ref - a) / np.where(b > a, b - a, 1.0), 1.0)
    out = grid[k - 1] + np.clip(frac, 0.0, 1.0) * (grid[k] - grid[k - 1])
    out[t_ref <= values[0]] = grid[0]
    out[(t_ref < warp.ref_range[0]) | (t_ref > warp.ref_range[1])] = np.nan
    return out


def _curve(warp: Warp, t_new: np.ndarray, t_ref: np.ndarray) -> CurveOut:
    return CurveOut(
        t_new=_rounded(t_new, 4),
        t_ref=_rounded(t_ref, 4),
        delta=_rounded(t_new - t_ref, 4),
        confidence=_rounded(warp.confidence_at(t_new), 3),
    )


def _rounded(values: np.ndarray, digits: int) -> list[float]:
    return [round(float(v), digits) for v in values]


def low_confidence_stretches(warp: Warp, threshold: float, step: float = 0.1) -> list[tuple[float, float]]:
    """New-run stretches where the warp's confidence is under ``threshold`` (for shading)."""
    if warp.is_empty:
        return []
    lo, hi = warp.new_range
    t = np.linspace(lo, hi, max(2, int(np.ceil((hi - lo) / step)) + 1))
    low = warp.confidence_at(t) < threshold
    stretches: list[tuple[float, float]] = []
    start = None
    for k, is_low in enumerate(low):
        if is_low and start is None:
            start = float(t[k])
        elif not is_low and start is not None:
            stretches.append((round(start, 3), round(float(t[k]), 3)))
            start = None
    if start is not None:
        stretches.append((round(start, 3), round(float(hi), 3)))
    return stretches


def alignment_view(
    run_id: str,
    warp: Warp,
    *,
    samples: int,
    review_threshold: float,
    anchors: Sequence[tuple[float, float]] = (),
    new_duration: float | None = None,
) -> AlignmentOut:
    """The API's view of a warp: both mappings sampled, quality figures, histogram, shaded stretches."""
    forward, inverse = sample_warp(warp, samples)
    counts, edges = np.histogram(np.clip(warp.confidence, 0, 1), bins=10, range=(0.0, 1.0))
    residuals = {
        k: round(1000 * float(v), 1)
        for k, v in (warp.metrics.get("residuals_s") or {}).items()
        if isinstance(v, int | float) and math.isfinite(float(v))
    }
    coverage = warp.metrics.get("coverage_new")
    if coverage is None and not warp.is_empty and new_duration:
        coverage = (warp.new_range[1] - warp.new_range[0]) / new_duration
    return AlignmentOut(
        run_id=run_id,
        ok=warp.ok,
        reason=warp.reason,
        new_range=None if warp.is_empty else warp.new_range,
        ref_range=None if warp.is_empty else warp.ref_range,
        coverage=None if coverage is None else round(float(coverage), 4),
        metrics=_jsonable(warp.metrics),
        gates=_jsonable(warp.gates),
        residuals_ms=residuals,
        histogram=HistogramOut(edges=[round(float(e), 2) for e in edges], counts=[int(c) for c in counts]),
        forward=forward,
        inverse=inverse,
        low_confidence=low_confidence_stretches(warp, review_threshold),
        anchors=[AnchorOut(t_new=a, t_ref=b) for a, b in anchors],
        review_threshold=review_threshold,
    )


def splits(markers: Sequence[MarkerOut]) -> list[SplitOut]:
    """Split times between consecutive placed markers (in new-run order) and their delta to the reference."""
    placed = sorted((m for m in markers if m.t_new is not None), key=lambda m: m.t_new or 0.0)
    out = []
    for a, b in itertools.pairwise(placed):
        new_s = float(b.t_new) - float(a.t_new)  # type: ignore[arg-type]
        ref_s = b.t_ref - a.t_ref
        out.append(
            SplitOut(
                start=a.name,
                end=b.name,
                new_s=round(new_s, 3),
                ref_s=round(ref_s, 3),
                delta_s=round(new_s - ref_s, 3),
            )
        )
    return out


def markers_view(
    run_id: str, markers: Sequence[MarkerOut], reference: Sequence[ReferenceMarkerOut]
) -> MarkersOut:
    """The API's view of a run's markers."""
    return MarkersOut(
        run_id=run_id, markers=list(markers), reference_markers=list(reference), splits=splits(markers)
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value

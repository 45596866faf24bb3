"""The time-warp between a new run and the reference run, and its files (warp.npz, timewarp.json).

A warp maps new-run time to reference time, t_ref = W(t_new). It is monotone (non-decreasing: the
reference stands still while the new rider stops) and defined only on the covered part of the runs.
Its inverse gives, for a reference time, the first moment the new run reaches that place.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator

from mtbsync.errors import WarpFileError
from mtbsync.io.files import atomic_write_bytes, atomic_write_text

WARP_SCHEMA_VERSION = 1


@dataclass
class Warp:
    """A monotone piecewise-cubic (PCHIP) map t_new -> t_ref through knots.

    Attributes:
        t_new: (n,) strictly increasing knot times in the new run.
        t_ref: (n,) non-decreasing knot times in the reference run.
        confidence: (n,) per-knot confidence in [0, 1].
        ok: Whether the alignment passed its quality gates.
        reason: Why not, when ``ok`` is false.
        metrics: Quality figures (coverage, inlier fraction, residuals, ...).
        gates: The gate thresholds used.
        meta: Provenance: videos, parameters, backend.
    """

    t_new: np.ndarray
    t_ref: np.ndarray
    confidence: np.ndarray
    ok: bool = True
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.t_new = np.asarray(self.t_new, dtype=np.float64)
        self.t_ref = np.asarray(self.t_ref, dtype=np.float64)
        self.confidence = np.asarray(self.confidence, dtype=np.float64)
        if not (self.t_new.shape == self.t_ref.shape == self.confidence.shape):
            raise ValueError("warp knots must have equal lengths")
        if self.t_new.size and np.any(np.diff(self.t_new) <= 0):
            raise ValueError("warp t_new knots must be strictly increasing")
        if self.t_ref.size and np.any(np.diff(self.t_ref) < 0):
            raise ValueError("warp t_ref knots must be non-decreasing")
        self._forward = PchipInterpolator(self.t_new, self.t_ref) if self.t_new.size >= 2 else None

    @property
    def is_empty(self) -> bool:
        """True when there is no covered part at all."""
        return self.t_new.size < 2

    @property
    def new_range(self) -> tuple[float, float]:
        """Covered part of the new run (seconds)."""
        return (float(self.t_new[0]), float(self.t_new[-1])) if not self.is_empty else (math.nan, math.nan)

    @property
    def ref_range(self) -> tuple[float, float]:
        """Covered part of the reference run (seconds)."""
        return (float(self.t_ref[0]), float(self.t_ref[-1])) if not self.is_empty else (math.nan, math.nan)

    def to_ref(self, t_new: Any) -> np.ndarray:
        """Reference time for new-run times; NaN outside the covered part."""
        t = np.atleast_1d(np.asarray(t_new, dtype=np.float64))
        out = np.full(t.shape, np.nan)
        if self._forward is None:
            return out
        lo, hi = self.new_range
        inside = (t >= lo) & (t <= hi)
        out[inside] = self._forward(t[inside])
        return out

    def to_new(self, t_ref: Any) -> np.ndarray:
        """The first new-run time at which the reference time is reached; NaN outside coverage.

        PCHIP keeps the knots' monotonicity between them, so the inverse is found per segment by
        bisection on the monotone cubic, which is exact to 1e-9 s. All times are bisected together
        (one cubic evaluation over the array per step): 300,000 markers take a fraction of a second.
        """
        t = np.atleast_1d(np.asarray(t_ref, dtype=np.float64))
        out = np.full(t.shape, np.nan)
        if self._forward is None:
            return out
        lo, hi = self.ref_range
        inside = (t >= lo) & (t <= hi)  # NaN compares False: not placed
        values = t[inside]
        seg = np.searchsorted(self.t_ref, values, side="left")
        found = np.full(values.shape, self.t_new[0])  # a time at the first knot: its first arrival
        rest = seg > 0
        a, b, target = self.t_new[seg[rest] - 1], self.t_new[seg[rest]], values[rest]
        for _ in range(60):
            mid = 0.5 * (a + b)
            below = self._forward(mid) < target
            a = np.where(below, mid, a)
            b = np.where(below, b, mid)
        found[rest] = b
        out[inside] = found
        return out

    def confidence_at(self, t_new: Any) -> np.ndarray:
        """Confidence interpolated between knots; 0 outside coverage."""
        t = np.atleast_1d(np.asarray(t_new, dtype=np.float64))
        if self.is_empty:
            return np.zeros(t.shape)
        lo, hi = self.new_range
        conf = np.interp(t, self.t_new, self.confidence)
        return np.where((t >= lo) & (t <= hi), conf, 0.0)

    def speed_ratio(self, t_new: Any) -> np.ndarray:
        """Local dt_ref/dt_new: above 1 the new rider is faster than the reference."""
        t = np.atleast_1d(np.asarray(t_new, dtype=np.float64))
        if self._forward is None:
            return np.full(t.shape, np.nan)
        return self._forward.derivative()(t)


def save_warp(warp: Warp, path: str | Path) -> Path:
    """Write ``warp`` as .npz (knots + JSON metadata), atomically."""
    path = Path(path)
    meta = {
        "schema_version": WARP_SCHEMA_VERSION,
        "kind": "mtbsync.warp",
        "ok": warp.ok,
        "reason": warp.reason,
        "metrics": warp.metrics,
        "gates": warp.gates,
        "meta": warp.meta,
    }

    def write(fh: Any) -> None:
        np.savez(
            fh,
            meta=np.frombuffer(json.dumps(meta, default=_json_default).encode(), dtype=np.uint8),
            t_new=warp.t_new,
            t_ref=warp.t_ref,
            confidence=warp.confidence,
        )

    atomic_write_bytes(path, write)
    return path


def load_warp(path: str | Path) -> Warp:
    """Read a warp from .npz (or from a timewarp.json written by `write_timewarp_json`).

    Raises:
        WarpFileError: Missing, unreadable, or of another schema version.
    """
    path = Path(path)
    if not path.exists():
        raise WarpFileError("warp file not found", path=path)
    if path.suffix.lower() == ".json":
        return _load_timewarp_json(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            t_new, t_ref, conf = data["t_new"], data["t_ref"], data["confidence"]
    except (OSError, ValueError, KeyError, json.JSONDecodeError, EOFError, zipfile.BadZipFile):
        raise WarpFileError("not a readable mtbsync warp (.npz) file", path=path) from None
    _check_version(meta, path)
    try:
        return Warp(
            t_new,
            t_ref,
            conf,
            ok=bool(meta.get("ok")),
            reason=meta.get("reason", ""),
            metrics=meta.get("metrics", {}),
            gates=meta.get("gates", {}),
            meta=meta.get("meta", {}),
        )
    except ValueError as exc:
        raise WarpFileError(f"invalid warp: {exc}", path=path) from None


def _check_version(meta: dict[str, Any], path: Path) -> None:
    if meta.get("kind") != "mtbsync.warp":
        raise WarpFileError("not an mtbsync warp file", path=path)
    if meta.get("schema_version") != WARP_SCHEMA_VERSION:
        raise WarpFileError(
            f"warp schema version {meta.get('schema_version')} is not supported (expected "
            f"{WARP_SCHEMA_VERSION}); run `mtbsync sync` again",
            path=path,
        )


def timewarp_document(warp: Warp) -> dict[str, Any]:
    """The readable timewarp.json content: verdict, coverage, quality figures, gates and knots."""
    lo_new, hi_new = warp.new_range
    lo_ref, hi_ref = warp.ref_range
    return {
        "schema_version": WARP_SCHEMA_VERSION,
        "kind": "mtbsync.warp",
        "ok": warp.ok,
        "reason": warp.reason,
        "model": "monotone-pchip",
        "coverage": {
            "new": [_round(lo_new), _round(hi_new)],
            "ref": [_round(lo_ref), _round(hi_ref)],
            **{k: v for k, v in warp.metrics.items() if k.startswith("coverage")},
        },
        "metrics": warp.metrics,
        "gates": warp.gates,
        "segments": warp.metrics.get("segments", []),
        "knots": {
            "t_new": [round(float(x), 4) for x in warp.t_new],
            "t_ref": [round(float(x), 4) for x in warp.t_ref],
            "confidence": [round(float(x), 3) for x in warp.confidence],
        },
        "meta": warp.meta,
    }


def write_timewarp_json(warp: Warp, path: str | Path) -> Path:
    """Write the readable timewarp.json atomically."""
    path = Path(path)
    text = json.dumps(timewarp_document(warp), indent=2, default=_json_default) + "\n"
    atomic_write_text(path, text)
    return path


def write_dense_warp_csv(warp: Warp, path: str | Path, *, frame_duration: float, duration: float) -> Path:
    """Write the warp at every new-run frame as ``t_new,t_ref,confidence`` (CSV), atomically.

    One row per frame of the new video (``k * frame_duration`` up to ``duration``), so an editor or a
    script needs no interpolation; frames outside the covered part have an empty ``t_ref`` and
    confidence 0. A warp that did not pass its gates is written the same way (``timewarp.json``
    says it is not trusted).
    """
    path = Path(path)
    count = max(0, math.floor(duration / frame_duration + 1e-6) + 1) if frame_duration > 0 else 0
    t_new = np.arange(count) * frame_duration
    t_ref = warp.to_ref(t_new) if count else np.zeros(0)
    confidence = warp.confidence_at(t_new) if count else np.zeros(0)
    lines = ["t_new,t_ref,confidence"]
    for tn, tr, conf in zip(t_new, t_ref, confidence, strict=True):
        lines.append(f"{tn:.6f},{tr:.6f},{conf:.3f}" if np.isfinite(tr) else f"{tn:.6f},,0.000")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _load_timewarp_json(path: Path) -> Warp:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        _check_version(doc, path)
        knots = doc["knots"]
        return Warp(
            knots["t_new"],
            knots["t_ref"],
            knots["confidence"],
            ok=bool(doc.get("ok")),
            reason=doc.get("reason", ""),
            metrics=doc.get("metrics", {}),
            gates=doc.get("gates", {}),
            meta=doc.get("meta", {}),
        )
    except WarpFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError):
        raise WarpFileError("not a readable timewarp.json", path=path) from None


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

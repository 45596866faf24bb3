"""Scoring transferred markers against known truth (demo, tests and benchmarks)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtbsync.markers import TransferredMarker


@dataclass
class MarkerScore:
    """How transferred markers compare with the truth.

    Attributes:
        errors_s: Signed error (placed - truth) of every marker placed that has a truth time.
        names: Marker names, aligned with ``errors_s``.
        wrongly_placed: Placed although the truth says the new run never reaches it.
        missed: Not placed although the truth has a time.
        frame_s: Duration of one frame of the new video.
    """

    errors_s: np.ndarray
    names: list[str]
    wrongly_placed: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    frame_s: float = 1 / 30

    @property
    def abs_frames(self) -> np.ndarray:
        """Absolute errors in frames of the new video."""
        return np.abs(self.errors_s) / self.frame_s

    def summary(self) -> dict[str, float | int]:
        """Median / p90 / max in seconds and frames, and the fraction within one frame."""
        a = np.abs(self.errors_s)
        if a.size == 0:
            return {"markers": 0, "wrongly_placed": len(self.wrongly_placed), "missed": len(self.missed)}
        return {
            "markers": int(a.size),
            "median_s": float(np.median(a)),
            "p90_s": float(np.percentile(a, 90)),
            "max_s": float(a.max()),
            "median_frames": float(np.median(self.abs_frames)),
            "p90_frames": float(np.percentile(self.abs_frames, 90)),
            "max_frames": float(self.abs_frames.max()),
            # "Within one frame": the placed time is at most one frame duration from the truth.
            "within_one_frame": float(np.mean(self.abs_frames <= 1.0 + 1e-9)),
            "wrongly_placed": len(self.wrongly_placed),
            "missed": len(self.missed),
        }


def read_truth_markers(path: str | Path) -> dict[str, float]:
    """``name,t_new`` truth CSV -> {name: t_new}."""
    truth: dict[str, float] = {}
    with Path(path).open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            truth[row["name"]] = float(row["t_new"])
    return truth


def score_markers(markers: list[TransferredMarker], truth: dict[str, float], frame_s: float) -> MarkerScore:
    """Compare transferred markers with ``truth`` ({name: t_new})."""
    errors, names, wrong, missed = [], [], [], []
    for marker in markers:
        expected = truth.get(marker.name)
        placed = marker.t_new is not None and not math.isnan(marker.t_new)
        if expected is None:
            if placed:
                wrong.append(marker.name)
            continue
        if not placed:
            missed.append(marker.name)
            continue
        errors.append(float(marker.t_new) - expected)
        names.append(marker.name)
    return MarkerScore(np.array(errors), names, wrong, missed, frame_s)

"""The pairs table (pairs.csv): the matched moments of the two runs that the warp is fitted to.

`mtbsync sync` writes it; a rider may edit it (drop a bad pair, add an anchor by hand) and re-fit
with `mtbsync warp --pairs pairs.csv`. So the reader also takes a hand-made ``t_new,t_ref`` file:
missing columns get defaults that make each row a trusted, hand-placed anchor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mtbsync.errors import PairsFileError
from mtbsync.io.csvfile import cell, read_csv_rows
from mtbsync.io.files import atomic_write_text

PAIRS_HEADER = ("t_new", "t_ref", "inliers", "confidence", "verified", "source")
PAIR_SOURCES = ("path", "refined", "marker", "anchor")

_TRUE = frozenset({"true", "1", "yes", "y"})
_FALSE = frozenset({"false", "0", "no", "n"})


@dataclass(frozen=True)
class AlignmentPair:
    """One matched moment: the new run at ``t_new`` shows the place the reference shows at ``t_ref``.

    Attributes:
        t_new: Seconds in the new run.
        t_ref: Seconds in the reference run.
        inliers: Geometric inliers that verified the match (0 when unknown, e.g. hand-made).
        confidence: The warp's confidence at ``t_new``, in [0, 1].
        verified: Whether geometry confirmed the match (unverified pairs only guide the fit).
        source: ``path`` (keyframe path), ``refined`` (sub-keyframe refinement), ``marker``
            (full-rate timing around a marker) or ``anchor`` (placed by hand).
    """

    t_new: float
    t_ref: float
    inliers: int = 0
    confidence: float = 1.0
    verified: bool = True
    source: str = "anchor"

    def __post_init__(self) -> None:
        if self.source not in PAIR_SOURCES:
            raise ValueError(f"pair source must be one of {', '.join(PAIR_SOURCES)}, not {self.source!r}")


def write_pairs_csv(path: str | Path, pairs: Sequence[AlignmentPair]) -> Path:
    """Write pairs as ``t_new,t_ref,inliers,confidence,verified,source`` CSV, atomically.

    Times have 4 decimals (0.1 ms, finer than any frame), confidence 3, verified is ``true``/``false``.

    Args:
        path: The file to write.
        pairs: The pairs, written in this order.

    Returns:
        The path written.
    """
    path = Path(path)
    lines = [",".join(PAIRS_HEADER)]
    for p in pairs:
        verified = "true" if p.verified else "false"
        lines.append(f"{p.t_new:.4f},{p.t_ref:.4f},{int(p.inliers)},{p.confidence:.3f},{verified},{p.source}")
    atomic_write_text(path, ("\n".join(lines) + "\n"))
    return path


def read_pairs_csv(path: str | Path) -> list[AlignmentPair]:
    """Read a pairs file written by `write_pairs_csv`, or a hand-made one.

    Columns are found by header name, in any order; extra columns are ignored. Only ``t_new`` and
    ``t_ref`` are required; a missing or blank ``inliers`` is 0, ``confidence`` 1, ``verified`` true
    and ``source`` ``anchor``. A file whose first row is two numbers has no header and is read as
    ``t_new,t_ref[,inliers,confidence,verified,source]``.

    Args:
        path: The CSV file.

    Returns:
        The pairs in file order (an empty list for a header-only file).

    Raises:
        PairsFileError: Missing, unreadable or empty file, a header without ``t_new``/``t_ref``, a
            missing value, a value that is not a number, a negative time, a confidence outside [0, 1],
            or an unknown source (the error names the line).
    """
    path = Path(path)
    rows = read_csv_rows(path, error=PairsFileError)
    if not rows:
        raise PairsFileError("empty file (expected a t_new,t_ref header and rows)", path=path)
    first_line, first, _ = rows[0]
    if _is_number(first[0]) and len(first) > 1 and _is_number(first[1]):
        columns = {name: k for k, name in enumerate(PAIRS_HEADER)}
    else:
        columns = {}
        for k, cell in enumerate(first):
            columns.setdefault(cell.strip().lower(), k)
        missing = [c for c in ("t_new", "t_ref") if c not in columns]
        if missing:
            raise PairsFileError(
                f"the header lacks {' and '.join(missing)} (expected t_new,t_ref[,inliers,confidence,"
                "verified,source])",
                path=path,
                line=first_line,
            )
        rows = rows[1:]
    return [_pair(row.fields, columns, path, row.line) for row in rows]


def _pair(fields: list[str], columns: dict[str, int], path: Path, line: int) -> AlignmentPair:
    def text_of(name: str) -> str:
        return cell(fields, columns, name)

    times = []
    for name in ("t_new", "t_ref"):
        text = text_of(name)
        if not text:
            raise PairsFileError(f"missing {name}", path=path, line=line)
        value = _number(text, name, path, line)
        if value < 0:
            raise PairsFileError(f"{name} is negative: {text!r}", path=path, line=line)
        times.append(value)
    inliers_text = text_of("inliers")
    inliers = _number(inliers_text, "inliers", path, line) if inliers_text else 0.0
    if inliers < 0 or inliers != int(inliers):
        raise PairsFileError(
            f"inliers is not a whole number of 0 or more: {inliers_text!r}", path=path, line=line
        )
    confidence_text = text_of("confidence")
    confidence = _number(confidence_text, "confidence", path, line) if confidence_text else 1.0
    if not 0.0 <= confidence <= 1.0:
        raise PairsFileError(f"confidence is not from 0 to 1: {confidence_text!r}", path=path, line=line)
    verified_text = text_of("verified").lower()
    if verified_text and verified_text not in _TRUE | _FALSE:
        raise PairsFileError(f"verified is not true/false: {text_of('verified')!r}", path=path, line=line)
    source = text_of("source").lower() or "anchor"
    if source not in PAIR_SOURCES:
        raise PairsFileError(
            f"unknown source {text_of('source')!r} (expected one of {', '.join(PAIR_SOURCES)})",
            path=path,
            line=line,
        )
    return AlignmentPair(
        t_new=times[0],
        t_ref=times[1],
        inliers=int(inliers),
        confidence=confidence,
        verified=verified_text not in _FALSE,
        source=source,
    )


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _number(text: str, name: str, path: Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or "_" in text:
        raise PairsFileError(f"{name} is not a number: {text!r}", path=path, line=line)
    return value

"""Re-fitting a warp to a pairs file a rider edited (``mtbsync warp --pairs pairs.csv``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mtbsync.align.fit import fit_warp
from mtbsync.align.pairs import read_pairs_csv
from mtbsync.align.warp import Warp, load_warp, save_warp, write_timewarp_json
from mtbsync.config import SyncConfig
from mtbsync.errors import WarpFileError


def refit_warp(
    pairs_csv: str | Path,
    out: str | Path,
    config: SyncConfig,
    *,
    new_duration: float | None = None,
    ref_duration: float | None = None,
) -> tuple[Warp, list[Path]]:
    """Fit a warp to a pairs file (``mtbsync warp``); writes ``out`` (.npz) and a timewarp.json beside it.

    Run lengths come from the options, else from a timewarp.json next to the pairs file, else from the
    pairs' own span (then the coverage gate cannot fail).

    Args:
        pairs_csv: The pairs file (`mtbsync.align.pairs.read_pairs_csv` reads it).
        out: The warp file to write (.npz).
        config: Parameters (the warp's gates).
        new_duration: Length of the new run (s), or None.
        ref_duration: Length of the reference run (s), or None.

    Returns:
        The fitted warp and the files written.

    Raises:
        PairsFileError: The pairs file is malformed.
    """
    pairs_csv, out = Path(pairs_csv), Path(out)
    pairs = sorted(read_pairs_csv(pairs_csv), key=lambda p: p.t_new)
    meta: dict[str, Any] = {}
    beside = pairs_csv.with_name("timewarp.json")
    if beside.exists():
        try:
            meta = load_warp(beside).meta
        except WarpFileError:
            meta = {}
    t_new = np.array([p.t_new for p in pairs])
    t_ref = np.array([p.t_ref for p in pairs])
    new_duration = new_duration or float(
        (meta.get("new") or {}).get("duration") or (t_new.max() if pairs else 0)
    )
    ref_duration = ref_duration or float(
        (meta.get("reference") or {}).get("duration") or (t_ref.max() if pairs else 0)
    )
    inliers = np.array([p.inliers if p.inliers > 0 else 100 for p in pairs], dtype=np.float64)
    fitted = fit_warp(
        t_new,
        t_ref,
        inliers,
        np.array([p.verified for p in pairs], bool),
        gates=config.gates,
        new_duration=new_duration,
        ref_duration=ref_duration,
        path_points=len(pairs),
    )
    fitted.meta.update(meta, refitted_from=str(pairs_csv.resolve()))
    written = [
        save_warp(fitted, out),
        write_timewarp_json(fitted, out.with_name(out.stem + ".timewarp.json")),
    ]
    return fitted, written

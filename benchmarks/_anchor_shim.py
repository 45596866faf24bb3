"""Run the published anchor's CLI (mtbsync==0.10.16) with one bug worked around; anchor venv only.

The anchor saves its reference index with ``np.array(desc_list, dtype=object)``. When every keyframe has
exactly ``--n-features`` ORB descriptors (the usual case: real and rendered frames give 5,000-30,000
corners before the 1,500 cap), NumPy builds one 3-D object array instead of a list of uint8 arrays, so
every ``BFMatcher.knnMatch`` call raises, each is skipped, and ``sync`` stops with "No valid matches
found between videos". As shipped, the anchor therefore fails on every benchmark pair.

This shim converts the loaded arrays back to float32 keypoints / uint8 descriptors and then hands over
to the anchor's own CLI unchanged. Results run through it are labelled ``anchor-shim``: they measure the
anchor's algorithm, not the package as published. Usage:
``.bench/anchor-venv/bin/python benchmarks/_anchor_shim.py sync --reference ...``
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtbsync import cli  # the anchor's, from the anchor venv
from mtbsync.match import retrieval

_load = retrieval.load_reference_index


def _load_typed(index_path: str) -> tuple[Any, list[np.ndarray], list[np.ndarray]]:
    t_ref, kpts, desc = _load(index_path)
    kpts = [np.ascontiguousarray(k, dtype=np.float32).reshape(-1, 5) for k in kpts]
    desc = [np.ascontiguousarray(d, dtype=np.uint8).reshape(-1, 32) for d in desc]
    return t_ref, kpts, desc


retrieval.load_reference_index = _load_typed
cli.load_reference_index = _load_typed  # cli imported the name itself

if __name__ == "__main__":
    cli.main()

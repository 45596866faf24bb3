"""Run the CUDA kernel in numba's simulator on the cases in an .npz file; write the results to another.

Run by tests/gpu/test_gpu_cuda_sim.py in a subprocess, because NUMBA_ENABLE_CUDASIM must be set before
numba.cuda is first imported and the test process may already have imported it for real.

Usage: python _cuda_sim_worker.py CASES.npz RESULTS.npz
       python _cuda_sim_worker.py --ptx   (no simulator: compile the kernel to PTX, print a JSON summary;
                                           needs NVRTC and NVVM, e.g. the nvidia-cuda-nvrtc/nvcc wheels)

Each case ``name`` has ``name/kind`` (``single``, ``pairs`` or ``api``) and its arrays; results are written
as ``name/idx1`` etc. (``single`` and ``pairs``: flat kernel output; ``api``: public functions run with
``device="gpu"`` through the backend registry).
"""

from __future__ import annotations

import os
import sys

if sys.argv[1:] != ["--ptx"]:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
os.environ.pop("MTBSYNC_DEVICE", None)

import numpy as np

from mtbsync.gpu import backend, hamming_knn2_pairs, match_descriptors, nearest_word
from mtbsync.gpu import cuda as gpu_cuda

_FIELDS = ("idx1", "dist1", "idx2", "dist2")


def main(cases_path: str, out_path: str) -> None:
    assert gpu_cuda.simulator_enabled(), "the simulator must be on"
    cases = np.load(cases_path)
    names = sorted({key.split("/")[0] for key in cases.files})
    out: dict[str, np.ndarray] = {}
    for name in names:
        kind = str(cases[f"{name}/kind"])
        block, tile = (int(x) for x in cases[f"{name}/shape"])
        matcher = gpu_cuda.CudaMatcher(block=block or None, tile=tile or None)  # 0: the real defaults
        if kind == "single":
            query, train = cases[f"{name}/query"], cases[f"{name}/train"]
            knn, keep = matcher.match(query, train, float(cases[f"{name}/ratio"]), int(cases[f"{name}/cap"]))
            out[f"{name}/keep"] = keep
            out[f"{name}/nearest"] = matcher.nearest(query, train)
        elif kind == "pairs":
            knn, offsets = matcher.knn2_pairs(
                cases[f"{name}/query"],
                cases[f"{name}/query_offsets"],
                cases[f"{name}/train"],
                cases[f"{name}/train_offsets"],
                cases[f"{name}/pairs"],
            )
            out[f"{name}/out_offsets"] = offsets
        else:  # api: the public functions, with the simulated kernel registered as the "gpu" backend
            fake = backend.Backend(
                name="gpu",
                detail="numba CUDA simulator",
                knn2=matcher.knn2,
                knn2_pairs=matcher.knn2_pairs,
                nearest=matcher.nearest,
                match=matcher.match,
            )
            backend._FACTORIES["gpu"] = lambda fake=fake: fake
            backend._reset_backend_cache()
            assert backend.backend_name("gpu") == "gpu"
            query, train = cases[f"{name}/query"], cases[f"{name}/train"]
            qi, ti, dist = match_descriptors(
                query, train, ratio=0.9, max_distance=100, cross_check=True, device="gpu"
            )
            out[f"{name}/match"] = np.stack([qi, ti, dist])
            out[f"{name}/nearest"] = nearest_word(query, train, device="gpu")
            offsets = np.array([0, 5, query.shape[0]])
            t_offsets = np.array([0, 7, train.shape[0]])
            pairs = np.array([[0, 1], [1, 0], [1, 1]])
            results = hamming_knn2_pairs(query, offsets, train, t_offsets, pairs, device="gpu")
            knn = backend.Knn2(*(np.concatenate([getattr(r, f) for r in results]) for f in _FIELDS))
            out[f"{name}/backend"] = np.array(backend.backend_name("gpu"))
        for field in _FIELDS:
            out[f"{name}/{field}"] = getattr(knn, field)
    np.savez(out_path, **out)


def compile_ptx() -> None:
    """Compile the kernel for a few widths and compute capabilities; print what the PTX uses."""
    import json
    import re

    from numba import cuda, types

    sig = (
        types.uint64[:, ::1],
        types.uint64[:, ::1],
        types.int64[:, ::1],
        types.int32,
        types.float64,
        types.int32,
        types.int32[:, ::1],
    )
    report = {}
    for words in (1, 4, 8):
        for cc in ((8, 0), (9, 0)):
            ptx, _ = cuda.compile_ptx(gpu_cuda.kernel(words).py_func, sig, cc=cc)
            shared = [int(n) for n in re.findall(r"\.shared \.align \d+ \.b8 \w+\[(\d+)\]", ptx)]
            report[f"{words}@{cc[0]}.{cc[1]}"] = {
                "popc": ptx.count("popc."),
                "local": ptx.count(".local"),
                "shared_bytes": sum(shared),
                "entry": ".entry" in ptx,
            }
    print(json.dumps(report))


if __name__ == "__main__":
    if sys.argv[1:] == ["--ptx"]:
        compile_ptx()
    else:
        main(sys.argv[1], sys.argv[2])

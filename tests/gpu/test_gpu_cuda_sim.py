"""The CUDA kernel in numba's CUDA simulator: bit-identical to the CPU kernel, ties and edge cases included.

The simulator needs NUMBA_ENABLE_CUDASIM=1 before numba.cuda is imported, so all cases run in one
subprocess (``_cuda_sim_worker.py``) and the tests here compare its results with the CPU kernel. Blocks
and tiles are tiny so the simulator (a Python thread per CUDA thread) covers several tasks, several
shared-memory tiles and partial ones in well under a minute.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtbsync.gpu import cpu, hamming_knn2, hamming_knn2_pairs, match_descriptors, nearest_word
from mtbsync.gpu.backend import Knn2, ratio_keep

_WORKER = Path(__file__).with_name("_cuda_sim_worker.py")
_FIELDS = ("idx1", "dist1", "idx2", "dist2")


def _rand(rng: np.random.Generator, rows: int, width: int = 32) -> np.ndarray:
    return rng.integers(0, 256, (rows, width), dtype=np.uint8)


def _single_cases() -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(11)
    ties_train = _rand(rng, 11)
    ties_train[[4, 7, 10]] = ties_train[1]  # the nearest and second nearest tie, across tiles of 3
    ties_query = _rand(rng, 9)
    ties_query[:3] = ties_train[1]
    ties_query[3] = ties_train[1]
    ties_query[3, 0] ^= 1  # one bit away from four equal rows
    near = _rand(rng, 10)
    near_query = near ^ np.packbits(rng.random((10, 256)) < 0.05, axis=1)  # real matches for the ratio test
    cases = {
        "random": (_rand(rng, 13), _rand(rng, 11), 8, 3),
        "ties": (ties_query, ties_train, 4, 3),
        "all_equal": (np.full((6, 32), 0xA5, np.uint8), np.full((7, 32), 0xA5, np.uint8), 4, 3),
        "empty_query": (np.zeros((0, 32), np.uint8), _rand(rng, 5), 4, 3),
        "empty_train": (_rand(rng, 5), np.zeros((0, 32), np.uint8), 4, 3),
        "both_empty": (np.zeros((0, 32), np.uint8), np.zeros((0, 32), np.uint8), 4, 3),
        "one_train_row": (_rand(rng, 5), _rand(rng, 1), 4, 3),
        "two_train_rows": (_rand(rng, 5), _rand(rng, 2), 4, 1),
        "width_8": (_rand(rng, 9, 8), _rand(rng, 12, 8), 4, 5),
        "width_64": (_rand(rng, 7, 64), _rand(rng, 9, 64), 8, 4),
        "ratio_matches": (near_query, near, 4, 4),
        "default_shape": (_rand(rng, 70), _rand(rng, 300), 0, 0),  # chosen block (96), tiles of 256
    }
    return {
        name: {
            "kind": np.array("single"),
            "shape": np.array([block, tile]),
            "query": q,
            "train": t,
            "ratio": np.array(0.8),
            "cap": np.array(100),
        }
        for name, (q, t, block, tile) in cases.items()
    }


def _pairs_case() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(12)
    query_sizes, train_sizes = [6, 0, 9, 1], [5, 1, 0, 8]
    query, train = _rand(rng, sum(query_sizes)), _rand(rng, sum(train_sizes))
    train[-1] = train[-8]  # a tie inside the last train block
    query[0] = train[-1]
    pairs = np.array([[0, 0], [0, 3], [1, 0], [2, 1], [2, 2], [2, 3], [3, 3], [0, 3]])
    return {
        "kind": np.array("pairs"),
        "shape": np.array([4, 3]),
        "query": query,
        "query_offsets": np.concatenate([[0], np.cumsum(query_sizes)]),
        "train": train,
        "train_offsets": np.concatenate([[0], np.cumsum(train_sizes)]),
        "pairs": pairs,
    }


def _api_case() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(13)
    train = _rand(rng, 16)
    query = train[rng.permutation(16)[:12]] ^ np.packbits(rng.random((12, 256)) < 0.04, axis=1)
    query[5] = train[2]
    train[9] = train[2]
    return {"kind": np.array("api"), "shape": np.array([8, 4]), "query": query, "train": train}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """(cases, results): every case run once in the simulator subprocess."""
    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed (it is in the dev and gpu extras)")
    cases = {**_single_cases(), "pairs": _pairs_case(), "api": _api_case()}
    folder = tmp_path_factory.mktemp("cudasim")
    flat = {f"{name}/{key}": value for name, case in cases.items() for key, value in case.items()}
    np.savez(folder / "cases.npz", **flat)
    env = {k: v for k, v in os.environ.items() if k != "MTBSYNC_DEVICE"}
    proc = subprocess.run(
        [sys.executable, str(_WORKER), str(folder / "cases.npz"), str(folder / "out.npz")],
        capture_output=True,
        text=True,
        env={**env, "NUMBA_ENABLE_CUDASIM": "1"},
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(folder / "out.npz") as data:
        results = {key: data[key] for key in data.files}
    return cases, results


def _got(results: dict, name: str) -> Knn2:
    return Knn2(*(results[f"{name}/{f}"] for f in _FIELDS))


def _assert_same(got: Knn2, want: Knn2) -> None:
    for field in _FIELDS:
        a, b = getattr(got, field), getattr(want, field)
        assert a.dtype == np.int32, field
        np.testing.assert_array_equal(a, b, err_msg=field)


@pytest.mark.parametrize("name", sorted(_single_cases()))
def test_simulated_kernel_equals_cpu_kernel(simulated: tuple[dict, dict], name: str) -> None:
    cases, results = simulated
    query, train = cases[name]["query"], cases[name]["train"]
    want = cpu.knn2(query, train)
    _assert_same(_got(results, name), want)
    np.testing.assert_array_equal(results[f"{name}/nearest"], cpu.nearest(query, train))
    # The fused ratio test equals the host rule on the CPU kernel's neighbours.
    np.testing.assert_array_equal(results[f"{name}/keep"], ratio_keep(want, 0.8, 100))


def test_ties_and_missing_neighbours_follow_the_promised_rules(simulated: tuple[dict, dict]) -> None:
    _, results = simulated
    ties = _got(results, "ties")
    assert ties.idx1[:3].tolist() == [1, 1, 1] and ties.idx2[:3].tolist() == [4, 4, 4]
    assert ties.dist1[3] == 1 and (ties.idx1[3], ties.idx2[3]) == (1, 4)
    equal = _got(results, "all_equal")
    assert set(equal.idx1.tolist()) == {0} and set(equal.idx2.tolist()) == {1}
    assert not results["all_equal/keep"].any()  # 0 < 0.8 * 0 fails: ambiguous everywhere
    one = _got(results, "one_train_row")
    assert set(one.idx2.tolist()) == {-1} and set(one.dist2.tolist()) == {257}
    assert set(_got(results, "empty_train").idx1.tolist()) == {-1}
    assert results["ratio_matches/keep"].sum() >= 8  # the noisy copies pass the ratio test


def test_simulated_batch_equals_cpu_batch(simulated: tuple[dict, dict]) -> None:
    cases, results = simulated
    case = cases["pairs"]
    args = (case["query"], case["query_offsets"], case["train"], case["train_offsets"], case["pairs"])
    want, offsets = cpu.knn2_pairs(*args)
    np.testing.assert_array_equal(results["pairs/out_offsets"], offsets)
    _assert_same(_got(results, "pairs"), want)


def test_public_api_on_the_simulated_gpu_backend_equals_cpu(simulated: tuple[dict, dict]) -> None:
    cases, results = simulated
    query, train = cases["api"]["query"], cases["api"]["train"]
    assert str(results["api/backend"]) == "gpu"
    want = match_descriptors(query, train, ratio=0.9, max_distance=100, cross_check=True, device="cpu")
    np.testing.assert_array_equal(results["api/match"], np.stack(want))
    assert results["api/match"].shape[1] >= 6
    np.testing.assert_array_equal(results["api/nearest"], nearest_word(query, train, device="cpu"))
    pieces = hamming_knn2_pairs(
        query,
        np.array([0, 5, 12]),
        train,
        np.array([0, 7, 16]),
        np.array([[0, 1], [1, 0], [1, 1]]),
        device="cpu",
    )
    want_knn = Knn2(*(np.concatenate([getattr(p, f) for p in pieces]) for f in _FIELDS))
    _assert_same(_got(results, "api"), want_knn)
    assert hamming_knn2(query, train, device="cpu").idx1[5] == 2  # the tie went to the lower row


def test_kernel_compiles_to_ptx_with_registers_and_shared_memory_only() -> None:
    """Real numba-cuda typing and NVVM codegen, no GPU needed (the simulator skips both)."""
    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run(
        [sys.executable, str(_WORKER), "--ptx"], capture_output=True, text=True, env=env, timeout=240
    )
    if proc.returncode and ("DynamicLibNotFound" in proc.stderr or "NVVM" in proc.stderr):
        pytest.skip("no NVRTC/NVVM here (pip install nvidia-cuda-nvrtc-cu12 nvidia-cuda-nvcc-cu12)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(report) == 6
    for name, figures in report.items():
        assert figures["entry"], name
        assert figures["popc"] >= int(name.split("@")[0]), name  # at least one popcount per word
        assert figures["local"] == 0, name  # the query stays in registers
        assert 0 < figures["shared_bytes"] <= 8192, name


def test_block_size_fits_the_query_blocks() -> None:
    pytest.importorskip("numba_cuda")
    from mtbsync.gpu.cuda import choose_block

    assert choose_block(np.array([800] * 30)) == 160  # 5 full blocks per keyframe, no idle thread
    assert choose_block(np.array([512, 256])) == 256
    assert choose_block(np.array([0, 0])) == 128
    assert choose_block(np.array([40])) == 64


def test_popcount_peak_formula() -> None:
    pytest.importorskip("numba_cuda")
    from mtbsync.gpu.cuda import peak_for

    h100 = peak_for(132, 1.98e9, (9, 0), 32)
    assert h100["popc_per_distance"] == 8 and h100["popc_per_clock_per_sm"] == 16
    assert h100["peak_distances_per_s"] == pytest.approx(5.2272e11)
    assert peak_for(28, 1.5e9, (6, 1), 64)["peak_distances_per_s"] == pytest.approx(28 * 1.5e9 * 32 / 16)

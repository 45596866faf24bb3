"""The CUDA kernel on a real GPU (``pytest -m gpu``): same results as the CPU kernel, at realistic sizes.

Deselected by default (``-m 'not slow and not gpu'``); skipped when CuPy or a CUDA device is missing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import numpy as np
import pytest

from mtbsync.errors import DeviceError
from mtbsync.gpu import backend, backend_name, cpu, hamming_knn2_pairs, match_descriptors, nearest_word

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _real_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MTBSYNC_DEVICE", raising=False)
    monkeypatch.delenv("MTBSYNC_NO_GPU", raising=False)
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    if importlib.util.find_spec("cupy") is None:
        pytest.skip("CuPy is not installed (pip install 'mtbsync[gpu]')")
    backend._reset_backend_cache()
    try:
        backend_name("gpu")
    except DeviceError as exc:
        pytest.skip(f"no usable GPU: {exc}")
    yield
    backend._reset_backend_cache()


def _descriptors(rng: np.random.Generator, rows: int, width: int = 32) -> np.ndarray:
    return rng.integers(0, 256, (rows, width), dtype=np.uint8)


def test_auto_picks_the_gpu() -> None:
    assert backend_name("auto") == "gpu"


@pytest.mark.parametrize("width", [8, 32, 64, 136])
def test_gpu_batch_equals_cpu_batch(width: int) -> None:
    rng = np.random.default_rng(width)
    sizes_q, sizes_t = rng.integers(0, 700, 30), rng.integers(0, 700, 30)
    sizes_q[3], sizes_t[4], sizes_t[5] = 0, 0, 1
    query, train = _descriptors(rng, int(sizes_q.sum()), width), _descriptors(rng, int(sizes_t.sum()), width)
    train[::97] = train[0]  # ties across tiles
    q_off = np.concatenate([[0], np.cumsum(sizes_q)])
    t_off = np.concatenate([[0], np.cumsum(sizes_t)])
    pairs = np.stack([np.repeat(np.arange(30), 5), rng.integers(0, 30, 150)], axis=1)
    gpu = hamming_knn2_pairs(query, q_off, train, t_off, pairs, device="gpu")
    want, offsets = cpu.knn2_pairs(query, q_off, train, t_off, pairs)
    for p, got in enumerate(gpu):
        lo, hi = offsets[p], offsets[p + 1]
        for field in ("idx1", "dist1", "idx2", "dist2"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field)[lo:hi], err_msg=field)
    assert backend_name("gpu") == "gpu"  # nothing fell back


def test_gpu_match_and_nearest_equal_cpu() -> None:
    rng = np.random.default_rng(3)
    train = _descriptors(rng, 5000)
    query = train[rng.integers(0, 5000, 3000)] ^ np.packbits(rng.random((3000, 256)) < 0.05, axis=1)
    for a, b in zip(
        match_descriptors(query, train, cross_check=True, device="gpu"),
        match_descriptors(query, train, cross_check=True, device="cpu"),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(nearest_word(query, train, device="gpu"), cpu.nearest(query, train))

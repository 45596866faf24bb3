"""The Hamming kernels against the NumPy oracle, the dispatch point, and the matching rules."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtbsync.errors import ConfigError, DeviceError
from mtbsync.gpu import (
    Knn2,
    backend,
    backend_name,
    cpu,
    hamming_knn2,
    hamming_knn2_pairs,
    match_descriptors,
    nearest_word,
)
from mtbsync.gpu.reference import knn2_numpy


@pytest.fixture(autouse=True)
def _fresh_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test decides the backend afresh, from a clean environment."""
    monkeypatch.delenv("MTBSYNC_DEVICE", raising=False)
    backend._reset_backend_cache()
    yield
    backend._reset_backend_cache()


def _random(rng: np.random.Generator, rows: int, width: int = 32) -> np.ndarray:
    return rng.integers(0, 256, (rows, width), dtype=np.uint8)


def _assert_same(got: Knn2, want: Knn2) -> None:
    for field in ("idx1", "dist1", "idx2", "dist2"):
        a, b = getattr(got, field), getattr(want, field)
        assert a.dtype == np.int32, field
        np.testing.assert_array_equal(a, b, err_msg=field)


def _with_bits(counts: list[int], width: int = 32) -> np.ndarray:
    """Rows whose Hamming distance to an all-zero row is the given count (the lowest bits set)."""
    bits = np.zeros((len(counts), 8 * width), np.uint8)
    for row, count in enumerate(counts):
        bits[row, :count] = 1
    return np.packbits(bits, axis=1)


@pytest.mark.parametrize(
    ("n_query", "n_train", "width"),
    [
        (0, 5, 32),
        (5, 0, 32),
        (0, 0, 32),
        (7, 1, 32),
        (40, 2, 32),
        (150, 333, 32),
        (60, 200, 64),
        (33, 70, 8),  # padded to one 32-byte group
        (33, 70, 40),  # padded to two groups
        (20, 90, 96),  # three groups, no padding
        (40, 4200, 32),  # crosses the 4096-row key chunk
    ],
)
@pytest.mark.parametrize("parallel", [False, True])
def test_kernel_equals_oracle(n_query: int, n_train: int, width: int, parallel: bool) -> None:
    rng = np.random.default_rng(n_query * 1000 + n_train + width)
    query, train = _random(rng, n_query, width), _random(rng, n_train, width)
    if n_train > 10:
        # Duplicates make exact ties for both neighbours, including across the 4096-row chunk boundary.
        train[n_train // 2] = train[3]
        train[n_train - 1] = train[3]
        query[:5] = train[3]
    want = knn2_numpy(query, train)
    _assert_same(cpu.knn2(query, train, parallel=parallel), want)
    np.testing.assert_array_equal(cpu.nearest(query, train, parallel=parallel), want.idx1)


def test_missing_neighbours_use_minus_one_and_bits_plus_one() -> None:
    rng = np.random.default_rng(0)
    query = _random(rng, 3)
    none = hamming_knn2(query, _random(rng, 0), device="cpu")
    assert none.idx1.tolist() == none.idx2.tolist() == [-1, -1, -1]
    assert none.dist1.tolist() == none.dist2.tolist() == [257, 257, 257]
    one = hamming_knn2(query, _random(rng, 1), device="cpu")
    assert one.idx1.tolist() == [0, 0, 0]
    assert one.idx2.tolist() == [-1, -1, -1]
    assert one.dist2.tolist() == [257, 257, 257]
    assert hamming_knn2(_random(rng, 2, 64), _random(rng, 1, 64)).dist2.tolist() == [513, 513]


def test_ties_go_to_the_lowest_train_index() -> None:
    train = _with_bits([5, 3, 7, 3, 3, 1, 1])
    query = _with_bits([0])
    got = hamming_knn2(query, train, device="cpu")
    assert (got.idx1[0], got.dist1[0], got.idx2[0], got.dist2[0]) == (5, 1, 6, 1)
    got = hamming_knn2(query, train[:5], device="cpu")
    assert (got.idx1[0], got.dist1[0], got.idx2[0], got.dist2[0]) == (1, 3, 3, 3)
    _assert_same(hamming_knn2(query, train, device="cpu"), knn2_numpy(query, train))


def test_many_ties_equal_oracle() -> None:
    rng = np.random.default_rng(5)
    # Bytes of 0 or 255 give distances in steps of 8, so ties are everywhere.
    query = (rng.integers(0, 2, (120, 32)) * 255).astype(np.uint8)
    train = (rng.integers(0, 2, (300, 32)) * 255).astype(np.uint8)
    _assert_same(hamming_knn2(query, train, device="cpu"), knn2_numpy(query, train))
    zeros = np.zeros((10, 32), np.uint8)
    _assert_same(hamming_knn2(zeros, zeros, device="cpu"), knn2_numpy(zeros, zeros))


def test_non_contiguous_input_is_accepted() -> None:
    rng = np.random.default_rng(1)
    wide = _random(rng, 50, 64)
    query, train = wide[:, :32], wide[::2, 32:]
    assert not query.flags.c_contiguous
    _assert_same(
        hamming_knn2(query, train), knn2_numpy(np.ascontiguousarray(query), np.ascontiguousarray(train))
    )


def test_pairs_equal_per_pair_calls() -> None:
    rng = np.random.default_rng(2)
    query_sizes, train_sizes = [30, 0, 75, 1, 64], [50, 1, 0, 90]
    query_all = _random(rng, sum(query_sizes))
    train_all = _random(rng, sum(train_sizes))
    query_offsets = np.concatenate([[0], np.cumsum(query_sizes)])
    train_offsets = np.concatenate([[0], np.cumsum(train_sizes)])
    pairs = np.array([[0, 0], [2, 3], [1, 0], [3, 1], [4, 2], [2, 0], [2, 3], [4, 3]])
    results = hamming_knn2_pairs(query_all, query_offsets, train_all, train_offsets, pairs, device="cpu")
    assert len(results) == len(pairs)
    for (qb, tb), got in zip(pairs, results, strict=True):
        query = query_all[query_offsets[qb] : query_offsets[qb + 1]]
        train = train_all[train_offsets[tb] : train_offsets[tb + 1]]
        _assert_same(got, hamming_knn2(query, train, device="cpu"))
    one_thread = hamming_knn2_pairs(query_all, query_offsets, train_all, train_offsets, pairs, threads=1)
    for a, b in zip(one_thread, results, strict=True):
        _assert_same(a, b)
    assert hamming_knn2_pairs(query_all, query_offsets, train_all, train_offsets, np.zeros((0, 2), int)) == []


@pytest.mark.parametrize(
    ("offsets", "pairs"),
    [
        ([0, 5, 4, 10], [[0, 0]]),  # decreasing
        ([1, 10], [[0, 0]]),  # does not start at 0
        ([0, 5, 9], [[0, 0]]),  # does not end at the row count
        ([0, 5, 10], [[2, 0]]),  # block out of range
        ([0, 5, 10], [[0, -1]]),
        ([0, 5, 10], [[0, 0, 0]]),  # not (P, 2)
        ([0, 5, 10], [[0.0, 1.0]]),  # not integers
    ],
)
def test_bad_pairs_or_offsets_raise(offsets: list[int], pairs: list[list[float]]) -> None:
    rng = np.random.default_rng(3)
    rows = _random(rng, 10)
    with pytest.raises(ConfigError):
        hamming_knn2_pairs(rows, offsets, rows, [0, 10], pairs)


def test_ratio_test_is_strict_and_skipped_without_second_neighbour() -> None:
    query = _with_bits([0, 0])
    # Query 0 vs rows at distances 20 and 40: 20 < 0.5 * 40 fails (strict). Distances 19 and 40 pass.
    qi, ti, dist = match_descriptors(query[:1], _with_bits([40, 20]), ratio=0.5, max_distance=100)
    assert qi.size == 0
    qi, ti, dist = match_descriptors(query[:1], _with_bits([40, 19]), ratio=0.5, max_distance=100)
    assert (qi.tolist(), ti.tolist(), dist.tolist()) == ([0], [1], [19])
    # One train row: no second neighbour (distance 257), so only the distance cap applies.
    qi, ti, dist = match_descriptors(query, _with_bits([80]), ratio=0.5, max_distance=80)
    assert (qi.tolist(), ti.tolist(), dist.tolist()) == ([0, 1], [0, 0], [80, 80])
    qi, _, _ = match_descriptors(query, _with_bits([81]), ratio=0.5, max_distance=80)
    assert qi.size == 0
    qi, _, _ = match_descriptors(query, _with_bits([]), ratio=0.5, max_distance=80)
    assert qi.size == 0
    for result in match_descriptors(_with_bits([]), _with_bits([1, 2])):
        assert result.dtype == np.int32 and result.size == 0


def test_match_against_oracle_rule() -> None:
    rng = np.random.default_rng(4)
    train = _random(rng, 300)
    # Noisy copies of train rows, each with its own bit-flip rate: the cleaner ones pass, the noisier fail.
    flip_rate = rng.uniform(0.05, 0.45, (200, 1))
    query = train[rng.integers(0, 300, 200)] ^ np.packbits(rng.random((200, 256)) < flip_rate, axis=1)
    want = knn2_numpy(query, train)
    keep = (want.dist1 <= 64) & (want.dist1 < 0.75 * want.dist2)
    qi, ti, dist = match_descriptors(query, train, ratio=0.75, max_distance=64)
    np.testing.assert_array_equal(qi, np.flatnonzero(keep))
    np.testing.assert_array_equal(ti, want.idx1[keep])
    np.testing.assert_array_equal(dist, want.dist1[keep])
    assert 0 < qi.size < 200


def test_cross_check_keeps_only_mutual_nearest() -> None:
    # Train row 0 is query 0's nearest (distance 10), but query 1 is nearer still to it (distance 0).
    query = _with_bits([0, 10, 150])
    train = _with_bits([10, 100])
    qi, ti, _ = match_descriptors(query, train, ratio=1.0, max_distance=256)
    assert (qi.tolist(), ti.tolist()) == ([0, 1, 2], [0, 0, 1])
    qi, ti, dist = match_descriptors(query, train, ratio=1.0, max_distance=256, cross_check=True)
    assert (qi.tolist(), ti.tolist(), dist.tolist()) == ([1, 2], [0, 1], [0, 50])


def test_nearest_word() -> None:
    rng = np.random.default_rng(6)
    words = _random(rng, 64)
    descriptors = _random(rng, 500)
    got = nearest_word(descriptors, words)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, knn2_numpy(descriptors, words).idx1)
    assert nearest_word(_random(rng, 0), words).shape == (0,)
    with pytest.raises(ConfigError, match="vocabulary is empty"):
        nearest_word(descriptors, _random(rng, 0))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (np.zeros((4, 32), np.int32), "uint8"),
        (np.zeros((4, 32), np.float32), "uint8"),
        (np.zeros(32, np.uint8), "2-D"),
        (np.zeros((4, 30), np.uint8), "multiple of 8"),
        (np.zeros((4, 0), np.uint8), "multiple of 8"),
        (np.zeros((4, 4096), np.uint8), "at most"),
        (np.zeros((4, 64), np.uint8), "differ in width"),
    ],
)
def test_bad_descriptors_raise_config_error(query: np.ndarray, message: str) -> None:
    train = np.zeros((3, 32), np.uint8)
    for call in (hamming_knn2, match_descriptors, nearest_word):
        with pytest.raises(ConfigError, match=message):
            call(query, train)


def test_bad_match_options_raise() -> None:
    rows = np.zeros((3, 32), np.uint8)
    with pytest.raises(ConfigError):
        match_descriptors(rows, rows, ratio=0.0)
    with pytest.raises(ConfigError):
        match_descriptors(rows, rows, max_distance=-1)


def test_gpu_without_cuda_raises_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "_cupy_installed", lambda: False)  # as on a machine without CuPy
    monkeypatch.setenv("MTBSYNC_DEVICE", "gpu")
    rows = np.zeros((3, 32), np.uint8)
    with pytest.raises(DeviceError, match="CuPy"):
        hamming_knn2(rows, rows)
    with pytest.raises(DeviceError):
        backend_name()
    with pytest.raises(DeviceError):
        backend_name("gpu")
    # An explicit device argument wins over the environment.
    assert backend_name("cpu") == "cpu"
    assert len(hamming_knn2(rows, rows, device="cpu")) == 3


def test_auto_picks_cpu_and_says_why_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(backend, "_cupy_installed", lambda: False)
    with caplog.at_level(logging.INFO, logger="mtbsync"):
        assert backend_name() == "cpu"
        assert backend_name("auto") == "cpu"
        assert backend.active_backend().name == "cpu"
    lines = [r.getMessage() for r in caplog.records if "matching backend" in r.getMessage()]
    assert len(lines) == 1
    assert "cpu" in lines[0] and "automatically" in lines[0] and "CuPy" in lines[0]


def test_environment_forces_the_device_and_is_named(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MTBSYNC_DEVICE", "CPU")
    with caplog.at_level(logging.INFO, logger="mtbsync"):
        assert backend_name() == "cpu"
        assert backend_name("cpu") == "cpu"  # a stage passing the chosen name back does not log again
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 1 and "MTBSYNC_DEVICE" in lines[0]


def test_concurrent_callers_get_their_own_results() -> None:
    rng = np.random.default_rng(8)
    jobs = [(_random(rng, 300), _random(rng, 400)) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda job: hamming_knn2(*job), jobs))
        pooled = list(pool.map(lambda job: cpu.knn2(*job, parallel=True), jobs))
    for (query, train), a, b in zip(jobs, got, pooled, strict=True):
        want = knn2_numpy(query, train)
        _assert_same(a, want)
        _assert_same(b, want)


def test_bad_device_names_raise_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="device"):
        backend_name("tpu")
    monkeypatch.setenv("MTBSYNC_DEVICE", "cuda")
    with pytest.raises(ConfigError, match="MTBSYNC_DEVICE"):
        backend_name()


def test_failing_backend_falls_back_to_cpu_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> Knn2:
        raise RuntimeError("out of device memory")

    fake = backend.Backend(
        name="gpu", detail="test double", knn2=broken, knn2_pairs=broken, nearest=broken, match=broken
    )
    monkeypatch.setitem(backend._FACTORIES, "gpu", lambda: fake)
    rng = np.random.default_rng(7)
    query, train = _random(rng, 20), _random(rng, 30)
    assert backend_name("gpu") == "gpu"
    assert backend_name("auto") == "gpu"
    with caplog.at_level(logging.WARNING, logger="mtbsync"):
        got = hamming_knn2(query, train, device="gpu")
        hamming_knn2(query, train, device="auto")
    _assert_same(got, knn2_numpy(query, train))
    assert sum("failed" in r.getMessage() for r in caplog.records) == 1
    assert backend_name("gpu") == backend_name("auto") == "cpu"


_widths = st.sampled_from([8, 32, 64])


@st.composite
def _descriptor_sets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    width = draw(_widths)
    # Rows drawn from a small pool, and bytes from a small alphabet, so ties and duplicates are common.
    byte = st.sampled_from([0, 1, 3, 128, 255])
    row = st.lists(byte, min_size=width, max_size=width)
    pool = draw(st.lists(row, min_size=1, max_size=6))
    n_query = draw(st.integers(0, 12))
    n_train = draw(st.integers(0, 40))
    pick = st.integers(0, len(pool) - 1)
    query = np.array([pool[draw(pick)] for _ in range(n_query)], np.uint8).reshape(n_query, width)
    train = np.array([pool[draw(pick)] for _ in range(n_train)], np.uint8).reshape(n_train, width)
    return query, train


@settings(max_examples=80, deadline=None)
@given(_descriptor_sets(), st.booleans())
def test_property_kernel_equals_oracle(data: tuple[np.ndarray, np.ndarray], parallel: bool) -> None:
    query, train = data
    _assert_same(cpu.knn2(query, train, parallel=parallel), knn2_numpy(query, train))

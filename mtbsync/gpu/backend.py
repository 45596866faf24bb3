"""Which backend runs the Hamming kernels: decided once, recorded by name.

Backends are kept in a small registry of factories (:data:`_FACTORIES`). A factory either returns a
:class:`Backend` (a name plus a table of kernel functions) or raises :class:`~mtbsync.errors.DeviceError`
saying why it cannot run here. ``auto`` tries the entries of :data:`_AUTO_ORDER` in turn and keeps the
first that works; an explicit ``cpu`` or ``gpu`` gets that backend or the error.

The device comes from the caller's ``device`` argument; the environment variable ``MTBSYNC_DEVICE``
(``auto`` | ``cpu`` | ``gpu``) only replaces ``auto``, so an explicit ``--device`` on the command line wins
over the environment and the environment wins over the default.

The ``"gpu"`` factory builds :class:`mtbsync.gpu.cuda.CudaMatcher` (numba-cuda kernel, CuPy arrays and
memory pool) when CuPy imports, numba-cuda is installed, a CUDA device answers and a tiny self-test launch
agrees with the CPU kernel. ``MTBSYNC_NO_GPU=1`` (the CLI's ``--no-gpu``) refuses it without probing. Its
kernels take and return host NumPy arrays (it owns its transfers and buffers) and equal the CPU kernel's
bit for bit; if one of them raises at run time, :func:`run_kernel` logs one warning, switches the cached
decision to the CPU and reruns the call there, so a run still finishes and records ``cpu``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtbsync.errors import ConfigError, DeviceError

log = logging.getLogger("mtbsync")

ENV_VAR = "MTBSYNC_DEVICE"
NO_GPU_ENV_VAR = "MTBSYNC_NO_GPU"  # set by the CLI's --no-gpu; also read by mtbsync.telemetry and mtbsync.io
DEVICES = ("auto", "cpu", "gpu")
# Widest descriptor, in bytes, every backend must handle (the CPU kernel's keys hold 15 bits of distance).
MAX_WIDTH = 4088


@dataclass(frozen=True)
class Knn2:
    """The two nearest train descriptors of each query descriptor (one row per query).

    Ties are broken by the lowest train index, for both neighbours. Where a neighbour does not exist
    (train has fewer than 2 rows) its index is -1 and its distance is ``bits + 1`` (257 for ORB), so it
    is larger than any real distance.

    Attributes:
        idx1: (n,) int32 index of the nearest train row.
        dist1: (n,) int32 Hamming distance to it.
        idx2: (n,) int32 index of the second-nearest train row (another row than ``idx1``).
        dist2: (n,) int32 Hamming distance to it.
    """

    idx1: np.ndarray
    dist1: np.ndarray
    idx2: np.ndarray
    dist2: np.ndarray

    def __len__(self) -> int:
        return int(self.idx1.shape[0])


@dataclass(frozen=True)
class Backend:
    """One way of running the Hamming kernels.

    All kernels receive validated inputs: C-contiguous ``uint8`` descriptors of equal width, a multiple
    of 8 bytes.

    Attributes:
        name: The device it runs on, as recorded in stage timings (``cpu`` or ``gpu``); also a valid
            ``device`` argument, so a stage can pass it on to later calls.
        detail: What exactly runs (library, threads), for logs.
        knn2: ``(query, train) -> Knn2``.
        knn2_pairs: ``(query_all, query_offsets, train_all, train_offsets, pairs, threads) ->
            (Knn2, out_offsets)``, the per-pair results concatenated.
        nearest: ``(descriptors, vocabulary) -> int32 idx1``.
        match: ``(query, train, ratio, max_distance) -> (Knn2, keep)``: :attr:`knn2` plus the bool mask
            of Lowe's ratio test and the distance cap (fused into the GPU kernel; computed on the host
            from the :class:`Knn2` for the CPU, with the same float64 rule).
    """

    name: str
    detail: str
    knn2: Callable[[np.ndarray, np.ndarray], Knn2]
    knn2_pairs: Callable[..., tuple[Knn2, np.ndarray]]
    nearest: Callable[[np.ndarray, np.ndarray], np.ndarray]
    match: Callable[[np.ndarray, np.ndarray, float, int], tuple[Knn2, np.ndarray]]


def ratio_keep(knn: Knn2, ratio: float, max_distance: int) -> np.ndarray:
    """Lowe's ratio test and the distance cap as a bool mask, the rule the GPU kernel fuses.

    A query keeps its nearest row when it has one, ``dist1 <= max_distance`` and ``dist1 < ratio * dist2``
    (strict, float64), the last skipped when there is no second neighbour.

    Args:
        knn: Two-nearest-neighbour rows.
        ratio: Lowe's ratio in (0, 1].
        max_distance: Largest distance accepted.

    Returns:
        (n,) bool.
    """
    keep = (knn.idx1 >= 0) & (knn.dist1 <= max_distance)
    keep &= (knn.idx2 < 0) | (knn.dist1 < ratio * knn.dist2.astype(np.float64))
    return keep


def _cpu_backend() -> Backend:
    import numba

    from mtbsync.gpu import cpu

    def match(
        query: np.ndarray, train: np.ndarray, ratio: float, max_distance: int
    ) -> tuple[Knn2, np.ndarray]:
        knn = cpu.knn2(query, train)
        return knn, ratio_keep(knn, ratio, max_distance)

    return Backend(
        name="cpu",
        detail=f"numba {numba.__version__} CPU kernel, {numba.config.NUMBA_NUM_THREADS} threads",
        knn2=cpu.knn2,
        knn2_pairs=cpu.knn2_pairs,
        nearest=cpu.nearest,
        match=match,
    )


def gpu_disabled() -> bool:
    """Whether the user turned the GPU off (``MTBSYNC_NO_GPU=1``, the CLI's ``--no-gpu``)."""
    return os.environ.get(NO_GPU_ENV_VAR, "").strip() not in ("", "0")


def _cupy_installed() -> bool:
    # find_spec rather than import: importing CuPy takes about a second, wasted if we then refuse it.
    return importlib.util.find_spec("cupy") is not None


def _numba_cuda_installed() -> bool:
    return importlib.util.find_spec("numba_cuda") is not None


def _self_test(matcher: Any) -> None:
    """Compile the kernel and check one small batch against the CPU kernel (bit for bit)."""
    from mtbsync.gpu import cpu

    rng = np.random.default_rng(7)
    train = rng.integers(0, 256, (70, 32), dtype=np.uint8)
    query = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    query[:3], train[40] = train[5], train[5]  # ties
    got, want = matcher.knn2(query, train), cpu.knn2(query, train)
    for name in ("idx1", "dist1", "idx2", "dist2"):
        if not np.array_equal(getattr(got, name), getattr(want, name)):
            raise RuntimeError(f"GPU self-test disagrees with the CPU kernel in {name}")


def _gpu_backend() -> Backend:
    if gpu_disabled():
        raise DeviceError(f"the GPU is turned off (--no-gpu / {NO_GPU_ENV_VAR}=1)")
    if not _cupy_installed() or not _numba_cuda_installed():
        raise DeviceError(
            "GPU matching needs CuPy and numba-cuda (pip install 'mtbsync[gpu]'); use --device cpu"
        )
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy raises its own CUDA error types; any of them means "no usable GPU"
        raise DeviceError(f"no usable CUDA device ({_first_line(exc)}); use --device cpu") from exc
    if count == 0:
        raise DeviceError("no CUDA device found; use --device cpu")
    try:
        from mtbsync.gpu import cuda

        matcher = cuda.CudaMatcher()
        _self_test(matcher)
        summary = cuda.device_summary()
    except Exception as exc:  # no NVVM/driver mismatch/compile failure: the CPU still works
        raise DeviceError(f"the GPU kernel cannot run here ({_first_line(exc)}); use --device cpu") from exc
    return Backend(
        name="gpu",
        detail=f"numba-cuda kernel on {summary}, CuPy {cupy.__version__} memory pool",
        knn2=matcher.knn2,
        knn2_pairs=matcher.knn2_pairs,
        nearest=matcher.nearest,
        match=matcher.match,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


# Name -> factory. A new backend registers here; the order auto tries them in is _AUTO_ORDER.
_FACTORIES: dict[str, Callable[[], Backend]] = {"cpu": _cpu_backend, "gpu": _gpu_backend}
_AUTO_ORDER = ("gpu", "cpu")

_lock = threading.Lock()
_decided: dict[str, Backend] = {}  # requested device ("auto", "cpu", "gpu") -> backend chosen for it
_refused: dict[str, DeviceError] = {}  # backend name -> why it cannot run here
_announced: set[str] = set()  # backend names already logged at INFO


def _requested(device: str) -> tuple[str, str]:
    """The device asked for, and who asked (``argument``, ``MTBSYNC_DEVICE`` or ``default``)."""
    choice = str(device).strip().lower()
    if choice not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if choice != "auto":
        return choice, "argument"
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if not env:
        return "auto", "default"
    if env not in DEVICES:
        raise ConfigError(f"{ENV_VAR} must be one of {', '.join(DEVICES)}, not {env!r}")
    return env, ENV_VAR


def requested_device(device: str = "auto") -> str:
    """The device asked for, after ``MTBSYNC_DEVICE`` has filled in ``auto``.

    Args:
        device: ``auto``, ``cpu`` or ``gpu`` (case-insensitive).

    Returns:
        ``auto``, ``cpu`` or ``gpu``.

    Raises:
        ConfigError: ``device`` or the environment variable is not one of those.
    """
    return _requested(device)[0]


def _build(name: str) -> Backend:
    # Called with _lock held. A refusal is remembered so a missing GPU is probed once per process.
    if name in _refused:
        raise _refused[name]
    try:
        return _FACTORIES[name]()
    except DeviceError as exc:
        _refused[name] = exc
        raise


def _announce(backend: Backend, why: str) -> None:
    # INFO once per backend: stages pass the chosen name back in as ``device``, which must not log again.
    level = logging.DEBUG if backend.name in _announced else logging.INFO
    _announced.add(backend.name)
    log.log(level, "matching backend: %s, %s; %s", backend.name, why, backend.detail)


def active_backend(device: str = "auto") -> Backend:
    """The backend that runs kernels for ``device``, decided on the first call and then reused.

    Args:
        device: ``auto``, ``cpu`` or ``gpu``; ``auto`` defers to ``MTBSYNC_DEVICE``.

    Returns:
        The chosen :class:`Backend`; its ``name`` is what results should record.

    Raises:
        ConfigError: Unknown device name.
        DeviceError: ``gpu`` was requested and cannot run here (the message says why).
    """
    choice, source = _requested(device)
    with _lock:
        backend = _decided.get(choice)
        if backend is not None:
            return backend
        if choice == "auto":
            reasons = []
            for name in _AUTO_ORDER:
                try:
                    backend = _build(name)
                except DeviceError as exc:
                    reasons.append(f"{name} unavailable: {exc.message}")
                    continue
                break
            assert backend is not None, "the CPU backend always builds"
            _announce(backend, f"chosen automatically ({'; '.join(reasons) or 'first choice'})")
        else:
            backend = _build(choice)
            _announce(backend, f"requested by {'the caller' if source == 'argument' else source}")
        _decided[choice] = backend
        # Stages pass the chosen name back in as ``device``: it must reach this same backend (one
        # instance, one self-test) and, after a failure, the same CPU fallback.
        _decided.setdefault(backend.name, backend)
        return backend


def backend_name(device: str = "auto") -> str:
    """Name of the backend that runs for ``device`` (``cpu`` or ``gpu``).

    Args:
        device: ``auto``, ``cpu`` or ``gpu``.

    Returns:
        The backend's name, fit to record with results and to pass back as ``device``.

    Raises:
        ConfigError: Unknown device name.
        DeviceError: ``gpu`` was requested and cannot run here.
    """
    return active_backend(device).name


def run_kernel(device: str, kernel: str, *args: Any) -> Any:
    """Run one kernel (``knn2``, ``knn2_pairs``, ``nearest`` or ``match``) on the backend for ``device``.

    A failure inside a non-CPU backend is not fatal: it is logged once as a warning, the decision for
    ``device`` becomes the CPU for the rest of the process, and the call is rerun there.

    Args:
        device: ``auto``, ``cpu`` or ``gpu``.
        kernel: Attribute name of the kernel in :class:`Backend`.
        *args: The kernel's arguments.

    Returns:
        The kernel's result.

    Raises:
        ConfigError: Unknown device name.
        DeviceError: ``gpu`` was requested and cannot run here.
    """
    backend = active_backend(device)
    try:
        return getattr(backend, kernel)(*args)
    except Exception as exc:
        if backend.name == "cpu":
            raise
        cpu = active_backend("cpu")
        with _lock:
            # Every request that led to the failed backend now leads to the CPU; the first thread to get
            # here warns, later ones find nothing left to switch.
            stale = [choice for choice, chosen in _decided.items() if chosen is backend]
            for choice in stale:
                _decided[choice] = cpu
            if stale:
                log.warning(
                    "%s backend failed in %s (%s); matching on the CPU from now on",
                    backend.name,
                    kernel,
                    _first_line(exc),
                )
        return getattr(cpu, kernel)(*args)


def _reset_backend_cache() -> None:
    """Forget every decision and refusal (for tests that change ``MTBSYNC_DEVICE``)."""
    with _lock:
        _decided.clear()
        _refused.clear()
        _announced.clear()

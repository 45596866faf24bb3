"""Deterministic, seamless noise for the procedural world.

Every random value is a hash of integer lattice coordinates (never a stateful generator), so any
piece of the world can be made on its own, in any order, and adjacent pieces join without seams.
The hash is SplitMix64 on NumPy ``uint64`` arrays: the same bits on every platform and NumPy version.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def _as_u64(key: int | np.ndarray) -> np.ndarray:
    # Negative lattice indices are fine: int64 bits are reinterpreted, not converted.
    return np.atleast_1d(np.asarray(key, dtype=np.int64)).view(np.uint64)


def hash_uniform(*keys: int | np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) from integer keys (broadcast together), one per element.

    Args:
        *keys: Integers or integer arrays (seed, layer, lattice indices ...), broadcast together.

    Returns:
        ``float64`` array of the broadcast shape (at least 1-D).
    """
    with np.errstate(over="ignore"):
        h = np.full((1,), 0x243F6A8885A308D3, dtype=np.uint64)
        for key in keys:
            h = (h ^ _as_u64(key)) * _GOLDEN
            h = (h ^ (h >> _S30)) * _MIX1
            h = (h ^ (h >> _S27)) * _MIX2
            h = h ^ (h >> _S31)
    return (h >> _S11).astype(np.float64) * (1.0 / (1 << 53))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3.0 - 2.0 * x)


def _interp_weights(coords: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Lattice cell (relative to the first lattice point) and smoothstep weight of every coordinate.

    Returns (cell index, weight of the next lattice point, first lattice index, lattice points needed).
    """
    f = coords / spacing
    i = np.floor(f).astype(np.int64)
    s = _smoothstep(f - i).astype(np.float32)
    first = int(i.min())
    return i - first, s, first, int(i.max()) - first + 2


def value_noise_2d(
    keys: Sequence[int], cols_m: np.ndarray, rows_m: np.ndarray, spacing_cols: float, spacing_rows: float
) -> np.ndarray:
    """Smooth value noise in [-0.5, 0.5] on a grid of world coordinates (metres).

    The lattice is global, so two grids that share coordinates get the same values there.

    Args:
        keys: Integers that select the noise field (world seed, layer id ...).
        cols_m: World coordinate of every column (along the trail).
        rows_m: World coordinate of every row (across the trail, or height).
        spacing_cols: Lattice spacing along the columns, metres (the feature size).
        spacing_rows: Lattice spacing along the rows, metres.

    Returns:
        ``float32`` array (len(rows_m), len(cols_m)).
    """
    ic, sc, c0, nc = _interp_weights(np.asarray(cols_m, dtype=np.float64), spacing_cols)
    ir, sr, r0, nr = _interp_weights(np.asarray(rows_m, dtype=np.float64), spacing_rows)
    lattice_rows = np.arange(r0, r0 + nr)[:, None]
    lattice_cols = np.arange(c0, c0 + nc)[None, :]
    lattice = hash_uniform(*keys, lattice_rows, lattice_cols).astype(np.float32) - 0.5
    # Separable interpolation: along the columns first (on the small lattice), then along the rows.
    along = lattice[:, ic] * (1.0 - sc) + lattice[:, ic + 1] * sc
    return along[ir, :] * (1.0 - sr)[:, None] + along[ir + 1, :] * sr[:, None]


def fbm_2d(
    keys: Sequence[int],
    cols_m: np.ndarray,
    rows_m: np.ndarray,
    spacings: Sequence[tuple[float, float]],
    gains: Sequence[float],
) -> np.ndarray:
    """Sum of value-noise octaves (fractal noise); each octave has its own (cols, rows) spacing and gain."""
    total = np.zeros((len(rows_m), len(cols_m)), dtype=np.float32)
    for octave, ((sc, sr), gain) in enumerate(zip(spacings, gains, strict=True)):
        total += gain * value_noise_2d((*keys, octave), cols_m, rows_m, sc, sr)
    return total


def value_noise_1d(keys: Sequence[int], x: np.ndarray | float, spacing: float) -> np.ndarray:
    """Smooth (C1) value noise in [-0.5, 0.5] at positions ``x`` (any unit); defined everywhere."""
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    f = x / spacing
    i = np.floor(f).astype(np.int64)
    s = _smoothstep(f - i)
    a = hash_uniform(*keys, i)
    b = hash_uniform(*keys, i + 1)
    return a + (b - a) * s - 0.5


def smooth_signal(keys: Sequence[int], x: np.ndarray | float, spacings: Sequence[float]) -> np.ndarray:
    """Sum of 1-D noise octaves, scaled to roughly [-1, 1]: a smooth random signal of ``x``."""
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    total = np.zeros_like(x)
    norm = 0.0
    for octave, spacing in enumerate(spacings):
        gain = 1.0 / (octave + 1)
        total += gain * value_noise_1d((*keys, octave), x, spacing)
        norm += gain * 0.5
    # Sums of uniform octaves rarely reach their bounds; 0.6 of the bound maps typical peaks near 1.
    return np.clip(total / (0.6 * norm), -1.0, 1.0)

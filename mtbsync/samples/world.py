"""A procedural mountain-bike trail: a straight forest corridor with unique texture every metre.

The world is a ground plane (y = 0) between two vertical "walls" of forest at x = -LEFT_GAP and
x = +RIGHT_GAP, running along +z (the arc length of the trail, metres), with "arches" (branches and
foliage hanging over the trail, facing the rider) every 20 m or so. Everything is a pure function of
``world_seed`` and position: any 10 m chunk's texture is painted on demand (see `paint.py`), chunks
join without seams, a trail of any length costs memory only for the chunks in view, and two
renderers of the same world (reference run, new run) see exactly the same place.

Texture layout of a chunk (level 0, ``TEXELS_PER_M`` texels per metre): rows 0..191 the ground
(x from -LEFT_GAP to +RIGHT_GAP), then the left and the right wall (576 rows each, y from WALL_H
down to 0); columns run along z. Levels 1..4 halve it (a mip pyramid against aliasing far away).
Level 4, the only one used far away, is painted directly at its own density (`chunk_far`), so the
distant trail costs almost nothing.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from mtbsync.samples import paint
from mtbsync.samples.conditions import Season
from mtbsync.samples.noise import hash_uniform, smooth_signal
from mtbsync.samples.paint import CHUNK_M, PALETTE, TEXELS_PER_M, Canvas, PaintObject

LEVELS = 5  # mip levels; level k has 1/2**k of the density; every block stays divisible by 2**4
FAR_LEVEL = LEVELS - 1
_LANDMARK_KINDS = ("post", "sign", "tape", "boulder", "ribbon", "arrow")
_LANDMARK_PROBABILITY = 0.65  # per 10 m chunk: about one landmark every 15 m
_ARCH_PROBABILITY = 0.55  # per 10 m chunk
_K_LANDMARK, _K_OBJECTS, _K_LANDMARK_DRAW, _K_KINDS, _K_LEAVES = 7, 3, 8, 12, 13
_LANDMARK_LAYER = 4  # the drawing layer of landmarks (see `paint.PaintObject`)

T = TypeVar("T")


@dataclass(frozen=True)
class Landmark:
    """A distinctive object by the trail; the sample markers are placed where the rider passes one.

    Attributes:
        z: Arc length (metres) of the object along the trail.
        kind: ``post``, ``sign``, ``tape``, ``boulder``, ``ribbon`` or ``arrow``.
        side: ``left`` or ``right``.
        colour: Paint colour, ``#rrggbb``.
        code: Short code painted on it (e.g. ``C14``); also makes marker names unique.
    """

    z: float
    kind: str
    side: str
    colour: str
    code: str

    @property
    def name(self) -> str:
        """Marker name, e.g. ``Sign C14``."""
        return f"{self.kind.capitalize()} {self.code}"

    @property
    def description(self) -> str:
        """One-line description for the marker comment."""
        return f"{self.kind} on the {self.side} at {self.z:.1f} m"


class TrailWorld:
    """One procedural trail, fully determined by ``seed``.

    Thread-safe: renderers in several threads may share one world.

    Args:
        seed: World seed; a different seed is a different trail entirely.
        cache_chunks: Full-resolution chunks kept in memory (about 2 MB each); a renderer needs 5-7
            at a time, and a new run rendered after the reference finds the chunks it rode through.
        season: Another look of the same trail (foliage colour, fallen leaves, fine ground
            texture); every object, landmark and arch stays where it is (None: the usual look).
    """

    def __init__(self, seed: int, *, cache_chunks: int = 40, season: Season | None = None) -> None:
        self.seed = int(seed)
        self.season = None if season is None or season.is_neutral else season
        self._season_lut = (
            None
            if self.season is None
            else paint.season_lut(self.season.foliage_hue_deg, self.season.saturation, self.season.brightness)
        )
        self._lock = threading.Lock()
        self._caches: dict[str, OrderedDict] = {
            "full": OrderedDict(),
            "far": OrderedDict(),
            "arch": OrderedDict(),
        }
        self._objects_cache: OrderedDict[int, list[PaintObject]] = OrderedDict()
        self._cache_size = {"full": cache_chunks, "far": 4 * cache_chunks, "arch": cache_chunks}
        self._arch_of_chunk: dict[int, float] = {}
        tint = hash_uniform(self.seed, 99, np.arange(3)) - 0.5
        self.fog_bgr = tuple(float(c) for c in np.array([150.0, 168.0, 152.0]) + 20 * tint)
        self.sky_horizon_bgr = (232.0, 222.0, 205.0)
        self.sky_zenith_bgr = (230.0, 185.0, 140.0)

    # -- smooth functions of the arc length, shared by every run on this trail ------------------
    def trail_centre(self, z: np.ndarray | float) -> np.ndarray:
        """Lateral position (m) of the dirt track's centre line at arc length ``z``."""
        return 0.35 * smooth_signal((self.seed, paint.L_LINE, 1), z, (23.0, 9.0))

    def racing_line(self, z: np.ndarray | float) -> np.ndarray:
        """Lateral position (m) riders follow: the track centre plus their habitual line."""
        return self.trail_centre(z) + 0.12 * smooth_signal((self.seed, paint.L_LINE, 2), z, (5.0,))

    def terrain_height(self, z: np.ndarray | float) -> np.ndarray:
        """Bumps of the ground under the wheels (m), felt as camera height changes."""
        return 0.05 * smooth_signal((self.seed, paint.L_LINE, 3), z, (2.3, 0.9))

    def terrain_pitch(self, z: np.ndarray | float) -> np.ndarray:
        """Slope changes (rad), felt as camera pitch."""
        return 0.05 * smooth_signal((self.seed, paint.L_LINE, 4), z, (17.0, 6.0))

    def trail_heading(self, z: np.ndarray | float) -> np.ndarray:
        """Where riders look (rad of yaw) as the trail bends."""
        return 0.07 * smooth_signal((self.seed, paint.L_LINE, 5), z, (31.0, 12.0))

    def clearing(self, z: np.ndarray | float) -> np.ndarray:
        """0 in dense forest, up to 1 in a clearing (few trunks, low tree line)."""
        raw = smooth_signal((self.seed, paint.L_LINE, 6), z, (14.0, 6.0))
        return np.clip((raw - 0.35) / 0.4, 0.0, 1.0)

    # -- landmarks and arches ---------------------------------------------------------------------
    def landmark_of_chunk(self, chunk: int) -> Landmark | None:
        """The landmark in 10 m chunk ``chunk`` (z from chunk*10 to chunk*10+10), or None."""
        rng = self._rng(chunk, _K_LANDMARK)
        if rng.random() >= _LANDMARK_PROBABILITY:
            return None
        # Kinds in a per-world shuffled cycle: every stretch of trail has a mix of them.
        order = np.argsort(hash_uniform(self.seed, _K_KINDS, np.arange(len(_LANDMARK_KINDS))))
        kind = _LANDMARK_KINDS[int(order[chunk % len(_LANDMARK_KINDS)])]
        side = "left" if rng.random() < 0.5 else "right"
        colour = PALETTE[int(rng.integers(len(PALETTE)))]
        z = chunk * CHUNK_M + 2.0 + 6.0 * rng.random()
        letter = chr(ord("A") + (chunk * 7 + self.seed) % 26)
        return Landmark(z=round(z, 3), kind=kind, side=side, colour=colour, code=f"{letter}{chunk % 1000}")

    def landmarks(self, z_start: float, z_end: float) -> list[Landmark]:
        """Every landmark with ``z_start <= z <= z_end``, by arc length."""
        out = []
        for chunk in range(math.floor(z_start / CHUNK_M), math.floor(z_end / CHUNK_M) + 1):
            lm = self.landmark_of_chunk(chunk)
            if lm is not None and z_start <= lm.z <= z_end:
                out.append(lm)
        return out

    def arches(self, z_start: float, z_end: float) -> list[float]:
        """Arc lengths of the arches with ``z_start <= z <= z_end``, nearest first.

        The walls are seen at a grazing angle, so their texture far ahead is squeezed to nothing; an
        arch faces the camera, so it stays recognisable over tens of metres.
        """
        out = []
        for chunk in range(math.floor(z_start / CHUNK_M), math.floor(z_end / CHUNK_M) + 1):
            z = self._arch_of_chunk.get(chunk, math.nan)
            if z == -math.inf:
                continue
            if math.isnan(z):  # not looked up yet (renderers ask every frame: remember the answer)
                u = hash_uniform(self.seed, paint.L_ARCH, chunk, np.arange(2))
                z = chunk * CHUNK_M + 1.0 + 8.0 * float(u[1]) if u[0] < _ARCH_PROBABILITY else -math.inf
                if len(self._arch_of_chunk) > 100_000:
                    self._arch_of_chunk.clear()
                self._arch_of_chunk[chunk] = z
            if z_start <= z <= z_end:
                out.append(z)
        return out

    # -- textures -------------------------------------------------------------------------------
    def chunk_levels(self, chunk: int) -> list[np.ndarray]:
        """Chunk ``chunk``'s texture as a mip pyramid: level k is (LEVEL0_ROWS/2**k, 400/2**k, 3) uint8."""
        return self._cached("full", chunk, lambda: _pyramid(self._paint_chunk(chunk, TEXELS_PER_M)))

    def chunk_far(self, chunk: int) -> np.ndarray:
        """The far level (``FAR_LEVEL``) of chunk ``chunk``, painted directly at its density.

        Renderers use this for level ``FAR_LEVEL`` everywhere (near or far), so a place looks the
        same whatever the history of the caches.
        """
        rho = TEXELS_PER_M / (1 << FAR_LEVEL)
        return self._cached("far", chunk, lambda: self._paint_chunk(chunk, rho))

    def arch_levels(self, z: float) -> list[np.ndarray]:
        """The arch at ``z`` (BGRA, alpha = foliage) as a mip pyramid; see `paint.paint_arch`."""
        return self._cached("arch", round(z * 1000), lambda: _pyramid(self._paint_arch(z)))

    def _paint_arch(self, z: float) -> np.ndarray:
        image = paint.paint_arch(self.seed, z)
        if self._season_lut is not None:
            image[..., :3] = paint.apply_season(np.ascontiguousarray(image[..., :3]), self._season_lut)
        return image

    def _cached(self, kind: str, key: int, make: Callable[[], T]) -> T:
        cache = self._caches[kind]
        with self._lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        value = make()  # outside the lock: two threads may both paint it; the results are equal
        with self._lock:
            cache[key] = value
            while len(cache) > self._cache_size[kind]:
                cache.popitem(last=False)
        return value

    def _rng(self, chunk: int, purpose: int) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, purpose, chunk + (1 << 40)])

    def _paint_chunk(self, chunk: int, rho: float) -> np.ndarray:
        z0 = chunk * CHUNK_M
        zs = z0 + (np.arange(round(CHUNK_M * rho)) + 0.5) / rho
        season = self.season
        fine_seed = None if season is None else season.texture_seed
        bases = {
            "ground": paint.ground_base(self.seed, zs, rho, self.trail_centre(zs), fine_seed=fine_seed),
            "left": paint.wall_base(
                self.seed, paint.L_LEFT, zs, rho, self.clearing(zs), self.sky_horizon_bgr
            ),
            "right": paint.wall_base(
                self.seed, paint.L_RIGHT, zs, rho, self.clearing(zs), self.sky_horizon_bgr
            ),
        }
        canvases = {
            name: Canvas(np.clip(img, 0, 255).astype(np.uint8), name, z0, rho) for name, img in bases.items()
        }
        # Objects of the neighbouring chunks may reach into this one; drawing them all in one global
        # order (layer, chunk, sequence) makes the chunk borders invisible.
        todo = []
        for c in (chunk - 1, chunk, chunk + 1):
            for seq, obj in enumerate(self._objects(c)):
                if obj.z_max >= z0 - 0.05 and obj.z_min <= z0 + CHUNK_M + 0.05 and rho >= obj.min_rho:
                    todo.append((obj.layer, c, seq, obj))
        todo.sort(key=lambda item: item[:3])
        if self._season_lut is None:
            for *_, obj in todo:
                obj.draw(canvases[obj.surface])
        else:
            # The season recolours nature, not the landmarks' paint: landmarks are drawn after it.
            for *_, obj in todo:
                if obj.layer < _LANDMARK_LAYER:
                    obj.draw(canvases[obj.surface])
            for canvas in canvases.values():
                canvas.img = paint.apply_season(canvas.img, self._season_lut)
            for *_, obj in todo:
                if obj.layer >= _LANDMARK_LAYER:
                    obj.draw(canvases[obj.surface])
        stacked = np.concatenate([canvases[n].img for n in ("ground", "left", "right")], axis=0)
        grain_seed = self.seed if fine_seed is None else fine_seed
        return paint.add_grain(stacked, grain_seed, chunk) if rho >= TEXELS_PER_M else stacked

    def _objects(self, chunk: int) -> list[PaintObject]:
        """Every object anchored in ``chunk`` (it may reach into the neighbours)."""
        with self._lock:
            if chunk in self._objects_cache:
                return self._objects_cache[chunk]
        rng = self._rng(chunk, _K_OBJECTS)
        z0 = chunk * CHUNK_M
        clearing = float(self.clearing(z0 + 5.0)[0])
        objs: list[PaintObject] = []
        for side in ("left", "right"):
            for _ in range(int(rng.poisson(30.0 * (1.0 - 0.7 * clearing)))):
                objs.append(paint.far_trunk(rng, side, z0 + CHUNK_M * rng.random()))
            for _ in range(int(rng.poisson(12.0 * (1.0 - 0.8 * clearing)))):
                objs.extend(paint.trunk(rng, side, z0 + CHUNK_M * rng.random()))
            for _ in range(int(rng.poisson(22))):
                objs.append(paint.bush(rng, side, z0 + CHUNK_M * rng.random()))
        trail_x = float(self.trail_centre(z0 + 5.0)[0])
        for _ in range(int(rng.poisson(30))):
            objs.append(paint.rock(rng, z0 + CHUNK_M * rng.random(), trail_x))
        for _ in range(int(rng.poisson(1.6))):
            objs.append(paint.root(rng, z0 + CHUNK_M * rng.random()))
        for _ in range(int(rng.poisson(8))):
            objs.append(paint.stick(rng, z0 + CHUNK_M * rng.random()))
        n_leaves = int(rng.poisson(160))
        if self.season is None:
            objs.append(paint.leaves(rng, z0, n_leaves))
        elif self.season.leaf_colours != "none":
            leaf_rng = rng
            if self.season.texture_seed is not None:  # the leaves lie elsewhere this time
                leaf_rng = np.random.default_rng(
                    [self.season.texture_seed & 0xFFFFFFFF, _K_LEAVES, chunk + (1 << 40)]
                )
            colours = paint.LEAF_COLOURS[self.season.leaf_colours]
            objs.append(paint.leaves(leaf_rng, z0, n_leaves, colours))
        lm = self.landmark_of_chunk(chunk)
        if lm is not None:
            objs.extend(paint.landmark_objects(lm.kind, lm.side, lm.z, lm.colour, lm.code))
        with self._lock:
            self._objects_cache[chunk] = objs
            while len(self._objects_cache) > 8:
                self._objects_cache.popitem(last=False)
        return objs


def _pyramid(level0: np.ndarray) -> list[np.ndarray]:
    levels = [level0]
    for _ in range(1, LEVELS):
        prev = levels[-1]
        levels.append(
            cv2.resize(prev, (prev.shape[1] // 2, prev.shape[0] // 2), interpolation=cv2.INTER_AREA)
        )
    return levels

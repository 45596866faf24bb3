"""Painting the trail's textures: forest floor, forest walls, landmarks, overhanging arches.

A texture is painted for one 10 m chunk of trail at a given density (texels per metre). Base layers
are smooth noise of world coordinates; objects (trunks, bushes, rocks, roots, leaves, landmarks) are
OpenCV drawings in world coordinates, each made by a generator seeded with (world seed, chunk), and
each chunk draws its neighbours' objects too, so chunk borders do not show. Painting at a low density
(for far away) draws the same objects without their small details.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from mtbsync.samples.noise import fbm_2d, smooth_signal, value_noise_2d

TEXELS_PER_M = 40  # level-0 texture density
CHUNK_M = 10.0
CHUNK_PX = int(CHUNK_M * TEXELS_PER_M)
LEFT_GAP = 2.2  # metres from the trail axis to the left forest wall
RIGHT_GAP = 2.6  # the right wall is farther: the view is not symmetric
WALL_H = 14.4  # metres of forest wall; sky above
GROUND_ROWS = round((LEFT_GAP + RIGHT_GAP) * TEXELS_PER_M)  # 192
WALL_ROWS = round(WALL_H * TEXELS_PER_M)  # 576
LEVEL0_ROWS = GROUND_ROWS + 2 * WALL_ROWS
LEFT_ROW0 = GROUND_ROWS
RIGHT_ROW0 = GROUND_ROWS + WALL_ROWS
ARCH_BOTTOM = 1.2  # metres: the lowest an arch's texture reaches (at the trail's sides)

# Distinct marker colours (Sasha Trubetskoy's palette), in the hex form editors' marker lists use.
PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#ffe119",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#469990",
    "#9a6324",
    "#800000",
)

# Layer ids keep every noise field independent of the others.
L_GROUND, L_LEFT, L_RIGHT, L_LINE, L_OBJECTS, L_GRAIN, L_ARCH = 1, 2, 3, 4, 5, 6, 7

Colour = tuple[float, float, float]


def hex_to_bgr(colour: str) -> Colour:
    """``#rrggbb`` -> (b, g, r) floats 0..255 (OpenCV order)."""
    value = colour.lstrip("#")
    r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return float(b), float(g), float(r)


def _shade(colour: Colour, factor: float) -> Colour:
    return (min(255.0, colour[0] * factor), min(255.0, colour[1] * factor), min(255.0, colour[2] * factor))


# ---------------------------------------------------------------------------------------------
# Canvas: drawing in world coordinates (sub-pixel: OpenCV drawing with shift=4)
# ---------------------------------------------------------------------------------------------
_SHIFT = 4
_ONE = 1 << _SHIFT


@dataclass
class Canvas:
    """An 8-bit image of one surface of one chunk, addressed in metres.

    Attributes:
        img: BGR ``uint8`` image (OpenCV anti-aliases only 8-bit drawings).
        surface: ``ground`` (rows = lateral x) or ``left`` / ``right`` (rows = height y, top first).
        z0: Arc length of the image's left edge.
        rho: Texels per metre.
    """

    img: np.ndarray
    surface: str
    z0: float
    rho: float

    def col(self, z: float) -> float:
        """Column (texel centres at integers) of arc length ``z``."""
        return (z - self.z0) * self.rho - 0.5

    def row(self, v: float) -> float:
        """Row of a lateral position (ground) or height (walls)."""
        if self.surface == "ground":
            return (v + LEFT_GAP) * self.rho - 0.5
        return (WALL_H - v) * self.rho - 0.5

    def _pts(self, pts: list[tuple[float, float]]) -> np.ndarray:
        # Plain Python: these lists hold a handful of points, where NumPy's overhead dominates.
        k, c0 = self.rho * _ONE, (self.z0 * self.rho + 0.5) * _ONE
        if self.surface == "ground":
            r0 = (0.5 - LEFT_GAP * self.rho) * _ONE
            return np.array([(round(z * k - c0), round(v * k - r0)) for z, v in pts], dtype=np.int32)
        r0 = (WALL_H * self.rho - 0.5) * _ONE
        return np.array([(round(z * k - c0), round(r0 - v * k)) for z, v in pts], dtype=np.int32)

    def poly(self, pts: list[tuple[float, float]], colour: Colour) -> None:
        """Filled polygon through (z, v) points."""
        cv2.fillPoly(self.img, [self._pts(pts)], colour, lineType=cv2.LINE_AA, shift=_SHIFT)

    def ellipse(self, z: float, v: float, rz: float, rv: float, angle: float, colour: Colour) -> None:
        """Filled ellipse centred at (z, v) with radii in metres."""
        centre = (round(self.col(z) * _ONE), round(self.row(v) * _ONE))
        axes = (max(1, round(rz * self.rho * _ONE)), max(1, round(rv * self.rho * _ONE)))
        cv2.ellipse(self.img, centre, axes, angle, 0, 360, colour, -1, cv2.LINE_AA, _SHIFT)

    def line(self, pts: list[tuple[float, float]], width_m: float, colour: Colour) -> None:
        """Polyline through (z, v) points, ``width_m`` thick (at least one texel)."""
        thickness = max(1, round(width_m * self.rho))
        cv2.polylines(self.img, [self._pts(pts)], False, colour, thickness, cv2.LINE_AA, _SHIFT)

    def paste(self, z_left: float, v_top: float, patch: np.ndarray, patch_rho: float) -> None:
        """Copy ``patch`` (painted at ``patch_rho`` texels/m) with its top-left corner at (z_left, v_top)."""
        if patch_rho != self.rho:
            w = max(1, round(patch.shape[1] * self.rho / patch_rho))
            h = max(1, round(patch.shape[0] * self.rho / patch_rho))
            patch = cv2.resize(patch, (w, h), interpolation=cv2.INTER_AREA)
        c0 = round(self.col(z_left) + 0.5)
        r0 = round(self.row(v_top) + 0.5)
        h, w = patch.shape[:2]
        rs, cs = max(0, r0), max(0, c0)
        re, ce = min(self.img.shape[0], r0 + h), min(self.img.shape[1], c0 + w)
        if rs < re and cs < ce:
            self.img[rs:re, cs:ce] = patch[rs - r0 : re - r0, cs - c0 : ce - c0]


@dataclass(frozen=True)
class PaintObject:
    """Something drawn on one surface.

    Attributes:
        surface: ``ground``, ``left`` or ``right``.
        layer: Drawing order (lower first): 0 far trunks, 1 trunks / roots, 2 branches / rocks,
            3 bushes / sticks / leaves, 4 landmarks.
        z_min: Smallest arc length it reaches (m).
        z_max: Largest arc length it reaches (m).
        draw: Paints it on a canvas.
        min_rho: Not drawn on canvases coarser than this (texels/m): small details far away.
    """

    surface: str
    layer: int
    z_min: float
    z_max: float
    draw: Callable[[Canvas], None]
    min_rho: float = 0.0


# ---------------------------------------------------------------------------------------------
# Base layers
# ---------------------------------------------------------------------------------------------
def _fbm(keys, zs, vs, octaves: list[tuple[float, float]], gains: list[float], rho: float) -> np.ndarray:
    # Octaves finer than a texel only alias: leave them out (they average to zero anyway).
    kept = [(o, g) for o, g in zip(octaves, gains, strict=True) if min(o) * rho >= 1.0]
    if not kept:
        return np.zeros((len(vs), len(zs)), np.float32)
    return fbm_2d(keys, zs, vs, [o for o, _ in kept], [g for _, g in kept])


def ground_base(
    seed: int, zs: np.ndarray, rho: float, trail_centre: np.ndarray, *, fine_seed: int | None = None
) -> np.ndarray:
    """Forest floor with the dirt track, float BGR (rows = lateral x from -LEFT_GAP).

    ``fine_seed`` (None: ``seed``) reseeds the octaves finer than about 15 cm: the same floor, with
    other small-scale texture (another season's litter).
    """
    xs = -LEFT_GAP + (np.arange(round((LEFT_GAP + RIGHT_GAP) * rho)) + 0.5) / rho
    key = (seed, L_GROUND)
    octaves = [(3.0, 3.0), (1.0, 1.0), (0.35, 0.35), (0.12, 0.12), (0.05, 0.05)]
    gains = [1, 0.7, 0.6, 0.5, 0.4]
    fine_key = (fine_seed, L_GROUND, 101) if fine_seed is not None else None
    if fine_key is None:
        n = _fbm((*key, 1), zs, xs, octaves, gains, rho)
    else:
        n = _fbm((*key, 1), zs, xs, octaves[:3], gains[:3], rho)
        n += _fbm((*fine_key, 1), zs, xs, octaves[3:], gains[3:], rho)
    mix = value_noise_2d((*key, 2), zs, xs, 2.0, 1.5) + 0.5
    grass = np.clip((value_noise_2d((*key, 3), zs, xs, 1.2, 0.8) - 0.1) * 4.0, 0, 0.8)
    # The dirt track: a meandering band with ragged edges, two darker ruts along it.
    centre = trail_centre[None, :].astype(np.float32)
    half = 0.55 + 0.15 * smooth_signal((seed, L_GROUND, 4), zs, (8.0,))[None, :].astype(np.float32)
    edge = 0.12 * value_noise_2d((*key, 5), zs, xs, 0.25, 0.25)
    dist = np.abs(xs[:, None].astype(np.float32) - centre)
    track = np.clip((half + edge - dist) / 0.12, 0, 1)
    if fine_key is None:
        dirt_n = _fbm((*key, 6), zs, xs, [(0.8, 0.8), (0.2, 0.2), (0.06, 0.06)], [0.6, 0.5, 0.5], rho)
    else:
        dirt_n = _fbm((*key, 6), zs, xs, [(0.8, 0.8), (0.2, 0.2)], [0.6, 0.5], rho)
        dirt_n += _fbm((*fine_key, 6), zs, xs, [(0.06, 0.06)], [0.5], rho)
    ruts = np.exp(-(((dist - 0.22) / 0.06) ** 2)) * 0.35
    litter_bright, green_bright = 1.0 + 0.9 * n, 1.0 + 0.8 * n
    dirt_bright = (1.0 + 0.7 * dirt_n) * (1.0 - ruts)
    # Channel by channel: 2-D arithmetic is several times cheaper than broadcasting to 3 channels.
    channels = []
    for l1, l2, g, d in zip((38, 66, 92), (40, 88, 88), (45, 125, 80), (62, 98, 132), strict=True):
        floor = (l1 + (l2 - l1) * mix) * litter_bright
        floor += (g * green_bright - floor) * grass
        channels.append(floor + (d * dirt_bright - floor) * track)
    return np.stack(channels, axis=-1)


def wall_base(
    seed: int, layer: int, zs: np.ndarray, rho: float, clearing: np.ndarray, sky_bgr: Colour
) -> np.ndarray:
    """Forest depth, canopy and sky holes of one wall, float BGR (rows = height from WALL_H down)."""
    ys = WALL_H - (np.arange(round(WALL_H * rho)) + 0.5) / rho
    key = (seed, layer)
    octaves = [(4.0, 4.0), (1.2, 1.5), (0.4, 0.5), (0.12, 0.15)]
    n = _fbm((*key, 1), zs, ys, octaves, [1, 0.7, 0.6, 0.5], rho)
    clear = clearing[None, :].astype(np.float32)
    # Tree line: canopy starts at 6-9 m in the forest, at 2-3 m in clearings.
    line = (7.5 + 1.5 * smooth_signal((*key, 2), zs, (6.0, 2.0)))[None, :].astype(np.float32)
    line = line * (1 - clear) + (2.5 + 0.5 * clear) * clear
    y = ys[:, None].astype(np.float32)
    t = np.clip((y - line + 1.5) / 3.0, 0, 1)
    # Darker band at the foot of the wall: shade under the undergrowth.
    bright = (1.0 + 0.8 * n) * (1.0 - np.clip(1.0 - y / 0.4, 0, 1) * 0.4)
    # Sky through the canopy: bright holes, more of them in clearings and higher up.
    holes = value_noise_2d((*key, 3), zs, ys, 0.9, 0.9)
    holes += 0.5 * value_noise_2d((*key, 4), zs, ys, 0.3, 0.3)
    open_sky = np.clip((y - line) / 2.5, 0, 1) * (0.55 + 0.45 * clear)
    sky_mask = np.clip((holes + open_sky - 0.45) * 6.0, 0, 1)
    channels = []
    for depth, canopy, sky in zip((28, 48, 36), (42, 98, 66), sky_bgr, strict=True):
        base = (depth + (canopy - depth) * t) * bright
        channels.append(base + (np.float32(sky) - base) * sky_mask)
    return np.stack(channels, axis=-1)


def season_lut(hue_deg: float, saturation: float, brightness: float) -> np.ndarray:
    """A (256, 1, 3) ``cv2.LUT`` table for HSV images: green hues rotated by ``hue_deg``, saturation
    and brightness scaled. Browns (dirt, litter, bark) keep their hue: the rotation fades out
    below about 60 degrees of hue (yellow-green) and above 180 (cyan)."""
    h = np.arange(256, dtype=np.float64)
    deg = 2.0 * np.minimum(h, 179)  # OpenCV's 8-bit hue is degrees / 2
    weight = np.clip((deg - 50.0) / 25.0, 0, 1) * np.clip((190.0 - deg) / 25.0, 0, 1)
    hue = np.mod(np.minimum(h, 179) + weight * hue_deg / 2.0, 180.0)
    sat = np.clip(h * saturation, 0, 255)
    val = np.clip(h * brightness, 0, 255)
    return np.stack([np.round(hue), np.round(sat), np.round(val)], axis=-1).astype(np.uint8)[:, None, :]


def apply_season(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``image`` (BGR ``uint8``) recoloured through a `season_lut` table."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    return cv2.cvtColor(cv2.LUT(hsv, lut), cv2.COLOR_HSV2BGR)


def add_grain(image: np.ndarray, seed: int, chunk: int) -> np.ndarray:
    """Per-texel grain (level 0 only): detail that changes every few centimetres.

    Drawn from a generator seeded by (seed, chunk): grain needs no continuity across chunk borders,
    and this is much cheaper than hashing every texel's coordinates.
    """
    rng = np.random.default_rng([seed & 0xFFFFFFFF, L_GRAIN, chunk + (1 << 40)])
    grain = rng.integers(-11, 12, size=image.shape[:2], dtype=np.int16)[..., None]
    return np.clip(image.astype(np.int16) + grain, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------------------------
_BARKS = ((38, 58, 78), (88, 92, 98), (205, 212, 214), (30, 38, 44), (52, 70, 92))


def far_trunk(rng: np.random.Generator, side: str, z: float) -> PaintObject:
    """A trunk deeper in the forest: thin, dim, low contrast (it gives the wall depth)."""
    width = float(rng.uniform(0.04, 0.18))
    top = float(rng.uniform(4.0, 11.0))
    lean = float(rng.normal(0, 0.1))
    grey = float(rng.uniform(0.45, 0.9))
    colour = (30.0 * grey + 10, 40.0 * grey + 10, 48.0 * grey + 10)
    pts = [
        (z - width / 2, 0.0),
        (z + width / 2, 0.0),
        (z + width * 0.35 + lean, top),
        (z - width * 0.35 + lean, top),
    ]

    def draw(c: Canvas) -> None:
        c.poly(pts, colour)

    return PaintObject(side, 0, z - width - abs(lean), z + width + abs(lean), draw, min_rho=5.0)


def trunk(rng: np.random.Generator, side: str, z: float) -> list[PaintObject]:
    """A tree by the trail: shaded like a cylinder, bark streaks (or birch marks), a few branches."""
    width = float(np.exp(rng.uniform(np.log(0.12), np.log(0.7))))
    top = float(rng.uniform(5.0, WALL_H))
    lean = float(rng.normal(0, 0.15))
    kind = int(rng.integers(len(_BARKS)))
    colour = tuple(float(v) for v in np.array(_BARKS[kind]) * rng.uniform(0.8, 1.15))
    birch = kind == 2
    streaks = [
        (float(rng.uniform(-0.45, 0.45)), float(rng.uniform(0, top)), float(rng.uniform(0.2, 1.2)))
        for _ in range(14)
    ]
    branches = [
        (
            float(rng.uniform(2.5, top)),
            float(rng.choice([-1, 1])),
            float(rng.uniform(0.4, 1.8)),
            float(rng.uniform(0.3, 1.2)),
        )
        for _ in range(int(rng.integers(0, 5)))
    ]
    mark = (20.0, 22.0, 25.0) if birch else _shade(colour, 0.55)  # type: ignore[arg-type]

    def draw(c: Canvas) -> None:
        # Four strips, darker at the edges: a round trunk lit from the trail.
        for k, factor in enumerate((0.65, 1.0, 1.12, 0.8)):
            a, b = -0.5 + k / 4, -0.5 + (k + 1) / 4
            pts = [(z + a * width, 0.0), (z + b * width, 0.0)]
            pts += [(z + b * width * 0.8 + lean, top), (z + a * width * 0.8 + lean, top)]
            c.poly(pts, _shade(colour, factor))  # type: ignore[arg-type]
        if c.rho < 10:
            return
        for u, y, length in streaks:
            zz = z + u * width + lean * y / top
            if birch:
                c.line([(zz - 0.12 * width, y), (zz + 0.12 * width, y)], 0.04, mark)
            else:
                c.line([(zz, y), (zz + lean * length / top, min(top, y + length))], 0.025, mark)

    def draw_branches(c: Canvas) -> None:
        for y, direction, length, rise in branches:
            zz = z + lean * y / top
            c.line([(zz, y), (zz + direction * length, y + rise)], 0.05, _shade(colour, 0.7))  # type: ignore[arg-type]

    reach = width + abs(lean) + 2.0
    return [
        PaintObject(side, 1, z - width - abs(lean), z + width + abs(lean), draw),
        PaintObject(side, 2, z - reach, z + reach, draw_branches, min_rho=5.0),
    ]


def bush(rng: np.random.Generator, side: str, z: float) -> PaintObject:
    """Undergrowth: a green blob with a darker rim and lighter leaves."""
    y = float(rng.uniform(0.0, 1.1))
    rz, ry = float(rng.uniform(0.15, 0.7)), float(rng.uniform(0.12, 0.5))
    colour = (float(rng.uniform(25, 60)), float(rng.uniform(85, 150)), float(rng.uniform(40, 95)))
    dots = [(float(rng.uniform(-rz, rz)), float(rng.uniform(-ry, ry))) for _ in range(6)]

    def draw(c: Canvas) -> None:
        c.ellipse(z, y, rz, ry, 0, _shade(colour, 0.6))
        c.ellipse(z, y + 0.03, rz * 0.85, ry * 0.8, 0, colour)
        if c.rho >= 10:
            for dz, dy in dots:
                c.ellipse(z + dz * 0.8, y + dy * 0.8, 0.05, 0.04, 0, _shade(colour, 1.35))

    return PaintObject(side, 3, z - rz, z + rz, draw)


def rock(rng: np.random.Generator, z: float, trail_x: float) -> PaintObject:
    """A stone with a shadow and a highlight; small ones common, big ones rare, few on the track."""
    r = min(float(0.03 * np.exp(rng.exponential(0.9))), 0.3)
    x = float(rng.uniform(-LEFT_GAP + 0.05, RIGHT_GAP - 0.05))
    if abs(x - trail_x) < 0.5 and rng.random() < 0.6:
        x = trail_x + float(np.sign(x - trail_x + 1e-6) * rng.uniform(0.5, 1.2))
    grey = float(rng.uniform(95, 175))
    colour = (grey * float(rng.uniform(0.9, 1.05)), grey, grey * float(rng.uniform(0.92, 1.08)))
    angle = float(rng.uniform(0, 180))
    aspect = float(rng.uniform(0.55, 1.0))

    def draw(c: Canvas) -> None:
        c.ellipse(z + r * 0.25, x + r * 0.2, r * 1.1, r * aspect * 1.1, angle, (25, 32, 38))
        c.ellipse(z, x, r, r * aspect, angle, colour)
        c.ellipse(z - r * 0.3, x - r * 0.25, r * 0.45, r * aspect * 0.4, angle, _shade(colour, 1.25))

    return PaintObject("ground", 2, z - 1.5 * r, z + 1.5 * r, draw, min_rho=1.0 / r)


def root(rng: np.random.Generator, z: float) -> PaintObject:
    """A root crossing the trail."""
    xs = np.linspace(-LEFT_GAP, RIGHT_GAP, 9)
    drift = float(rng.uniform(-0.8, 0.8))
    pts = [(float(z + drift * (x + LEFT_GAP) / 4.8 + rng.normal(0, 0.06)), float(x)) for x in xs]
    width = float(rng.uniform(0.025, 0.07))

    def draw(c: Canvas) -> None:
        c.line(pts, width, (28, 42, 58))
        c.line([(zz - width * 0.3, x) for zz, x in pts], width * 0.3, (60, 85, 105))

    zs = [p[0] for p in pts]
    return PaintObject("ground", 1, min(zs) - width, max(zs) + width, draw, min_rho=5.0)


def stick(rng: np.random.Generator, z: float) -> PaintObject:
    """A fallen stick."""
    x = float(rng.uniform(-LEFT_GAP, RIGHT_GAP))
    length, angle = float(rng.uniform(0.2, 0.9)), float(rng.uniform(0, np.pi))
    pts = [(z, x), (z + length * float(np.cos(angle)), x + length * float(np.sin(angle)))]
    colour = (float(rng.uniform(40, 70)), float(rng.uniform(70, 100)), float(rng.uniform(95, 130)))

    def draw(c: Canvas) -> None:
        c.line(pts, 0.02, colour)

    return PaintObject("ground", 3, z - length, z + length, draw, min_rho=20.0)


_LEAF_COLOURS = ((40, 180, 225), (30, 110, 215), (45, 45, 165), (40, 72, 112), (60, 150, 120))
LEAF_COLOURS: dict[str, tuple[Colour, ...]] = {
    "autumn": _LEAF_COLOURS,  # yellow, orange, red, brown (BGR)
    "summer": ((40, 150, 70), (30, 115, 50), (70, 175, 110), (35, 90, 75), (55, 130, 105)),
}


def leaves(
    rng: np.random.Generator, z0: float, n: int, colours: tuple[Colour, ...] = _LEAF_COLOURS
) -> PaintObject:
    """Fallen leaves scattered over the chunk (autumn colours unless ``colours`` says otherwise)."""
    zs = z0 + CHUNK_M * rng.random(n)
    xs = rng.uniform(-LEFT_GAP, RIGHT_GAP, n)
    sizes = rng.uniform(0.015, 0.045, n)
    angles = rng.uniform(0, 180, n)
    kinds = rng.integers(len(colours), size=n)

    def draw(c: Canvas) -> None:
        lo, hi = c.z0 - 0.1, c.z0 + c.img.shape[1] / c.rho + 0.1
        for z, x, s, a, k in zip(zs, xs, sizes, angles, kinds, strict=True):
            if lo < z < hi:
                c.ellipse(float(z), float(x), float(s), float(s) * 0.55, float(a), colours[k])

    return PaintObject("ground", 3, z0 - 0.1, z0 + CHUNK_M + 0.1, draw, min_rho=20.0)


def landmark_objects(kind: str, side: str, z: float, colour: str, code: str) -> list[PaintObject]:
    """The drawing of a landmark: a post, sign, tape, boulder, ribbon or arrow in colour ``colour``."""
    paint = hex_to_bgr(colour)
    white = (235.0, 238.0, 240.0)
    dark = (25.0, 28.0, 32.0)

    def post(c: Canvas) -> None:
        for k in range(8):
            band = [
                (z - 0.08, k * 0.18),
                (z + 0.08, k * 0.18),
                (z + 0.08, (k + 1) * 0.18),
                (z - 0.08, (k + 1) * 0.18),
            ]
            c.poly(band, paint if k % 2 == 0 else white)
        c.poly([(z - 0.1, 1.44), (z + 0.1, 1.44), (z, 1.6)], dark)

    def board(c: Canvas, width: float, height: float, bottom: float, content: np.ndarray) -> None:
        c.poly([(z - 0.05, 0.0), (z + 0.05, 0.0), (z + 0.05, bottom), (z - 0.05, bottom)], (40, 55, 70))
        if side == "right":
            # Seen from the trail, z grows to the left on the right-hand wall: mirror so text reads right.
            content = content[:, ::-1]
        c.paste(z - width / 2, bottom + height, content, TEXELS_PER_M)

    def sign_patch(width: float, height: float, text: str) -> np.ndarray:
        w, h = round(width * TEXELS_PER_M), round(height * TEXELS_PER_M)
        patch = np.full((h, w, 3), (60, 225, 245) if colour != "#ffe119" else white, np.uint8)
        cv2.rectangle(patch, (0, 0), (w - 1, h - 1), paint, 3)
        scale = cv2.getFontScaleFromHeight(cv2.FONT_HERSHEY_SIMPLEX, int(h * 0.5), 2)
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
        org = ((w - tw) // 2, (h + th) // 2)
        cv2.putText(patch, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, dark, 2, cv2.LINE_AA)
        return patch

    def sign(c: Canvas) -> None:
        board(c, 1.1, 0.6, 1.0, sign_patch(1.1, 0.6, code))

    def arrow(c: Canvas) -> None:
        w, h = round(1.0 * TEXELS_PER_M), round(0.5 * TEXELS_PER_M)
        patch = np.full((h, w, 3), white, np.uint8)
        shape = [[4, h * 0.35], [w * 0.6, h * 0.35], [w * 0.6, 3], [w - 3, h / 2]]
        shape += [[w * 0.6, h - 3], [w * 0.6, h * 0.65], [4, h * 0.65]]
        cv2.fillPoly(patch, [np.round(np.array(shape)).astype(np.int32)], paint, cv2.LINE_AA)
        cv2.rectangle(patch, (0, 0), (w - 1, h - 1), dark, 2)
        board(c, 1.0, 0.5, 1.1, patch)

    def tape(c: Canvas) -> None:
        length = 4.0
        for k in range(int(length / 0.2)):
            za = z - length / 2 + k * 0.2
            c.poly(
                [(za, 0.85), (za + 0.2, 0.85), (za + 0.26, 1.0), (za + 0.06, 1.0)],
                paint if k % 2 == 0 else white,
            )

    def ribbon(c: Canvas) -> None:
        c.poly([(z - 0.2, 0.0), (z + 0.2, 0.0), (z + 0.17, 9.0), (z - 0.17, 9.0)], (45, 62, 80))
        c.poly([(z - 0.2, 1.5), (z + 0.2, 1.5), (z + 0.2, 1.75), (z - 0.2, 1.75)], paint)
        c.poly([(z - 0.1, 1.15), (z + 0.1, 1.15), (z + 0.1, 1.35), (z - 0.1, 1.35)], white)

    def boulder(c: Canvas) -> None:
        x = -LEFT_GAP + 0.55 if side == "left" else RIGHT_GAP - 0.6
        r = 0.45
        c.ellipse(z + 0.1, x, r * 1.1, r * 0.9, 20, (25, 30, 35))
        c.ellipse(z, x, r, r * 0.8, 20, (120, 128, 132))
        c.ellipse(z - 0.05, x, r * 0.55, r * 0.45, 20, paint)
        c.ellipse(z - 0.05, x, r * 0.25, r * 0.2, 20, white)

    draw = {"post": post, "sign": sign, "tape": tape, "boulder": boulder, "ribbon": ribbon, "arrow": arrow}[
        kind
    ]
    surface = "ground" if kind == "boulder" else side
    reach = 2.5 if kind == "tape" else 0.8
    return [PaintObject(surface, 4, z - reach, z + reach, draw)]


# ---------------------------------------------------------------------------------------------
# Arches: foliage and branches hanging over the trail, facing the rider
# ---------------------------------------------------------------------------------------------
def paint_arch(seed: int, z: float) -> np.ndarray:
    """The arch at ``z`` as BGRA ``uint8`` (alpha = foliage) at ``TEXELS_PER_M``.

    Columns span x from -LEFT_GAP to +RIGHT_GAP, rows y from WALL_H down to ARCH_BOTTOM.
    """
    tag = round(z * 1000)
    key = (seed, L_ARCH, tag)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, L_ARCH, tag & 0xFFFFFFFF])
    cols = round((LEFT_GAP + RIGHT_GAP) * TEXELS_PER_M)
    rows = round((WALL_H - ARCH_BOTTOM) * TEXELS_PER_M)
    xs = -LEFT_GAP + (np.arange(cols) + 0.5) / TEXELS_PER_M
    ys = WALL_H - (np.arange(rows) + 0.5) / TEXELS_PER_M
    # Lower edge of the foliage: high over the middle of the trail, reaching down at the sides.
    side = np.minimum(xs + LEFT_GAP, RIGHT_GAP - xs)
    edge = 3.2 + rng.uniform(-0.4, 0.8) + 0.8 * smooth_signal(key, xs, (0.9, 0.35))
    edge -= 1.6 * np.exp(-side / 0.45)
    y = ys[:, None].astype(np.float32)
    n = fbm_2d((*key, 1), xs, ys, [(1.0, 1.0), (0.3, 0.3), (0.1, 0.1)], [1.0, 0.7, 0.5])
    holes = value_noise_2d((*key, 2), xs, ys, 0.5, 0.5) + 0.6 * value_noise_2d((*key, 3), xs, ys, 0.18, 0.18)
    cover = np.clip((y - edge[None, :].astype(np.float32)) * 4.0, 0, 1) * np.clip((0.3 - holes) * 6.0, 0, 1)
    shade = np.clip(0.5 + 1.4 * n, 0, 1)
    bgr = np.stack(
        [lo + (hi - lo) * shade for lo, hi in zip((22, 60, 35), (50, 125, 80), strict=True)], axis=-1
    )
    image = np.dstack([np.clip(bgr, 0, 255).astype(np.uint8), np.clip(cover * 255, 0, 255).astype(np.uint8)])

    def px(x: float, yy: float) -> tuple[int, int]:
        return round((x + LEFT_GAP) * TEXELS_PER_M), round((WALL_H - yy) * TEXELS_PER_M)

    # Branches: dark limbs from the sides up into the canopy.
    for _ in range(int(rng.integers(3, 7))):
        from_left = rng.random() < 0.5
        x0 = -LEFT_GAP if from_left else RIGHT_GAP
        y0 = float(rng.uniform(2.0, 5.0))
        x1 = x0 + (1 if from_left else -1) * float(rng.uniform(1.0, 3.5))
        y1 = y0 + float(rng.uniform(0.5, 2.5))
        colour = (int(rng.integers(25, 45)), int(rng.integers(35, 55)), int(rng.integers(45, 70)), 255)
        cv2.line(image, px(x0, y0), px(x1, y1), colour, int(rng.integers(3, 8)), cv2.LINE_AA)
    # Twigs hanging from the edge, each with a tuft of leaves.
    for _ in range(int(rng.integers(4, 12))):
        x = float(rng.uniform(-LEFT_GAP + 0.3, RIGHT_GAP - 0.3))
        top = float(edge[min(round((x + LEFT_GAP) * TEXELS_PER_M), cols - 1)]) + 0.2
        p0 = px(x, top)
        p1 = (p0[0] + int(rng.integers(-8, 9)), px(x, top - float(rng.uniform(0.3, 1.2)))[1])
        leaf = (int(rng.integers(30, 60)), int(rng.integers(90, 150)), int(rng.integers(50, 100)), 255)
        cv2.line(image, p0, p1, (30, 45, 55, 255), 2, cv2.LINE_AA)
        cv2.circle(image, p1, int(rng.integers(3, 7)), leaf, -1, cv2.LINE_AA)
    # Sunlit leaves: small bright blobs that make corners for feature detectors.
    for _ in range(int(rng.integers(30, 60))):
        cx, cy = int(rng.integers(0, cols)), int(rng.integers(0, rows))
        colour = (int(rng.integers(40, 90)), int(rng.integers(150, 210)), int(rng.integers(110, 170)), 255)
        axes = (int(rng.integers(2, 6)), int(rng.integers(2, 4)))
        angle = float(rng.uniform(0, 180))
        if image[cy, cx, 3] > 128:
            cv2.ellipse(image, (cx, cy), axes, angle, 0, 360, colour, -1, cv2.LINE_AA)
    return image

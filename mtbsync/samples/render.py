"""First-person rendering of a `TrailWorld` by inverse perspective mapping.

For every pixel the renderer casts the ray of a pinhole camera, intersects it with the ground and
the two forest walls (or lets it escape to the sky), turns the hit point into texture coordinates
(arc length, lateral position or height) and samples the texture with one vectorised ``cv2.remap``.
A mip level is chosen per pixel from its footprint so far texture does not shimmer, and distance
fog hides the vanishing point. Arches (foliage over the trail) are planes facing the camera,
drawn on top with one perspective warp each. All the per-pixel work is a few dozen NumPy operations
on ``float32`` arrays (about 6 ms for 640x360 on one core); chunks of texture are copied into the
atlas when they first come into view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mtbsync.samples.conditions import Light
from mtbsync.samples.paint import (
    CHUNK_M,
    CHUNK_PX,
    GROUND_ROWS,
    LEFT_GAP,
    LEFT_ROW0,
    LEVEL0_ROWS,
    RIGHT_GAP,
    RIGHT_ROW0,
    TEXELS_PER_M,
    WALL_H,
    WALL_ROWS,
)
from mtbsync.samples.world import FAR_LEVEL, LEVELS, TrailWorld

_WINDOW_CHUNKS = 16  # 160 m of texture in the atlas
_BEHIND_M = 6.0  # texture kept behind the camera (wide lenses and head turns see a little behind)
_FAR_M = 100.0  # beyond this everything is fog
_CLEAR_M = 15.0  # no fog nearer than this
_FOG_POWER = 2  # fog weight (1 - u) ** 2, u from 0 at _CLEAR_M to 1 at _FAR_M
_ARCH_NEAR_M = 0.3  # arches nearer than this are overhead, out of view
_SKY_ROWS = 64


@dataclass(frozen=True)
class CameraPose:
    """Where the camera is and where it looks.

    Attributes:
        z: Arc length along the trail (m).
        x: Lateral position (m, + is right).
        y: Height above the ground (m).
        yaw: Heading (rad, + turns right).
        pitch: Elevation (rad, + looks up).
        roll: Roll (rad, + tilts the image clockwise).
    """

    z: float
    x: float
    y: float
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation (x right, y up, z forward): roll, then pitch, then yaw."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    r_roll = np.array([[cr, sr, 0], [-sr, cr, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll


class TrailRenderer:
    """Renders frames of one world at one image size.

    Args:
        world: The trail.
        size: (width, height) of the rendered image.
        hfov_deg: Horizontal field of view of the pinhole camera (GoPro "wide" is about 110-118°).
        light: Gains of the ground, walls, sky (and fog) and canopy under this run's light; applied
            to the texture as it enters the atlas, so it costs nothing per frame (None: none).
    """

    def __init__(
        self, world: TrailWorld, size: tuple[int, int], *, hfov_deg: float = 110.0, light: Light | None = None
    ) -> None:
        self.world = world
        self._light = None if light is None or light.is_neutral else light
        self.width, self.height = size
        self.focal = (self.width / 2) / math.tan(math.radians(hfov_deg) / 2)
        u = (np.arange(self.width, dtype=np.float32) + 0.5 - self.width / 2) / self.focal
        v = -(np.arange(self.height, dtype=np.float32) + 0.5 - self.height / 2) / self.focal
        self._a = u[None, :]
        self._b = v[:, None]
        # Ray length per unit of forward component; rotation does not change it.
        self._norm = np.sqrt(self._a**2 + self._b**2 + 1.0).astype(np.float32)
        self._sky_row0 = 2 * LEVEL0_ROWS
        elevation = np.clip(self._b / self._norm, 0, 1)
        self._sky_rows = (self._sky_row0 + elevation * (_SKY_ROWS - 1)).astype(np.float32)
        self._atlas_cols = _WINDOW_CHUNKS * CHUNK_PX
        self._atlas = np.zeros((2 * LEVEL0_ROWS + _SKY_ROWS, self._atlas_cols, 3), np.uint8)
        self._fill_sky()
        self._window_chunk: int | None = None
        self._filled_near: set[int] = set()
        self._filled_far: set[int] = set()
        self._level_row = [2 * LEVEL0_ROWS - (2 * LEVEL0_ROWS >> level) for level in range(LEVELS)]
        # Beyond this distance every pixel samples the far level (footprint > 16 texels even for the
        # farthest wall: 3.3 m away); see the footprint formula in `render`.
        self._near_m = (256 * 3.3 * (self.focal / TEXELS_PER_M) ** 2) ** (1 / 3) + 2.0
        self._fog = np.empty((self.height, self.width, 3), np.uint8)
        fog = np.array(world.fog_bgr, np.float32)
        if self._light is not None:
            fog = np.clip(fog * np.float32(self._light.sky), 0, 255)
        self._fog[:] = fog.round().astype(np.uint8)

    def _fill_sky(self) -> None:
        t = np.linspace(0, 1, _SKY_ROWS, dtype=np.float32)[:, None]
        sky = (
            np.array(self.world.sky_horizon_bgr, np.float32) * (1 - t)
            + np.array(self.world.sky_zenith_bgr) * t
        )
        if self._light is not None:
            sky = np.clip(sky * np.float32(self._light.sky), 0, 255)
        self._atlas[self._sky_row0 :, :8] = sky[:, None, :].round().astype(np.uint8)

    def _ensure_window(self, z_camera: float) -> float:
        """Make sure the atlas holds the texture in view from ``z_camera``; return the atlas's start z.

        Levels 0..3 are needed only up to ``self._near_m`` ahead (farther, every pixel samples the
        far level), so only those chunks are painted at full density. Chunks are copied in when first
        needed; when the view leaves the window, the window jumps forward keeping what it holds.
        """
        first = math.floor((z_camera - _BEHIND_M) / CHUNK_M)
        last_near = math.floor((z_camera + self._near_m) / CHUNK_M)
        last_far = math.floor((z_camera + _FAR_M + 1.0) / CHUNK_M)
        base = self._window_chunk
        if base is None or first < base or last_far >= base + _WINDOW_CHUNKS:
            self._shift_window(first)
            base = first
        for chunk in range(first, last_far + 1):
            if chunk not in self._filled_far:
                self._copy_level(FAR_LEVEL, self.world.chunk_far(chunk), chunk - base)
                self._filled_far.add(chunk)
        for chunk in range(first, last_near + 1):
            if chunk not in self._filled_near:
                levels = self.world.chunk_levels(chunk)
                for level in range(FAR_LEVEL):
                    self._copy_level(level, levels[level], chunk - base)
                self._filled_near.add(chunk)
        return base * CHUNK_M

    def _shift_window(self, new_base: int) -> None:
        old_base = self._window_chunk
        end = new_base + _WINDOW_CHUNKS
        near = {c for c in self._filled_near if new_base <= c < end}
        far = {c for c in self._filled_far if new_base <= c < end}
        if old_base is not None and far:
            shift = new_base - old_base
            lo, hi = min(far) - old_base, max(far) - old_base + 1  # kept chunks, old slots
            for level in range(LEVELS):
                cols = CHUNK_PX >> level
                block = self._atlas[self._level_row[level] : self._level_row[level] + (LEVEL0_ROWS >> level)]
                block[:, (lo - shift) * cols : (hi - shift) * cols] = block[:, lo * cols : hi * cols].copy()
        self._filled_near, self._filled_far = near, far
        self._window_chunk = new_base

    def _copy_level(self, level: int, tex: np.ndarray, slot: int) -> None:
        rows, cols = LEVEL0_ROWS >> level, CHUNK_PX >> level
        row = self._level_row[level]
        block = self._atlas[row : row + rows, slot * cols : (slot + 1) * cols]
        block[:] = tex
        if self._light is not None:
            ground, wall = GROUND_ROWS >> level, WALL_ROWS >> level
            light = self._light
            for lo, hi, gain in (
                (0, ground, light.ground),
                (ground, ground + wall, light.left_wall),
                (ground + wall, ground + 2 * wall, light.right_wall),
            ):
                if gain != 1.0:
                    block[lo:hi] = cv2.convertScaleAbs(block[lo:hi], alpha=gain)

    def render(self, pose: CameraPose) -> np.ndarray:
        """One BGR ``uint8`` frame (height, width, 3) seen from ``pose``."""
        f32 = np.float32
        rho = f32(TEXELS_PER_M)
        rot = rotation(pose.yaw, pose.pitch, pose.roll).astype(np.float32)
        a, b = self._a, self._b
        xc, yc = float(pose.x), float(pose.y)
        z_start = self._ensure_window(pose.z)
        # World direction of every pixel's ray, with unit forward component in camera terms; the z
        # component is pre-scaled to texels (it is only used for the texture column).
        dx = rot[0, 0] * a + (rot[0, 1] * b + rot[0, 2])
        dy = rot[1, 0] * a + (rot[1, 1] * b + rot[1, 2])
        dz_tex = (rot[2, 0] * rho) * a + (rot[2, 1] * rho * b + rot[2, 2] * rho)

        # Ray distance to the nearer wall and to the ground (rays going up get a huge distance);
        # the smaller one is hit. Masks are coherent regions, where np.copyto(where=) is cheap.
        right = dx > 0
        gap = np.full_like(dx, LEFT_GAP + xc)
        np.copyto(gap, f32(RIGHT_GAP - xc), where=right)
        t_wall = gap / np.maximum(np.abs(dx), f32(1e-6))
        t = f32(-yc) / np.minimum(dy, f32(-1e-6))
        ground = t <= t_wall
        np.minimum(t, t_wall, out=t)
        np.minimum(t, f32(2 * _FAR_M), out=t)
        y_hit = t * dy
        y_hit += yc  # exactly 0 on the ground
        sky = y_hit > WALL_H
        dist = t * self._norm

        # Level-0 texture coordinates: column from the arc length; row from the lateral position
        # (ground) or the height (walls, each wall its own block of rows).
        map_x = t * dz_tex
        map_x += f32((pose.z - z_start) * TEXELS_PER_M)
        # (Every coordinate here is the texel coordinate + 0.5, ready for the level scaling.)
        row0 = y_hit * -rho
        row0 += f32(WALL_H * TEXELS_PER_M + LEFT_ROW0)
        np.add(row0, f32(RIGHT_ROW0 - LEFT_ROW0), out=row0, where=right)
        ground_row = t * dx
        ground_row *= rho
        ground_row += f32((xc + LEFT_GAP) * TEXELS_PER_M)
        np.copyto(row0, ground_row, where=ground)

        # Mip level from a pixel's footprint on the surface (texels per pixel), stretched by the
        # grazing angle: footprint**2 = (dist * rho / f)**2 * dist / (distance to the plane).
        # Level k (footprint beyond 2**k texels) halves the density k times: coordinates / 2**k.
        np.copyto(gap, f32(yc), where=ground)
        fp2 = dist * f32(TEXELS_PER_M / self.focal)
        fp2 *= fp2
        fp2 *= dist
        fp2 /= gap
        level = (fp2 > 4).view(np.uint8) + (fp2 > 16).view(np.uint8)
        level += (fp2 > 64).view(np.uint8)
        level += (fp2 > 256).view(np.uint8)
        scale = np.left_shift(np.uint8(1), level).astype(f32)
        # Texel centres: level-k coordinate = (level-0 coordinate + 0.5) / 2**k - 0.5.
        map_x /= scale
        map_x -= f32(0.5)
        row0 -= f32(2 * LEVEL0_ROWS)
        row0 /= scale
        row0 += f32(2 * LEVEL0_ROWS - 0.5)
        map_y = row0
        # Sky: a gradient by elevation (of the unrotated ray: the head moves only a few degrees).
        np.copyto(map_x, f32(3.5), where=sky)
        np.copyto(map_y, self._sky_rows, where=sky)
        image = cv2.remap(self._atlas, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

        # Fog: none up to _CLEAR_M, then a smooth fall to exactly 0 at _FAR_M; the sky has none.
        # Texture beyond the atlas (far down the corridor) is only ever seen with weight 0.
        u = dist - f32(_CLEAR_M)
        u *= f32(1 / (_FAR_M - _CLEAR_M))
        np.clip(u, 0, 1, out=u)
        weight = f32(1) - u
        weight *= weight  # (1 - u) ** _FOG_POWER
        np.copyto(weight, f32(1), where=sky)
        image = cv2.blendLinear(image, self._fog, weight, f32(1) - weight)
        self._draw_arches(image, pose, rot.astype(np.float64))
        return image

    def _draw_arches(self, image: np.ndarray, pose: CameraPose, rot: np.ndarray) -> None:
        """Paint the arches ahead over ``image``, farthest first (nearer ones hide farther ones).

        An arch is a plane facing along the trail that spans the corridor exactly, so walls and
        ground never hide it: each one is a perspective warp of its texture (one homography) and an
        alpha blend, restricted to its bounding box.
        """
        arches = self.world.arches(pose.z + _ARCH_NEAR_M, pose.z + _FAR_M)
        if not arches:
            return
        h, w = self.height, self.width
        k_pix = np.array([[self.focal, 0, w / 2 - 0.5], [0, -self.focal, h / 2 - 0.5], [0, 0, 1]])
        world_to_cam = rot.T
        for z in reversed(arches):
            depth = z - pose.z
            # Level whose texel is about one pixel at this depth (the plane faces the camera).
            px_per_texel = self.focal / depth / TEXELS_PER_M
            level = (
                int(min(LEVELS - 1, max(0, math.floor(math.log2(1 / px_per_texel)))))
                if px_per_texel < 1
                else 0
            )
            tex = self.world.arch_levels(z)[level]
            step = (1 << level) / TEXELS_PER_M
            # Texel (col, row) -> camera-relative world offset -> camera coordinates -> pixels.
            to_world = np.array(
                [
                    [step, 0, -LEFT_GAP + 0.5 * step - pose.x],
                    [0, -step, WALL_H - 0.5 * step - pose.y],
                    [0, 0, depth],
                ]
            )
            cam = world_to_cam @ to_world
            rows, cols = tex.shape[:2]
            corners = cam @ np.array([[0, cols - 1, cols - 1, 0], [0, 0, rows - 1, rows - 1], [1, 1, 1, 1]])
            if np.any(corners[2] < 0.05):
                continue  # partly behind the camera: it is overhead, out of view
            hom = k_pix @ cam
            pts = hom @ np.array([[0, cols, cols, 0], [0, 0, rows, rows], [1, 1, 1, 1]])
            pts = pts[:2] / pts[2]
            x0, y0 = max(0, math.floor(pts[0].min())), max(0, math.floor(pts[1].min()))
            x1, y1 = min(w, math.ceil(pts[0].max()) + 1), min(h, math.ceil(pts[1].max()) + 1)
            if x0 >= x1 or y0 >= y1:
                continue
            shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]])
            warped = cv2.warpPerspective(
                tex, shift @ hom, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
            )
            fog = self._fog_weight(depth)
            colour = warped[..., :3]
            if self._light is not None and self._light.canopy != 1.0:
                colour = cv2.convertScaleAbs(colour, alpha=self._light.canopy)
            if fog < 1.0:
                colour = cv2.addWeighted(colour, fog, self._fog[y0:y1, x0:x1], 1.0 - fog, 0.0)
            alpha = warped[..., 3].astype(np.float32) * np.float32(1 / 255)
            roi = image[y0:y1, x0:x1]
            roi[:] = cv2.blendLinear(colour, roi, alpha, 1.0 - alpha)

    @staticmethod
    def _fog_weight(dist: float) -> float:
        u = min(max((dist - _CLEAR_M) / (_FAR_M - _CLEAR_M), 0.0), 1.0)
        return (1.0 - u) ** _FOG_POWER

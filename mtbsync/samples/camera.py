"""A run's camera: the renderer, the lens, motion blur, defocus, exposure and sensor noise, frame by frame.

`RunCamera` turns a `Run` into images as its camera records them (before any scaling to the video's
size): the pinhole render of the trail (`render.TrailRenderer`), then, as `conditions.Conditions`
asks, a second render averaged in for motion blur, barrel distortion (``cv2.remap``), defocus, the
run's white balance and exposure, and sensor noise. Without conditions it is the plain camera every
sample pair had before conditions existed, operation for operation (the same bytes).
"""

from __future__ import annotations

import cv2
import numpy as np

from mtbsync.samples.conditions import Conditions, render_hfov_deg
from mtbsync.samples.render import TrailRenderer
from mtbsync.samples.runs import Run

_NOISE_PAD = 32


def barrel_maps(
    size: tuple[int, int], k1: float, pinhole_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps that turn a pinhole image of ``pinhole_size`` into a barrel-distorted one.

    An output pixel at normalised radius r (1 at the middle of the left and right edges; the same
    scale vertically) shows the pinhole point at r * (1 + k1 * r**2); the pinhole image (made with
    `conditions.render_hfov_deg`) reaches exactly the output's corners.

    Args:
        size: Output (width, height).
        k1: Distortion (0: none; positive: barrel).
        pinhole_size: (width, height) of the pinhole image, of the output's aspect.

    Returns:
        ``(map_x, map_y)``, ``float32`` (height, width).
    """
    width, height = size
    aspect = height / width
    qx = ((np.arange(width, dtype=np.float64) + 0.5) - width / 2) / (width / 2)
    qy = ((np.arange(height, dtype=np.float64) + 0.5) - height / 2) / (width / 2)
    r2 = qx[None, :] ** 2 + qy[:, None] ** 2
    scale = (1.0 + k1 * r2) / (1.0 + k1 * (1.0 + aspect * aspect))
    half = pinhole_size[0] / 2
    map_x = pinhole_size[0] / 2 + qx[None, :] * scale * half - 0.5
    map_y = pinhole_size[1] / 2 + qy[:, None] * scale * half - 0.5
    return map_x.astype(np.float32), map_y.astype(np.float32)


class RunCamera:
    """Renders the frames of one run as its camera records them.

    Frames are meant to be taken in order (the sensor noise is drawn frame after frame); any order
    gives valid frames, only the noise differs.

    Args:
        run: The run (poses, frame rate, photometry: white balance, exposure, noise).
        render_size: (width, height) of the recorded image (the video may show it larger).
        hfov_deg: Horizontal field of view across the recorded image.
        motion_blur: Average two renders half a frame apart, centred on the frame time (the plain
            camera's option).
        conditions: Lens, light, blur and defocus of this camera (None: a plain pinhole camera).
    """

    def __init__(
        self,
        run: Run,
        render_size: tuple[int, int],
        *,
        hfov_deg: float = 110.0,
        motion_blur: bool = False,
        conditions: Conditions | None = None,
    ) -> None:
        look = None if conditions is None or conditions.is_default else conditions
        self.run = run
        self.render_size = render_size
        k1 = look.lens_k1 if look is not None else 0.0
        self._lens_maps = None
        pinhole_size = render_size
        if k1:
            # The pinhole image is wider than the output (the corners reach out further); made that
            # much larger, its pixels match the output's at the centre.
            aspect = render_size[1] / render_size[0]
            grow = 1.0 + k1 * (1.0 + aspect * aspect)
            pinhole_size = (
                max(2, round(render_size[0] * grow / 2) * 2),
                max(2, round(render_size[1] * grow / 2) * 2),
            )
            self._lens_maps = barrel_maps(render_size, k1, pinhole_size)
        self.renderer = TrailRenderer(
            run.world,
            pinhole_size,
            hfov_deg=render_hfov_deg(hfov_deg, k1, render_size),
            light=look.light if look is not None else None,
        )
        self._rng = np.random.default_rng([run.seed & 0xFFFFFFFF, 77])
        w, h = render_size
        # A bank of Gaussian noise, cropped at a random offset per frame: per-frame Gaussian draws
        # would cost more than the rendering.
        self._bank = np.round(
            self._rng.normal(0.0, run.photometry.noise_sigma, (h + _NOISE_PAD, w + _NOISE_PAD, 3))
        ).astype(np.int16)
        self.times = run.frame_times
        self._poses = run.poses(self.times)
        shutter = 0.5 if motion_blur else 0.0
        if look is not None and look.motion_blur:
            shutter = look.motion_blur
        # The shutter is open for ``shutter`` of a frame, centred on the frame's time (as renderers'
        # motion blur is by default): a blurred frame then shows, on average, where the camera was
        # at its timestamp, which is what the truth says. An exposure that ended at the timestamp
        # would show the camera half a shutter earlier than its truth time.
        half_open = shutter / (2.0 * float(run.fps))
        self._blur_poses = (
            (
                run.poses(np.clip(self.times - half_open, 0.0, run.duration)),
                run.poses(np.clip(self.times + half_open, 0.0, run.duration)),
            )
            if shutter
            else None
        )
        self._defocus = look.defocus_px if look is not None else 0.0
        self._gain = np.array(run.photometry.gain_bgr)

    def frame(self, k: int) -> np.ndarray:
        """Frame ``k`` as recorded: BGR ``uint8`` of ``render_size``."""
        renderer = self.renderer
        if self._blur_poses is None:
            image = renderer.render(self._poses[k])
        else:
            opened, closed = self._blur_poses
            image = cv2.addWeighted(renderer.render(opened[k]), 0.5, renderer.render(closed[k]), 0.5, 0.0)
        if self._lens_maps is not None:
            image = cv2.remap(image, *self._lens_maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if self._defocus:
            image = cv2.GaussianBlur(image, (0, 0), self._defocus)
        g = self._gain * self.run.exposure(float(self.times[k]))
        image = cv2.multiply(image, (float(g[0]), float(g[1]), float(g[2]), 0.0))
        w, h = self.render_size
        oy, ox = (int(v) for v in self._rng.integers(0, _NOISE_PAD, 2))
        return cv2.add(image, self._bank[oy : oy + h, ox : ox + w], dtype=cv2.CV_8U)

"""How a sample pair's new run differs from its reference run: camera, lens, light, season, timing.

A `Conditions` is one frozen bundle of everything that can change between two rides of one trail
besides the ride itself: where the camera sits (height, pitch, roll), its lens (field of view, barrel
distortion), the light (per-surface shading, white balance, exposure), the season (foliage colour,
fallen leaves, the fine texture of the ground), the sensor (motion blur, defocus, noise, a low-res
source shown larger), the frame rate, and the timing of the ride (a stop anywhere, a wait before the
start). It applies to the new run only; the reference is rendered as always.

`Conditions()` changes nothing: a pair made with it is the pair made without it, byte for byte.
Named presets (`PRESETS`, `preset`) cover the usual development cases. The truth stays exact under
every condition: it is defined by the position along the trail, which no camera setting changes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from mtbsync.errors import ConfigError
from mtbsync.io.writer import exact_fps

LEAF_PALETTES = ("autumn", "summer", "none")


@dataclass(frozen=True)
class Light:
    """Brightness of each surface under this run's light, as gains (1: as the reference).

    A low sun from one side lights one forest wall and leaves the other in shade; an overcast
    evening dims the ground and the sky. The gains are applied to the textures as they enter the
    renderer, so they cost nothing per frame.

    Attributes:
        ground: The forest floor and the track.
        left_wall: The forest on the left of the trail.
        right_wall: The forest on the right.
        sky: The sky and the distance fog.
        canopy: The foliage hanging over the trail.
    """

    ground: float = 1.0
    left_wall: float = 1.0
    right_wall: float = 1.0
    sky: float = 1.0
    canopy: float = 1.0

    @property
    def is_neutral(self) -> bool:
        """True when every gain is 1."""
        return all(v == 1.0 for v in dataclasses.astuple(self))


@dataclass(frozen=True)
class Season:
    """How the trail's textures look in another season; every object and landmark stays in place.

    Attributes:
        foliage_hue_deg: Hue rotation of green (foliage, grass) in degrees; negative turns green
            towards yellow and orange (autumn), positive towards blue-green.
        saturation: Saturation scale of the natural textures (landmarks keep their paint).
        brightness: Brightness scale of the natural textures (wet ground, dry summer dust).
        leaf_colours: Fallen leaves: ``autumn`` (yellow, orange, red, brown: as the reference),
            ``summer`` (greens) or ``none``.
        texture_seed: Reseeds the fine texture of the ground (its grain and smallest octaves) and
            where the fallen leaves lie; None keeps the reference's.
    """

    foliage_hue_deg: float = 0.0
    saturation: float = 1.0
    brightness: float = 1.0
    leaf_colours: str = "autumn"
    texture_seed: int | None = None

    @property
    def is_neutral(self) -> bool:
        """True when the textures are the reference's."""
        return self == Season()


@dataclass(frozen=True)
class Conditions:
    """Everything about a pair's new run that differs from its reference, besides the ride.

    Every field's default leaves today's behaviour unchanged; ``None`` means "as the pair says"
    (the pair's own ``new_fps``, ``new_size``, ``start_gate_wait_s``, ``with_stop``, ...).

    Attributes:
        name: A label for tables and manifests (not used in rendering).
        camera_height_m: Added to the camera's height (m); -0.4 is a chest mount against a helmet.
        pitch_deg: Added to the camera's pitch (degrees, negative looks further down).
        roll_deg: Added to the camera's roll (degrees; + rolls the camera clockwise, as the rider
            sees it, so the picture turns counter-clockwise).
        hfov_deg: Horizontal field of view of the new camera (None: the pair's ``hfov_deg``).
        lens_k1: Barrel distortion: an output pixel at normalised radius r (1 at the middle of the
            left and right edges) shows the pinhole point at r * (1 + k1 * r**2), rescaled so the
            edge keeps ``hfov_deg``; 0 is a pinhole, GoPro "wide" is about 0.1-0.2.
        light: Per-surface shading (None: as the reference).
        white_balance_rgb: Per-channel gains of the new camera, in R, G, B order (None: the default
            new-run gains, slightly cool).
        exposure: Overall exposure multiplier (below 1 darker; the image clips above 255).
        exposure_drift: Amplitude of slow exposure changes (None: the default 0.06).
        season: Texture and colour changes of the trail (None: as the reference).
        motion_blur: Shutter time as a fraction of the frame interval, centred on the frame time (0:
            none; two renders that far apart are averaged, which doubles the rendering time).
        defocus_px: Gaussian blur of the source image (sigma in source pixels; 0: sharp).
        noise_sigma: Sensor noise, grey levels (None: the default 3).
        source_size: Render at this (width, height) and upscale to the output size, as a low-res
            camera shown larger would be (None: render at the output size).
        size: Output (width, height) of the new video (None: the pair's ``new_size``).
        fps: Frame rate of the new video (None: the pair's ``new_fps``).
        crf: Encoder quality of the new video (None: the pair's ``crf``).
        start_wait_s: Seconds standing still before the ride (None: the pair's ``start_gate_wait_s``).
        stop_s: Length of a full stop on the way (None: 2 s when the pair's ``with_stop``; 0: no
            stop). A stop at a chosen place or time needs a length.
        stop_at_s: New-video time at which the rider is at rest (needs ``stop_s``).
        stop_fraction: Where the rider comes to rest, as a fraction of the ride's distance (needs
            ``stop_s``); None with ``stop_at_s`` None: the default place (about 45 % of the way).
    """

    name: str = "same"
    camera_height_m: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    hfov_deg: float | None = None
    lens_k1: float = 0.0
    light: Light | None = None
    white_balance_rgb: tuple[float, float, float] | None = None
    exposure: float = 1.0
    exposure_drift: float | None = None
    season: Season | None = None
    motion_blur: float = 0.0
    defocus_px: float = 0.0
    noise_sigma: float | None = None
    source_size: tuple[int, int] | None = None
    size: tuple[int, int] | None = None
    fps: float | Fraction | None = None
    crf: int | None = None
    start_wait_s: float | None = None
    stop_s: float | None = None
    stop_at_s: float | None = None
    stop_fraction: float | None = None

    def __post_init__(self) -> None:
        _check(self)

    @property
    def is_default(self) -> bool:
        """True when nothing differs from today's new run (the name is only a label)."""
        light = None if self.light is None or self.light.is_neutral else self.light
        season = None if self.season is None or self.season.is_neutral else self.season
        return dataclasses.replace(self, name="same", light=light, season=season) == Conditions()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples as lists, a frame rate as its exact ``num/den`` string)."""
        data = dataclasses.asdict(self)
        if self.fps is not None:
            data["fps"] = str(exact_fps(self.fps))
        for key in ("white_balance_rgb", "source_size", "size"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conditions:
        """The conditions `to_dict` wrote (e.g. from a pair's ``sample.json``).

        Raises:
            ConfigError: Unknown fields or values out of range.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown conditions fields {unknown}")
        values = dict(data)
        if values.get("light") is not None:
            values["light"] = Light(**values["light"])
        if values.get("season") is not None:
            values["season"] = Season(**values["season"])
        if values.get("fps") is not None:
            values["fps"] = exact_fps(values["fps"])
        for key in ("white_balance_rgb", "source_size", "size"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    def with_name(self, name: str) -> Conditions:
        """The same conditions under another label."""
        return dataclasses.replace(self, name=name)


def _check(c: Conditions) -> None:
    def bad(what: str) -> ConfigError:
        return ConfigError(f"conditions {c.name!r}: {what}")

    if not -1.0 <= c.camera_height_m <= 1.0:
        raise bad(f"camera_height_m {c.camera_height_m} is out of range [-1, 1]")
    if not -30.0 <= c.pitch_deg <= 30.0 or not -30.0 <= c.roll_deg <= 30.0:
        raise bad("pitch_deg and roll_deg must be within +-30 degrees")
    if c.hfov_deg is not None and not 60.0 <= c.hfov_deg <= 150.0:
        raise bad(f"hfov_deg {c.hfov_deg} is out of range [60, 150]")
    if not 0.0 <= c.lens_k1 <= 0.5:
        raise bad(f"lens_k1 {c.lens_k1} is out of range [0, 0.5]")
    if c.light is not None and not all(0.05 <= v <= 4.0 for v in dataclasses.astuple(c.light)):
        raise bad("light gains must be within [0.05, 4]")
    if c.white_balance_rgb is not None and (
        len(c.white_balance_rgb) != 3 or not all(0.05 <= v <= 4.0 for v in c.white_balance_rgb)
    ):
        raise bad("white_balance_rgb must be three gains within [0.05, 4]")
    if not 0.02 <= c.exposure <= 8.0:
        raise bad(f"exposure {c.exposure} is out of range [0.02, 8]")
    if c.exposure_drift is not None and not 0.0 <= c.exposure_drift <= 0.5:
        raise bad("exposure_drift must be within [0, 0.5]")
    if c.season is not None:
        s = c.season
        if s.leaf_colours not in LEAF_PALETTES:
            raise bad(f"season leaf_colours {s.leaf_colours!r} is not one of {LEAF_PALETTES}")
        if not -90.0 <= s.foliage_hue_deg <= 90.0:
            raise bad("season foliage_hue_deg must be within +-90 degrees")
        if not 0.0 <= s.saturation <= 3.0 or not 0.1 <= s.brightness <= 3.0:
            raise bad("season saturation must be within [0, 3] and brightness within [0.1, 3]")
    if not 0.0 <= c.motion_blur <= 1.0:
        raise bad(f"motion_blur {c.motion_blur} is out of range [0, 1] (fraction of a frame)")
    if not 0.0 <= c.defocus_px <= 10.0:
        raise bad(f"defocus_px {c.defocus_px} is out of range [0, 10]")
    if c.noise_sigma is not None and not 0.0 <= c.noise_sigma <= 40.0:
        raise bad(f"noise_sigma {c.noise_sigma} is out of range [0, 40]")
    for key in ("source_size", "size"):
        value = getattr(c, key)
        if value is not None and (
            len(value) != 2 or value[0] % 2 or value[1] % 2 or value[0] < 64 or value[1] < 36
        ):
            raise bad(f"{key} {value!r} must be an even (width, height) of at least 64x36")
    if c.fps is not None and not 1.0 <= float(c.fps) <= 240.0:
        raise bad(f"fps {c.fps} is out of range [1, 240]")
    if c.crf is not None and not 0 <= c.crf <= 51:
        raise bad(f"crf {c.crf} is out of range [0, 51]")
    if c.start_wait_s is not None and not 0.0 <= c.start_wait_s <= 600.0:
        raise bad(f"start_wait_s {c.start_wait_s} is out of range [0, 600]")
    if c.stop_s is not None and not 0.0 <= c.stop_s <= 600.0:
        raise bad(f"stop_s {c.stop_s} is out of range [0, 600]")
    if c.stop_at_s is not None and c.stop_fraction is not None:
        raise bad("give stop_at_s or stop_fraction, not both")
    if (c.stop_at_s is not None or c.stop_fraction is not None) and not c.stop_s:
        raise bad("a stop at a chosen place or time needs stop_s > 0")
    if c.stop_fraction is not None and not 0.02 <= c.stop_fraction <= 0.98:
        raise bad(f"stop_fraction {c.stop_fraction} is out of range [0.02, 0.98]")
    if c.stop_at_s is not None and c.stop_at_s < 0:
        raise bad("stop_at_s must not be negative")


def render_hfov_deg(hfov_deg: float, k1: float, size: tuple[int, int]) -> float:
    """Field of view of the pinhole image a lens with barrel distortion ``k1`` is resampled from.

    The output keeps ``hfov_deg`` across its width; its corners reach further out than the
    pinhole image of that width would, so the pinhole render is made wider to contain them.
    """
    if k1 == 0.0:
        return hfov_deg
    aspect = size[1] / size[0]
    reach = (1.0 + k1 * (1.0 + aspect * aspect)) / (1.0 + k1)
    return math.degrees(2.0 * math.atan(math.tan(math.radians(hfov_deg) / 2.0) * reach))


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------
SAME = Conditions()

PRESETS: dict[str, Conditions] = {
    "same": SAME,
    # A chest mount on an evening ride: lower, looking further down, a narrower lens with more
    # barrel distortion, a low warm sun from the right (left wall lit, right wall in shade).
    "chest_mount": Conditions(
        name="chest_mount",
        camera_height_m=-0.4,
        pitch_deg=-9.0,
        hfov_deg=108.0,
        lens_k1=0.12,
        light=Light(ground=0.85, left_wall=1.12, right_wall=0.72, sky=0.85, canopy=0.9),
        white_balance_rgb=(1.14, 0.98, 0.78),
        exposure=0.8,
    ),
    # An old or cheap camera: a 160x120 source shown at 640x480, 20 fps, encoded harder.
    "low_res": Conditions(
        name="low_res", source_size=(160, 120), size=(640, 480), fps=20.0, crf=26, noise_sigma=2.0
    ),
    # Another season: green turned yellow, paler, darker wet ground, green fallen leaves, new grain.
    "season": Conditions(
        name="season",
        season=Season(
            foliage_hue_deg=-40.0, saturation=0.75, brightness=0.9, leaf_colours="summer", texture_seed=7
        ),
    ),
    # Fast riding in shade: motion blur, a soft lens, a noisy sensor.
    "blur_noise": Conditions(name="blur_noise", motion_blur=0.6, defocus_px=0.9, noise_sigma=7.0),
    # A tilted mount with a much wider lens.
    "roll_fov": Conditions(name="roll_fov", roll_deg=7.0, hfov_deg=128.0, lens_k1=0.08),
    # Dusk: very little light, the camera's gain turned up (noise), slow exposure hunting.
    "night": Conditions(
        name="night",
        light=Light(ground=0.9, left_wall=0.8, right_wall=0.8, sky=0.5, canopy=0.8),
        white_balance_rgb=(0.9, 0.95, 1.15),
        exposure=0.3,
        exposure_drift=0.12,
        noise_sigma=6.0,
    ),
    # A high frame rate camera (against the reference's 30).
    "frame_rate_60": Conditions(name="frame_rate_60", fps=60.0),
    # A long stop soon after the start (after a long wait), and one near the end.
    "stop_early": Conditions(name="stop_early", stop_s=4.0, stop_fraction=0.12, start_wait_s=3.0),
    "stop_late": Conditions(name="stop_late", stop_s=3.0, stop_fraction=0.88, start_wait_s=0.5),
}


def preset(name: str) -> Conditions:
    """The named conditions (see `PRESETS`).

    Raises:
        ConfigError: Unknown name.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown conditions {name!r}; known: {', '.join(PRESETS)}") from None

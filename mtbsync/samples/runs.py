"""Runs down a trail: speed profiles integrated to arc length, camera poses, and the exact truth.

A run is a speed profile v(t) integrated on a 1 ms grid to the arc length s(t) the camera has
reached. The truth between two runs of the same trail follows from arc length alone: the new-run
time t_new shows the place the reference run shows at t_ref = s_ref^-1(s_new(t_new)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from mtbsync.samples.noise import smooth_signal
from mtbsync.samples.render import CameraPose
from mtbsync.samples.world import Landmark, TrailWorld

GRID_DT = 0.001  # seconds; the truth is exact to well under a millisecond
CAMERA_HEIGHT = 1.45  # metres: helmet or chest mount of a rider standing on the pedals
NOMINAL_SPEED = 6.0  # m/s: a brisk trail pace
REF_START = 100.0  # arc length where the reference run's video starts
OFF_TRAIL_Z = -5000.0  # a place no reference run ever sees (the "start hut")

# Keys that keep every random signal of a run independent of the others.
_K_SPEED, _K_LATERAL, _K_BOB, _K_PITCH, _K_YAW, _K_ROLL, _K_VIB, _K_EXPOSURE = range(20, 28)


@dataclass(frozen=True)
class Photometry:
    """How a run's camera renders light: per-channel gain, slow exposure drift and sensor noise.

    Attributes:
        gain_bgr: Gain per channel (white balance and exposure of this run).
        drift: Amplitude of slow exposure changes (fraction).
        noise_sigma: Sensor noise, grey levels (standard deviation).
    """

    gain_bgr: tuple[float, float, float] = (1.0, 1.0, 1.0)
    drift: float = 0.04
    noise_sigma: float = 2.0


@dataclass
class Run:
    """One ride down the trail as the camera recorded it.

    Attributes:
        world: The trail ridden.
        seed: Seed of this run's own randomness (head motion, exposure).
        fps: Frame rate, exact (frame k shows time k / fps).
        n_frames: Frames in the video.
        t: Time grid (s), ``GRID_DT`` apart, covering every frame time.
        s: Arc length (m) at each grid time; non-decreasing.
        on_trail: False where the camera is somewhere else (waiting in the start hut).
        speed: Speed (m/s) at each grid time.
        photometry: Gain, drift and noise of this run's camera.
        gate_pose: Pose while ``on_trail`` is False (the start hut), if any.
        description: Human-readable notes (for the manifest).
        mount: How this run's camera is mounted, relative to the usual helmet camera: (height
            offset in m, pitch offset in rad, roll offset in rad); it moves the camera, never the
            place it is at (the truth).
    """

    world: TrailWorld
    seed: int
    fps: Fraction
    n_frames: int
    t: np.ndarray
    s: np.ndarray
    on_trail: np.ndarray
    speed: np.ndarray
    photometry: Photometry
    gate_pose: CameraPose | None = None
    description: dict[str, float | str | bool] = field(default_factory=dict)
    mount: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def frame_times(self) -> np.ndarray:
        """Exact presentation time of every frame, k / fps."""
        return np.arange(self.n_frames) * (self.fps.denominator / self.fps.numerator)

    @property
    def duration(self) -> float:
        """Time of the last frame (s)."""
        return (self.n_frames - 1) * self.fps.denominator / self.fps.numerator

    def arc_length(self, times: np.ndarray | float) -> np.ndarray:
        """Arc length at ``times`` (linear between grid points)."""
        return np.interp(times, self.t, self.s)

    def is_on_trail(self, times: np.ndarray | float) -> np.ndarray:
        """Whether the camera is on the trail at ``times``."""
        idx = np.clip(np.round(np.asarray(times) / GRID_DT).astype(np.int64), 0, self.t.size - 1)
        return self.on_trail[idx]

    def poses(self, times: np.ndarray) -> list[CameraPose]:
        """Camera poses at ``times``: position from the arc length plus head and bike motion."""
        times = np.asarray(times, dtype=np.float64)
        w = self.world
        z = self.arc_length(times)
        speed = np.interp(times, self.t, self.speed)
        vib = np.minimum(speed / NOMINAL_SPEED, 2.0)  # bumps shake the camera in proportion to speed

        def sig(k: int, spacings: tuple[float, ...]) -> np.ndarray:
            return smooth_signal((self.seed, k), times, spacings)

        x = w.racing_line(z) + 0.15 * sig(_K_LATERAL, (4.0, 1.7))
        y = CAMERA_HEIGHT + w.terrain_height(z) + 0.012 * vib * sig(_K_BOB, (0.18, 0.07))
        y += 0.01 * sig(_K_BOB + 100, (2.5,))
        pitch = -0.04 + w.terrain_pitch(z) + 0.02 * sig(_K_PITCH, (1.5, 0.6))
        pitch += 0.012 * vib * sig(_K_VIB, (0.11, 0.05))
        yaw = w.trail_heading(z) + 0.05 * sig(_K_YAW, (2.5, 1.1)) + 0.01 * vib * sig(_K_VIB + 1, (0.13,))
        roll = 0.03 * sig(_K_ROLL, (2.0, 0.9)) + 0.012 * vib * sig(_K_VIB + 2, (0.1,))
        dy_mount, dpitch_mount, droll_mount = self.mount
        if self.mount != (0.0, 0.0, 0.0):  # (the default adds nothing, not even a rounding)
            y, pitch, roll = y + dy_mount, pitch + dpitch_mount, roll + droll_mount
        poses = [CameraPose(*(float(v) for v in row)) for row in zip(z, x, y, yaw, pitch, roll, strict=True)]
        if self.gate_pose is not None:
            g = self.gate_pose
            sway = sig(_K_YAW + 100, (3.0, 1.3))
            for i in np.flatnonzero(~self.is_on_trail(times)):
                poses[i] = CameraPose(g.z, g.x, g.y, g.yaw + 0.05 * sway[i], g.pitch + 0.02 * sway[i], g.roll)
                if self.mount != (0.0, 0.0, 0.0):
                    p = poses[i]
                    poses[i] = CameraPose(
                        p.z, p.x, p.y + dy_mount, p.yaw, p.pitch + dpitch_mount, p.roll + droll_mount
                    )
        return poses

    def exposure(self, t: float) -> float:
        """Slow exposure multiplier at ``t`` (clouds, auto exposure)."""
        return 1.0 + self.photometry.drift * float(smooth_signal((self.seed, _K_EXPOSURE), t, (6.0, 2.5))[0])


def frames_for(duration_s: float, fps: Fraction) -> int:
    """Frames of a video that covers ``duration_s`` seconds at ``fps`` (frame 0 at t = 0)."""
    return math.floor(duration_s * fps + 1e-9) + 1


def _grid(duration: float) -> np.ndarray:
    return np.arange(math.ceil(duration / GRID_DT) + 2) * GRID_DT


def _integrate(t: np.ndarray, speed: np.ndarray, s0: float) -> np.ndarray:
    s = np.empty_like(speed)
    s[0] = s0
    np.cumsum(0.5 * (speed[1:] + speed[:-1]) * GRID_DT, out=s[1:])
    s[1:] += s0
    return s


def _cosine_ramp(t: np.ndarray, start: float, length: float) -> np.ndarray:
    """0 before ``start``, 1 after ``start + length``, a half cosine in between."""
    u = np.clip((t - start) / length, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def plan_reference_run(world: TrailWorld, *, duration_s: float, fps: Fraction, seed: int) -> Run:
    """The reference run: a steady pace with mild variation (+-15 %), moving from the first frame.

    Args:
        world: The trail.
        duration_s: Video duration (s).
        fps: Frame rate.
        seed: Seed of this run's randomness.

    Returns:
        The run, starting at arc length ``REF_START``.
    """
    n_frames = frames_for(duration_s, fps)
    t = _grid((n_frames - 1) / fps)
    speed = NOMINAL_SPEED * (1.0 + 0.15 * smooth_signal((seed, _K_SPEED), t, (7.0, 3.0)))
    s = _integrate(t, speed, REF_START)
    photometry = Photometry(gain_bgr=(1.0, 1.0, 1.0), drift=0.04, noise_sigma=2.0)
    return Run(world, seed, fps, n_frames, t, s, np.ones(t.size, bool), speed, photometry)


def plan_new_run(
    world: TrailWorld,
    ref: Run,
    *,
    fps: Fraction,
    seed: int,
    with_stop: bool,
    late_start: bool,
    early_end: bool,
    start_gate_wait_s: float,
    stop_s: float = 2.0,
    stop_at_s: float | None = None,
    stop_fraction: float | None = None,
) -> Run:
    """A new run over (part of) the reference's stretch of trail, at 0.5x-2x its pace.

    The speed ratio to the nominal pace varies smoothly between 0.5 and 2. Options:

    - ``late_start``: the ride starts 12 % of the reference's length further down the trail.
    - ``early_end``: it ends 10 % of that length before the reference's end.
    - ``with_stop``: a full stop of ``stop_s`` seconds, with 1 s cosine ramps, about 45 % of the way;
      ``stop_at_s`` puts the rest at that video time instead, ``stop_fraction`` at that fraction of
      the ride's distance (the rider comes to rest about there).
    - ``start_gate_wait_s``: the video opens with the camera standing still. With ``late_start`` it
      stands in the start hut, a place off the trail the reference never sees, and the video cuts to
      the trail (footage with no counterpart); without it, it stands on the trail 8 m before the
      reference's first frame and rides off from there. Either way the ride starts from rest.

    Args:
        world: The trail (another world than the reference's makes a different-trail pair).
        ref: The reference run (its stretch of trail sets the distances).
        fps: Frame rate.
        seed: Seed of this run's randomness.
        with_stop: Stop on the way.
        late_start: Start further down the trail than the reference.
        early_end: End before the reference's end.
        start_gate_wait_s: Seconds of standing still at the start (0: none).
        stop_s: Length of the stop (s).
        stop_at_s: With ``with_stop``: the video time at which the rider is at rest (None: default).
        stop_fraction: With ``with_stop``: where the rider comes to rest, as a fraction of the
            distance (None: default); not with ``stop_at_s``.

    Returns:
        The run; its duration follows from the distance and the speed profile.
    """
    ref_len = float(ref.s[-1] - ref.s[0])
    s_start = REF_START + (0.12 * ref_len if late_start else 0.0)
    s_end = REF_START + ref_len - (0.10 * ref_len if early_end else 0.0)
    gate = max(0.0, float(start_gate_wait_s))
    gate_on_trail = gate > 0 and not late_start
    if gate_on_trail:
        s_start = REF_START - 8.0
    distance = s_end - s_start
    # Generous grid: even at the slowest pace (0.5x) plus the stop the ride fits in it.
    horizon = gate + 1.5 + distance / (0.5 * NOMINAL_SPEED) + stop_s + 2.0
    if with_stop and stop_at_s is not None:
        horizon = max(horizon, float(stop_at_s) + stop_s + 2.0)
    t = _grid(horizon + 2.0)
    ratio = np.exp(math.log(2.0) * smooth_signal((seed, _K_SPEED), t, (9.0, 4.0)))
    speed = NOMINAL_SPEED * ratio
    if gate > 0:
        speed *= _cosine_ramp(t, gate, 1.5)  # standing still, then riding off from rest
    if with_stop:
        # The ramp down starts at stop_at; the rider is at rest from stop_at + 1 for stop_s seconds.
        if stop_at_s is not None:
            stop_at = float(stop_at_s) - 1.0
        elif stop_fraction is not None:
            # Where the ride without the stop reaches that fraction; the ramp down covers ~half a
            # second of riding, so the rest starts a few metres after it.
            unstopped = _integrate(t, speed, s_start)
            index = min(int(np.searchsorted(unstopped, s_start + stop_fraction * distance)), t.size - 1)
            stop_at = float(t[index])
        else:
            stop_at = gate + 0.45 * distance / NOMINAL_SPEED
        speed *= 1.0 - _cosine_ramp(t, stop_at, 1.0) + _cosine_ramp(t, stop_at + 1.0 + stop_s, 1.0)
    s = _integrate(t, speed, s_start)
    # The horizon covers the slowest case (0.5x all the way, plus the ramps and the stop).
    end_index = min(int(np.searchsorted(s, s_end)), t.size - 1)
    duration = float(t[end_index])
    n_frames = frames_for(duration, fps)
    keep = math.ceil((n_frames - 1) / fps / GRID_DT) + 2
    t, s, speed = t[:keep], s[:keep], speed[:keep]
    on_trail = np.ones(t.size, bool)
    gate_pose = None
    if gate > 0 and not gate_on_trail:
        on_trail[t < gate] = False
        gate_pose = CameraPose(z=OFF_TRAIL_Z, x=0.3, y=1.6, yaw=0.55, pitch=-0.3, roll=0.02)
    photometry = Photometry(gain_bgr=(0.86, 0.9, 0.97), drift=0.06, noise_sigma=3.0)
    description = {
        "on_trail_start_m": s_start,
        "end_m": s_end,
        "start_gate_wait_s": gate,
        "start_gate": "off trail (cut)" if gate_pose is not None else ("on trail" if gate else "none"),
        "stop_s": stop_s if with_stop else 0.0,
    }
    if with_stop and (stop_at_s is not None or stop_fraction is not None):
        # When the rider is at rest (a stop placed after the end of the video never happens).
        rest = stop_at + 1.0
        if rest < duration:
            description["stop_at_s"] = rest
        else:
            description["stop_s"] = 0.0
            description["stop_note"] = f"the stop at {rest:.2f} s falls after the end of the video"
    return Run(world, seed, fps, n_frames, t, s, on_trail, speed, photometry, gate_pose, description)


def truth_rows(ref: Run, new: Run) -> np.ndarray:
    """(t_new, t_ref) for every new frame whose place the reference video shows.

    A row exists where the new camera is on the trail and its arc length lies within the arc
    lengths of the reference's first and last frames.
    """
    t_new = new.frame_times
    s_new = new.arc_length(t_new)
    s_lo, s_hi = float(ref.arc_length(0.0)), float(ref.arc_length(ref.duration))
    keep = new.is_on_trail(t_new) & (s_new >= s_lo) & (s_new <= s_hi)
    t_ref = np.interp(s_new[keep], ref.s, ref.t)
    return np.column_stack([t_new[keep], t_ref])


def first_time_at(run: Run, z: float) -> float | None:
    """First time (interpolated on the 1 ms grid) the run reaches arc length ``z`` on the trail,
    within its video; None if it never does (passed before the video starts, or not reached)."""
    on = np.flatnonzero(run.on_trail)
    if on.size == 0:
        return None
    first = int(on[0])
    s = run.s[first:]
    idx = int(np.searchsorted(s, z, side="left"))
    if idx >= s.size:
        return None
    if idx == 0:
        return float(run.t[first]) if abs(s[0] - z) < 1e-9 else None
    s0, s1 = s[idx - 1], s[idx]
    t0 = float(run.t[first + idx - 1])
    t_hit = t0 + (z - s0) / (s1 - s0) * GRID_DT
    return t_hit if t_hit <= run.duration + 1e-9 else None


def choose_marker_landmarks(world: TrailWorld, ref: Run, n: int) -> list[Landmark]:
    """Up to ``n`` landmarks spread evenly over the reference run, away from its first and last 0.5 s."""
    lo = float(ref.arc_length(min(0.5, ref.duration / 4)))
    hi = float(ref.arc_length(max(ref.duration - 0.5, ref.duration * 3 / 4)))
    candidates = world.landmarks(lo, hi)
    if len(candidates) <= n:
        return candidates
    picks = np.unique(np.round(np.linspace(0, len(candidates) - 1, n)).astype(int))
    return [candidates[i] for i in picks]

"""Frame rates, frames and SMPTE timecode: the only module that knows about them.

The rest of mtbsync keeps time as float seconds. Exports turn seconds into a frame number (rounded
to the nearest frame, halves up) and a frame number into timecode at a `FrameRate`:

- rates are exact fractions; NTSC rates given as decimals (23.976, 29.97, 59.94, ...) snap to
  ``n * 1000/1001``, the rates cameras and editors actually use;
- 29.97 and 59.94 count drop-frame by default (``;`` before the frames; frame numbers 00 and 01 at
  29.97, 00 to 03 at 59.94, are skipped at the start of every minute except every tenth, so that
  timecode keeps to the wall clock); every other rate, and 29.97/59.94 with ``drop_frame=False``,
  counts non-drop (NTSC non-drop timecode runs 0.1 % slower than the clock);
- timecode runs from 00:00:00:00 to 23:59:59:FF; beyond that is an error, not a silent wrap.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from mtbsync.errors import ExportError

# Bases of the NTSC rates (n * 1000/1001) a decimal rate may snap to.
_NTSC_BASES = (24, 30, 48, 60, 120, 240)
# Drop-frame exists only at these rates: frame numbers dropped per minute.
_DROP_PER_MINUTE = {Fraction(30000, 1001): 2, Fraction(60000, 1001): 4}
_MAX_RATE = 240
# A decimal rate within this relative distance of an NTSC or integer rate is that rate
# ("29.97" is 0.003 % from 30000/1001).
_SNAP_TOLERANCE = Fraction(1, 2000)
_TIMECODE = re.compile(r"(\d{1,2})[:;.](\d{2})[:;.](\d{2})[:;.](\d{2,3})")


@dataclass(frozen=True)
class FrameRate:
    """A video frame rate and how timecode counts at it.

    Attributes:
        rate: Frames per second, exact (``Fraction(30000, 1001)`` for 29.97).
        drop_frame: Count drop-frame timecode (only at 30000/1001 and 60000/1001).
    """

    rate: Fraction
    drop_frame: bool = False

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.rate > _MAX_RATE:
            raise ExportError(f"frame rate {_decimal(self.rate)} is out of range (0 to {_MAX_RATE} fps)")
        if self.rate.denominator not in (1, 1001):
            raise ExportError(
                f"frame rate {_decimal(self.rate)} is neither a whole number nor an NTSC rate (n*1000/1001)"
            )
        if self.drop_frame and self.rate not in _DROP_PER_MINUTE:
            raise ExportError(
                f"drop-frame timecode exists only at 29.97 and 59.94 fps, not {_decimal(self.rate)}"
            )

    @classmethod
    def from_fraction(cls, rate: Fraction | int | float, *, drop_frame: bool | None = None) -> FrameRate:
        """The frame rate nearest ``rate``, snapped to an NTSC or whole rate.

        Args:
            rate: Frames per second (a container's average rate, e.g. 2997/100 or 30000/1001).
            drop_frame: Count drop-frame timecode; None chooses drop-frame at 29.97 and 59.94.

        Returns:
            The frame rate.

        Raises:
            ExportError: The rate is not within 0.05 % of a whole or NTSC rate up to 240 fps, or
                drop-frame is asked for at another rate than 29.97 or 59.94.
        """
        value = Fraction(rate).limit_denominator(1_000_000)
        snapped = _snap(value)
        if snapped is None:
            raise ExportError(
                f"frame rate {_decimal(value)} is not a video rate mtbsync can write timecode for "
                "(whole rates, or NTSC rates such as 23.976, 29.97, 59.94)"
            )
        if drop_frame is None:
            drop_frame = snapped in _DROP_PER_MINUTE
        return cls(snapped, drop_frame)

    @classmethod
    def from_string(cls, text: str, *, drop_frame: bool | None = None) -> FrameRate:
        """Parse a frame rate written as ``29.97``, ``30000/1001``, ``25`` or ``59.94``.

        Args:
            text: The rate; a trailing ``fps`` and ``DF``/``NDF`` (``29.97DF``) are allowed.
            drop_frame: Count drop-frame timecode; None takes ``DF``/``NDF`` from ``text`` if given,
                else chooses drop-frame at 29.97 and 59.94.

        Returns:
            The frame rate.

        Raises:
            ExportError: ``text`` is not a number or fraction, or not a supported rate.
        """
        s = text.strip().lower().replace(" ", "")
        s = s.removesuffix("fps")
        written_df: bool | None = None
        if s.endswith("ndf"):
            s, written_df = s[:-3], False
        elif s.endswith("df"):
            s, written_df = s[:-2], True
        try:
            value = Fraction(s)
        except (ValueError, ZeroDivisionError):
            raise ExportError(
                f"frame rate {text.strip()!r} is not a number such as 29.97, 25 or 30000/1001"
            ) from None
        if not 0 < value <= _MAX_RATE:  # also keeps a 309-digit '1e309' out of the message
            shown = text.strip() if len(text.strip()) <= 20 else text.strip()[:20] + "..."
            raise ExportError(
                f"frame rate {shown!r} is not a video rate mtbsync can write timecode for "
                f"(above 0 and at most {_MAX_RATE} fps: whole rates, or NTSC rates such as 29.97)"
            )
        return cls.from_fraction(value, drop_frame=drop_frame if drop_frame is not None else written_df)

    @property
    def nominal(self) -> int:
        """Frames per timecode second: the rate rounded (30 for 29.97)."""
        return round(self.rate)

    @property
    def frame_duration(self) -> Fraction:
        """Seconds per frame, exact (1001/30000 at 29.97)."""
        return 1 / self.rate

    @property
    def label(self) -> str:
        """The rate as editors write it: ``29.97 DF``, ``25``, ``23.976``."""
        text = _decimal(self.rate)
        if self.rate in _DROP_PER_MINUTE:
            text += " DF" if self.drop_frame else " NDF"
        return text

    def seconds_to_frames(self, seconds: float) -> int:
        """The frame nearest ``seconds`` (halves round up), counted from frame 0 at 0 s.

        Args:
            seconds: Time from the start of the video.

        Returns:
            The frame number (negative for negative times).
        """
        # Exact arithmetic: float seconds times a Fraction rate, so 29.97 rounds like the editor does.
        return math.floor(Fraction(seconds) * self.rate + Fraction(1, 2))

    def frames_to_seconds(self, frames: int) -> Fraction:
        """Seconds from frame 0 to the start of frame ``frames``, exact."""
        return frames * self.frame_duration

    def frames_to_timecode(self, frames: int) -> str:
        """Timecode of frame number ``frames`` (``HH:MM:SS:FF``, ``HH:MM:SS;FF`` when drop-frame).

        Args:
            frames: Frame number from 00:00:00:00.

        Returns:
            The timecode.

        Raises:
            ExportError: ``frames`` is negative or 24 hours or more.
        """
        fps = self.nominal
        if frames < 0:
            raise ExportError(f"frame {frames} is before timecode 00:00:00:00")
        if self.drop_frame:
            drop = _DROP_PER_MINUTE[self.rate]
            per_10_minutes = fps * 600 - drop * 9
            per_minute = fps * 60 - drop
            tens, rest = divmod(frames, per_10_minutes)
            # The first minute of every ten keeps all its frame numbers; the other nine skip `drop`.
            skipped = drop * 9 * tens + (drop * ((rest - drop) // per_minute) if rest > drop else 0)
            frames += skipped
        if frames >= 24 * 3600 * fps:
            raise ExportError("timecode would pass 23:59:59: use an earlier start timecode")
        ff = frames % fps
        total_seconds = frames // fps
        sep = ";" if self.drop_frame else ":"
        width = len(str(fps - 1))
        return (
            f"{total_seconds // 3600:02d}:{total_seconds // 60 % 60:02d}:{total_seconds % 60:02d}"
            f"{sep}{ff:0{max(width, 2)}d}"
        )

    def timecode_to_frames(self, timecode: str) -> int:
        """Frame number of a timecode, read at this rate (``:`` or ``;`` separators alike).

        The rate decides drop-frame counting, not the separator: ``01:00:00:00`` at 29.97 DF is
        read as ``01:00:00;00``.

        Args:
            timecode: ``HH:MM:SS:FF`` (or with ``;``/``.``).

        Returns:
            Frames from 00:00:00:00.

        Raises:
            ExportError: Not a timecode, a field out of range, or a frame number drop-frame skips.
        """
        match = _TIMECODE.fullmatch(timecode.strip())
        if match is None:
            raise ExportError(f"timecode {timecode.strip()!r} is not HH:MM:SS:FF")
        hh, mm, ss, ff = (int(g) for g in match.groups())
        fps = self.nominal
        if mm >= 60 or ss >= 60 or ff >= fps:
            raise ExportError(f"timecode {timecode.strip()!r} has a field out of range at {self.label} fps")
        frames = (hh * 3600 + mm * 60 + ss) * fps + ff
        if self.drop_frame:
            drop = _DROP_PER_MINUTE[self.rate]
            if ss == 0 and ff < drop and mm % 10 != 0:
                raise ExportError(
                    f"timecode {timecode.strip()!r} does not exist in drop-frame counting "
                    f"(frames 00 to {drop - 1:02d} are skipped at this minute)"
                )
            minutes = hh * 60 + mm
            frames -= drop * (minutes - minutes // 10)
        return frames


def _snap(value: Fraction) -> Fraction | None:
    if value <= 0:
        return None
    candidates = [Fraction(n * 1000, 1001) for n in _NTSC_BASES]
    candidates.append(Fraction(round(value)))
    for candidate in candidates:
        if candidate > 0 and abs(value - candidate) <= candidate * _SNAP_TOLERANCE:
            return candidate if candidate <= _MAX_RATE else None
    return None


def _decimal(rate: Fraction) -> str:
    if rate.denominator == 1:
        return str(rate.numerator)
    # 23.976, 29.97, 59.94, 119.88: as many decimals as editors show.
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")

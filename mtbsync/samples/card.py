"""A realistic SD-card dump built in code: chaptered GoPro MP4s with real GPMF, LRV proxies, THMs.

The telemetry is real: GPMF payloads that GoPro cameras wrote (``tests/data/gopro`` or
``../shared/data/gopro``; see their SOURCES.md), muxed as a ``GoPro MET`` track the way the camera
stores it. The video is a small sliding texture (cheap to encode, decodes like any H.264 file).

Layout (``build_sd_card`` with every option on)::

    DCIM/100GOPRO/GX010101.MP4 GX020101.MP4   two chapters, HERO7 GPS5 with a 3D fix, HiLights
                  GL010101.LRV GL020101.LRV   their proxies, GX010101.THM GX020101.THM thumbnails
                  GX010102.MP4 (+LRV, THM)    HERO11 telemetry (GPS9 + GPS5)
    DCIM/101GOPRO/GOPR0103.MP4 GP010103.MP4   an older camera's two chapters (GPS never locked)
                  GOPR0103.LRV GOPR0103.THM
    DCIM/100GOPRO/GX010104.MP4                (truncated=True) the first 60 % of a good file
                  GX010105.MP4                (zero_length=True) 0 bytes
                  GX010106.MP4                (no_telemetry=True) a GoPro name, no MET track
    Phone/VID_20240601_101500.mp4             (non_gopro=True) a non-GoPro clip
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from mtbsync.errors import ConfigError
from mtbsync.io.files import atomic_write_bytes
from mtbsync.samples.gopro_mp4 import split_payloads, write_gopro_mp4

# GPMF sources (files in the GoPro data folder), split into payloads and muxed chapter by chapter.
_SOURCES = {
    "hero7": "hero7-track.raw",
    "hero11": "hero11.raw",
    "consecutive1": "hero7-consecutive1.raw",
    "consecutive2": "hero7-consecutive2.raw",
}
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CardRecording:
    """What the card builder wrote for one recording (the truth a test checks discovery against).

    Attributes:
        name: First chapter's stem (the name discovery should report).
        videos: Chapter MP4s in chapter order.
        proxies: LRV proxies (same order; None where not written).
        thumbnails: THM files (same order; None where not written).
        telemetry: GPMF source file name per chapter (None where the chapter has no MET track).
        has_fix: Whether the source telemetry has a GPS fix.
        hilights_ms: HiLight times written into the first chapter.
        duration_s: Total duration over the chapters.
    """

    name: str
    videos: tuple[Path, ...]
    proxies: tuple[Path | None, ...]
    thumbnails: tuple[Path | None, ...]
    telemetry: tuple[str | None, ...]
    has_fix: bool
    hilights_ms: tuple[int, ...] = ()
    duration_s: float = 0.0


@dataclass(frozen=True)
class CardLayout:
    """The dump `build_sd_card` wrote.

    Attributes:
        root: The card's root folder (holds DCIM/).
        recordings: Good recordings by name (GX010101, GX010102, GOPR0103, and the optional ones).
        truncated: The truncated MP4, if asked for.
        zero_length: The empty MP4, if asked for.
        no_telemetry: The GoPro-named MP4 without a MET track, if asked for.
        non_gopro: The non-GoPro MP4, if asked for.
    """

    root: Path
    recordings: dict[str, CardRecording] = field(default_factory=dict)
    truncated: Path | None = None
    zero_length: Path | None = None
    no_telemetry: Path | None = None
    non_gopro: Path | None = None

    @property
    def files(self) -> list[Path]:
        """Every file written, sorted."""
        return sorted(p for p in self.root.rglob("*") if p.is_file())


def find_gopro_data(gpmf_dir: Path | None = None) -> Path:
    """The folder holding the GoPro GPMF sample files (``hero7-track.raw`` and friends).

    Looks in ``gpmf_dir`` if given, else ``tests/data/gopro`` and ``../shared/data/gopro`` next to
    the repository.

    Raises:
        ConfigError: No folder holds every file the card needs.
    """
    candidates = (
        [Path(gpmf_dir)]
        if gpmf_dir is not None
        else [_REPO_ROOT / "tests" / "data" / "gopro", _REPO_ROOT.parent / "shared" / "data" / "gopro"]
    )
    for folder in candidates:
        if all((folder / name).is_file() for name in _SOURCES.values()):
            return folder
    names = ", ".join(sorted(_SOURCES.values()))
    raise ConfigError(f"no folder with the GoPro GPMF samples ({names}) in {', '.join(map(str, candidates))}")


def _thumbnail(path: Path, seed: int) -> Path:
    # A blurred colour texture, different per seed: cheap to make, looks like a camera's THM.
    width, height = 160, 120
    rng = np.random.default_rng(seed)
    tile = rng.integers(0, 255, (max(2, height // 6), (width + 3) // 6 + 2, 3), dtype=np.uint8)
    image = cv2.resize(tile, (tile.shape[1] * 6, height), interpolation=cv2.INTER_LINEAR)[:, :width]
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70])
    if not ok:  # pragma: no cover - OpenCV always encodes a plain BGR image
        raise ConfigError("could not encode a thumbnail")
    atomic_write_bytes(path, lambda fh: fh.write(jpeg.tobytes()), replace_media=True)
    return path


def _chapter(
    folder: Path,
    stem: str,
    *,
    proxy_stem: str | None,
    thumb_stem: str | None,
    payloads: list[bytes],
    seconds: float,
    size: tuple[int, int],
    proxy_size: tuple[int, int],
    fps: Fraction,
    seed: int,
    hilights_ms: tuple[int, ...] = (),
) -> tuple[Path, Path | None, Path | None]:
    folder.mkdir(parents=True, exist_ok=True)
    video = write_gopro_mp4(
        folder / f"{stem}.MP4",
        duration_s=seconds,
        size=size,
        fps=fps,
        gpmf_payloads=payloads,
        payload_duration_s=1.001,
        hilights_ms=hilights_ms,
        seed=seed,
    )
    proxy = None
    if proxy_stem is not None:
        # A lower-resolution H.264 file of the same length, as the camera's LRV.
        proxy = write_gopro_mp4(
            folder / f"{proxy_stem}.LRV",
            duration_s=seconds,
            size=proxy_size,
            fps=fps,
            gpmf_payloads=(),
            seed=seed,
        )
    thumb = _thumbnail(folder / f"{thumb_stem}.THM", seed) if thumb_stem is not None else None
    return video, proxy, thumb


def build_sd_card(
    root: str | Path,
    *,
    gpmf_dir: Path | None = None,
    seconds_per_chapter: float = 3.0,
    size: tuple[int, int] = (320, 180),
    proxy_size: tuple[int, int] = (160, 90),
    fps: Fraction = Fraction(30),
    old_camera: bool = True,
    gps9: bool = True,
    truncated: bool = False,
    zero_length: bool = False,
    no_telemetry: bool = False,
    non_gopro: bool = False,
    seed: int = 0,
) -> CardLayout:
    """Write a GoPro SD-card tree under ``root`` (see the module docstring for the layout).

    Args:
        root: Folder to write into (created; existing files with the same names are replaced).
        gpmf_dir: Folder with the GoPro GPMF sample files (None: `find_gopro_data`'s search).
        seconds_per_chapter: Duration of each chapter.
        size: Main video size (even).
        proxy_size: LRV proxy size (even).
        fps: Frame rate of every video.
        old_camera: Also write an older camera's GOPR/GP recording.
        gps9: Also write the HERO11 (GPS9) recording.
        truncated: Also write a truncated MP4 (its index is missing: unreadable).
        zero_length: Also write a 0-byte MP4.
        no_telemetry: Also write a GoPro-named MP4 without telemetry.
        non_gopro: Also write a non-GoPro MP4 outside DCIM.
        seed: Varies the video content (two cards with other seeds hold other recordings).

    Returns:
        What was written, with the truth per recording.

    Raises:
        ConfigError: The GoPro samples are not found, or a size is invalid.
    """
    root = Path(root)
    data_dir = find_gopro_data(gpmf_dir)
    tracks = {key: split_payloads((data_dir / name).read_bytes()) for key, name in _SOURCES.items()}
    per_chapter = max(1, math.ceil(seconds_per_chapter / 1.001))
    common = {"size": size, "proxy_size": proxy_size, "fps": fps, "seconds": seconds_per_chapter}
    dcim = root / "DCIM" / "100GOPRO"
    layout = CardLayout(root=root)

    # Two chapters of one ride (HERO7, 3D fix): consecutive payloads of one track, like a camera splits them.
    hero7 = tracks["hero7"]
    hilights = (round(seconds_per_chapter * 400), round(seconds_per_chapter * 700))
    chapters = []
    for chapter in (1, 2):
        payloads = hero7[(chapter - 1) * per_chapter : chapter * per_chapter]
        chapters.append(
            _chapter(
                dcim,
                f"GX0{chapter}0101",
                proxy_stem=f"GL0{chapter}0101",
                thumb_stem=f"GX0{chapter}0101",
                payloads=payloads,
                seed=seed * 100 + chapter,
                hilights_ms=hilights if chapter == 1 else (),
                **common,
            )
        )
    layout.recordings["GX010101"] = CardRecording(
        "GX010101",
        tuple(c[0] for c in chapters),
        tuple(c[1] for c in chapters),
        tuple(c[2] for c in chapters),
        (_SOURCES["hero7"], _SOURCES["hero7"]),
        has_fix=True,
        hilights_ms=hilights,
        duration_s=2 * seconds_per_chapter,
    )
    if gps9:
        video, proxy, thumb = _chapter(
            dcim,
            "GX010102",
            proxy_stem="GL010102",
            thumb_stem="GX010102",
            payloads=tracks["hero11"][:per_chapter],
            seed=seed * 100 + 10,
            **common,
        )
        layout.recordings["GX010102"] = CardRecording(
            "GX010102", (video,), (proxy,), (thumb,), (_SOURCES["hero11"],), True, (), seconds_per_chapter
        )
    if old_camera:
        old = root / "DCIM" / "101GOPRO"
        first = _chapter(
            old,
            "GOPR0103",
            proxy_stem="GOPR0103",
            thumb_stem="GOPR0103",
            payloads=tracks["consecutive1"],
            seed=seed * 100 + 20,
            **common,
        )
        second = _chapter(
            old,
            "GP010103",
            proxy_stem=None,
            thumb_stem=None,
            payloads=tracks["consecutive2"],
            seed=seed * 100 + 21,
            **common,
        )
        layout.recordings["GOPR0103"] = CardRecording(
            "GOPR0103",
            (first[0], second[0]),
            (first[1], None),
            (first[2], None),
            (_SOURCES["consecutive1"], _SOURCES["consecutive2"]),
            has_fix=False,
            duration_s=2 * seconds_per_chapter,
        )
    extras: dict[str, Path] = {}
    if truncated:
        good = write_gopro_mp4(
            dcim / "GX010104.MP4",
            duration_s=seconds_per_chapter,
            size=size,
            fps=fps,
            gpmf_payloads=hero7[:per_chapter],
            seed=seed * 100 + 30,
        )
        data = good.read_bytes()
        atomic_write_bytes(good, lambda fh: fh.write(data[: int(len(data) * 0.6)]), replace_media=True)
        extras["truncated"] = good
    if zero_length:
        empty = dcim / "GX010105.MP4"
        atomic_write_bytes(empty, lambda fh: None, replace_media=True)
        extras["zero_length"] = empty
    if no_telemetry:
        video, _, _ = _chapter(
            dcim,
            "GX010106",
            proxy_stem=None,
            thumb_stem=None,
            payloads=[],
            seed=seed * 100 + 40,
            **common,
        )
        extras["no_telemetry"] = video
        layout.recordings["GX010106"] = CardRecording(
            "GX010106", (video,), (None,), (None,), (None,), False, (), seconds_per_chapter
        )
    if non_gopro:
        video, _, _ = _chapter(
            root / "Phone",
            "VID_20240601_101500",
            proxy_stem=None,
            thumb_stem=None,
            payloads=[],
            seed=seed * 100 + 50,
            **common,
        )
        video = video.rename(video.with_suffix(".mp4"))
        extras["non_gopro"] = video
        layout.recordings["VID_20240601_101500"] = CardRecording(
            "VID_20240601_101500", (video,), (None,), (None,), (None,), False, (), seconds_per_chapter
        )
    return CardLayout(root=root, recordings=layout.recordings, **extras)

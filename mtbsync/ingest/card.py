"""Find GoPro recordings in an SD-card dump: DCIM folders, chapters, LRV proxies, THM thumbnails.

GoPro file names (case-insensitive; any folder, DCIM/100GOPRO and its siblings included):

- HERO6 and later: ``GX`` (HEVC) or ``GH`` (H.264) + 2-digit chapter + 4-digit number + ``.MP4``;
  ``GX010123.MP4`` and ``GX020123.MP4`` are chapters 1 and 2 of recording 0123. The proxy is
  ``GL010123.LRV``, the thumbnail ``GX010123.THM`` (some cameras name it ``GL010123.THM``).
- HERO5 and older: ``GOPR0123.MP4`` is chapter 1, ``GP010123.MP4`` chapter 2, ``GP020123.MP4``
  chapter 3; proxy and thumbnail share the video's stem (``GOPR0123.LRV``, ``GP010123.THM``).

Any other ``.MP4``/``.MOV`` is a recording of one chapter (with a same-stem LRV/THM if present).
Everything here is pure: names and sizes in, records out; no file is opened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from mtbsync.errors import CardError
from mtbsync.ingest.model import CardScan, ChapterFile, Recording

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov"})
PROXY_EXTENSION = ".lrv"
THUMBNAIL_EXTENSION = ".thm"
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | {PROXY_EXTENSION, THUMBNAIL_EXTENSION}

_NEW = re.compile(r"^(?P<prefix>GH|GX|GL)(?P<chapter>\d{2})(?P<number>\d{4})$", re.IGNORECASE)
_OLD_FIRST = re.compile(r"^GOPR(?P<number>\d{4})$", re.IGNORECASE)
_OLD_LATER = re.compile(r"^GP(?P<chapter>\d{2})(?P<number>\d{4})$", re.IGNORECASE)


@dataclass(frozen=True)
class GoProName:
    """What a GoPro file name says.

    Attributes:
        family: "new" (GH/GX/GL names) or "old" (GOPR/GP names); chapters never mix families.
        prefix: The name's prefix upper-cased: "GH", "GX", "GL", "GOPR" or "GP".
        number: The 4-digit recording number, as written ("0123").
        chapter: 1-based chapter number.
        role: "video", "proxy" or "thumbnail" (from the extension).
    """

    family: str
    prefix: str
    number: str
    chapter: int
    role: str


def _role(suffix: str) -> str | None:
    suffix = suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix == PROXY_EXTENSION:
        return "proxy"
    if suffix == THUMBNAIL_EXTENSION:
        return "thumbnail"
    return None


def parse_gopro_name(name: str) -> GoProName | None:
    """Parse a GoPro media file name (``GX010123.MP4``, ``GOPR0123.THM``, ``gl020123.lrv``, ...).

    Args:
        name: File name with extension, no folder.

    Returns:
        The parsed name, or None for names GoPro cameras do not write (including a ``GL`` name with
        an ``.MP4`` extension or a chapter 00 in the new scheme).
    """
    stem, dot, suffix = name.rpartition(".")
    role = _role("." + suffix) if dot else None
    if role is None or suffix.lower() == "mov":
        return None
    if m := _NEW.match(stem):
        prefix = m["prefix"].upper()
        chapter = int(m["chapter"])
        if chapter == 0 or (prefix == "GL" and role == "video") or (prefix != "GL" and role == "proxy"):
            return None
        return GoProName("new", prefix, m["number"], chapter, role)
    if m := _OLD_FIRST.match(stem):
        return GoProName("old", "GOPR", m["number"], 1, role)
    if m := _OLD_LATER.match(stem):
        # GP01nnnn follows GOPRnnnn: it is the second chapter.
        return GoProName("old", "GP", m["number"], int(m["chapter"]) + 1, role)
    return None


def _hidden(name: str) -> bool:
    # ".GX010123.MP4.part" (copy tools), "._GX010123.MP4" (macOS resource forks), ".Trashes", ...
    return name.startswith(".")


def list_media_files(root: Path) -> list[Path]:
    """Every media file (MP4/MOV/LRV/THM, any case) under ``root``, hidden files and folders skipped.

    Raises:
        CardError: ``root`` is missing or not a folder.
    """
    root = Path(root)
    if not root.exists():
        raise CardError("folder not found", path=root)
    if not root.is_dir():
        raise CardError("is not a folder (give the card's or the dump's folder)", path=root)
    found: list[Path] = []

    def unreadable(exc: OSError) -> None:
        raise CardError(f"cannot read a folder of the dump ({exc.strerror})", path=exc.filename)

    for folder, dirs, files in os.walk(root, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        for name in sorted(files):
            if not _hidden(name) and Path(name).suffix.lower() in MEDIA_EXTENSIONS:
                found.append(Path(folder) / name)
    return found


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:  # deleted between listing and grouping
        return None


def group_media(paths: Iterable[Path], root: Path | None = None) -> CardScan:
    """Group media files into recordings: chapters by number, each with its proxy and thumbnail.

    Args:
        paths: Media files (as `list_media_files` returns them); files that vanished are skipped.
        root: The folder they came from (kept in the result).

    Returns:
        The recordings sorted by folder and name, and the sidecars without a video.
    """
    videos: dict[tuple[str, str, str, str], dict[int, Path]] = {}
    sidecars: dict[tuple[str, str, str, int, str], Path] = {}
    plain: list[Path] = []
    plain_sidecars: dict[tuple[str, str, str], Path] = {}
    all_sidecars: list[Path] = []
    for path in paths:
        path = Path(path)
        parsed = parse_gopro_name(path.name)
        folder = str(path.parent)
        if parsed is None:
            role = _role(path.suffix)
            if role == "video":
                plain.append(path)
            elif role is not None:
                plain_sidecars.setdefault((folder, path.stem.lower(), role), path)
                all_sidecars.append(path)
            continue
        if parsed.role == "video":
            # GH and GX recordings are told apart; GOPRnnnn and its GPccnnnn chapters are one.
            group = parsed.prefix if parsed.family == "new" else "GOPR"
            key = (folder, parsed.family, group, parsed.number)
            videos.setdefault(key, {}).setdefault(parsed.chapter, path)
        else:
            side_key = (folder, parsed.family, parsed.number, parsed.chapter, parsed.role)
            sidecars.setdefault(side_key, path)
            all_sidecars.append(path)

    used: set[Path] = set()
    recordings: list[Recording] = []
    for (folder, family, prefix, number), chapters in videos.items():
        parts: list[ChapterFile] = []
        for chapter in sorted(chapters):
            video = chapters[chapter]
            size = _size(video)
            if size is None:
                continue
            proxy = sidecars.get((folder, family, number, chapter, "proxy"))
            thumb = sidecars.get((folder, family, number, chapter, "thumbnail"))
            used.update(p for p in (proxy, thumb) if p is not None)
            parts.append(ChapterFile(chapter, video, proxy, thumb, size))
        if not parts:
            continue
        name = parts[0].video.stem
        notes = []
        numbers = [c.chapter for c in parts]
        missing = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
        if missing:
            listed = ", ".join(str(n) for n in missing)
            notes.append(f"chapter(s) {listed} of {name} are not in the dump: the timeline has a gap")
        recordings.append(
            Recording(
                key=f"{folder}/{prefix}{number}",
                name=name,
                folder=Path(folder),
                chapters=tuple(parts),
                gopro=True,
                notes=tuple(notes),
            )
        )
    for video in plain:
        size = _size(video)
        if size is None:
            continue
        folder = str(video.parent)
        stem = video.stem.lower()
        proxy = plain_sidecars.get((folder, stem, "proxy"))
        thumb = plain_sidecars.get((folder, stem, "thumbnail"))
        used.update(p for p in (proxy, thumb) if p is not None)
        recordings.append(
            Recording(
                key=str(video),
                name=video.stem,
                folder=video.parent,
                chapters=(ChapterFile(1, video, proxy, thumb, size),),
                gopro=False,
            )
        )
    recordings.sort(key=lambda r: (str(r.folder), r.name.upper(), r.key))
    orphans = tuple(sorted(p for p in all_sidecars if p not in used))
    return CardScan(
        root=Path(root) if root is not None else Path("."), recordings=tuple(recordings), orphans=orphans
    )


def scan_card(root: str | Path) -> CardScan:
    """Find every recording in a card dump (DCIM/1xxGOPRO folders, loose files, nested dumps).

    Args:
        root: The dump's folder (the card's root, its DCIM folder or any folder holding media).

    Returns:
        The recordings with their chapters, proxies and thumbnails.

    Raises:
        CardError: ``root`` is missing, not a folder or unreadable.
    """
    root = Path(root)
    return group_media(list_media_files(root), root)


def recording_chapters(video: str | Path) -> tuple[tuple[Path, ...], tuple[str, ...]]:
    """The chapter files of the recording ``video`` begins, found beside it by their GoPro names.

    Given a recording's first chapter (``GX010123.MP4``, ``GOPR0123.MP4``), its later chapters in the
    same folder follow it, in order, up to the first missing one (a gap would put the later chapters
    at the wrong time). Any other file, including a later chapter given on its own, stands alone.

    Args:
        video: A video file.

    Returns:
        The files in timeline order (``(video,)`` when alone) and notes for the rider.
    """
    video = Path(video)
    parsed = parse_gopro_name(video.name)
    if parsed is None or parsed.role != "video" or not video.parent.is_dir():
        return (video,), ()
    siblings = [p for p in video.parent.iterdir() if p.is_file() and not _hidden(p.name)]
    scan = group_media(siblings, video.parent)
    recording = next((r for r in scan.recordings if video in r.videos), None)
    if recording is None or len(recording.chapters) < 2:
        return (video,), ()
    numbers = [c.chapter for c in recording.chapters]
    if parsed.chapter != numbers[0] or parsed.chapter != 1:
        return (video,), (
            f"{video.name} is chapter {parsed.chapter} of recording {parsed.number}: aligned on its own "
            f"(give {recording.chapters[0].video.name} to join the recording's chapters)",
        )
    joined = [recording.chapters[0].video]
    for previous, chapter in pairwise(recording.chapters):
        if chapter.chapter != previous.chapter + 1:
            break
        joined.append(chapter.video)
    notes = ()
    if len(joined) < len(recording.chapters):
        left = ", ".join(c.video.name for c in recording.chapters[len(joined) :])
        notes = (f"chapter {len(joined) + 1} of {video.name} is missing: {left} left out",)
    return tuple(joined), notes

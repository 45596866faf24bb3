"""What a card dump holds: recordings made of chapter files, each with its proxy and thumbnail.

GoPro cameras split a recording into chapters of about 4 GB (8-12 minutes); the chapters of one
recording share a number and play as one continuous timeline. These records say which files belong
together; they read nothing from the files beyond their names and sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ChapterFile:
    """One chapter of a recording.

    Attributes:
        chapter: 1-based chapter number (GX01xxxx and GOPRxxxx are chapter 1).
        video: The chapter's MP4.
        proxy: Its low-resolution .LRV proxy, None if the card has none.
        thumbnail: Its .THM thumbnail (a small JPEG), None if the card has none.
        size: Size of the MP4 in bytes when discovered.
    """

    chapter: int
    video: Path
    proxy: Path | None
    thumbnail: Path | None
    size: int

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of the chapter: video, then proxy and thumbnail where present."""
        return tuple(p for p in (self.video, self.proxy, self.thumbnail) if p is not None)


@dataclass(frozen=True)
class Recording:
    """One recording: its chapters in chapter order.

    Attributes:
        key: Grouping key, unique within one scan (folder + camera family + recording number, or the
            path of a non-GoPro file). Not an identity: the same card at another path gets other keys.
        name: Display name, the first chapter's file stem (e.g. "GX010123").
        folder: Folder the recording's files are in.
        chapters: The chapters, sorted by chapter number.
        gopro: Whether the files carry GoPro names (a non-GoPro MP4 is a one-chapter recording).
        notes: What a rider should know (missing chapters, a proxy without its video, ...).
    """

    key: str
    name: str
    folder: Path
    chapters: tuple[ChapterFile, ...]
    gopro: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def videos(self) -> tuple[Path, ...]:
        """The chapters' MP4s in timeline order."""
        return tuple(c.video for c in self.chapters)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of the recording (videos, proxies, thumbnails)."""
        return tuple(p for c in self.chapters for p in c.files)

    @property
    def size(self) -> int:
        """Total size of the chapters' MP4s in bytes."""
        return sum(c.size for c in self.chapters)


@dataclass(frozen=True)
class CardScan:
    """The result of scanning a dump.

    Attributes:
        root: The folder scanned.
        recordings: Recordings sorted by folder and name.
        orphans: Proxies and thumbnails whose video is not in the dump (ignored).
    """

    root: Path
    recordings: tuple[Recording, ...]
    orphans: tuple[Path, ...] = ()

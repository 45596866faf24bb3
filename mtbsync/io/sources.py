"""Which videos an index or a warp was made from: the video facts they record, and finding them again.

An index's ``video`` and a warp's ``meta["reference"]`` / ``meta["new"]`` name the file (or the
chapter files of one recording) and its identity; these functions write the chapter part of those
facts and turn them back into a video the decoders take, checking that it is still the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from mtbsync.errors import MediaError
from mtbsync.io.video import VideoInfo, VideoSource, chapter_paths, probe


class MadeFromVideos(Protocol):
    """Anything that records the videos it was made from in ``meta`` (a `Warp`)."""

    meta: dict[str, Any]


def chapter_facts(info: VideoInfo) -> dict[str, Any]:
    """The chapter files and their starts, for the index's and the warp's video facts.

    Args:
        info: The probed video.

    Returns:
        ``{"chapters": [...], "chapter_starts": [...]}`` for a recording of chapters; ``{}`` for one file.
    """
    if not info.is_chaptered:
        return {}
    return {
        "chapters": [str(p.resolve()) for p in info.chapters],
        "chapter_starts": [float(t) for t in info.chapter_starts],
    }


def video_of_facts(facts: dict[str, Any]) -> VideoSource | None:
    """The video that index or warp facts name: the chapter list, else the single path.

    Facts written before chapters were supported name one ``path``; they still read as that file.

    Args:
        facts: An index's ``video`` or a warp's ``meta["reference"]`` / ``meta["new"]``.

    Returns:
        The list of chapter files, the one `Path`, or None when the facts name no file.
    """
    chapters = facts.get("chapters")
    if chapters:
        return [Path(p) for p in chapters]
    return Path(facts["path"]) if facts.get("path") else None


def videos_of_warp(warp: MadeFromVideos) -> tuple[VideoSource, VideoSource] | None:
    """The reference and new videos a warp was made from, if both are still there unchanged.

    Args:
        warp: The warp (its ``meta`` names the videos and their identities).

    Returns:
        (reference, new): each a `Path`, or the list of chapter files of a recording aligned as one
        timeline (warps written before chapters were supported name one path); None when a file
        is gone or changed.
    """
    videos: list[VideoSource] = []
    for role in ("reference", "new"):
        facts = warp.meta.get(role) or {}
        video = video_of_facts(facts)
        try:
            if (
                video is None
                or not all(p.is_file() for p in chapter_paths(video))
                or probe(video).identity != facts.get("identity")
            ):
                return None
        except MediaError:
            return None
        videos.append(video)
    return videos[0], videos[1]

"""Discovery of GoPro recordings in a card dump: names, chapters, proxies, thumbnails (no decoding)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtbsync.errors import CardError
from mtbsync.ingest.card import group_media, list_media_files, parse_gopro_name, scan_card


def touch(path: Path, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GX010123.MP4", ("new", "GX", "0123", 1, "video")),
        ("gx020123.mp4", ("new", "GX", "0123", 2, "video")),
        ("GH120045.MP4", ("new", "GH", "0045", 12, "video")),
        ("GL010123.LRV", ("new", "GL", "0123", 1, "proxy")),
        ("GX030123.THM", ("new", "GX", "0123", 3, "thumbnail")),
        ("GL010123.THM", ("new", "GL", "0123", 1, "thumbnail")),
        ("GOPR0123.MP4", ("old", "GOPR", "0123", 1, "video")),
        ("GOPR0123.lrv", ("old", "GOPR", "0123", 1, "proxy")),
        ("GP010123.MP4", ("old", "GP", "0123", 2, "video")),
        ("GP020123.THM", ("old", "GP", "0123", 3, "thumbnail")),
    ],
)
def test_card_parse_gopro_names(name: str, expected: tuple) -> None:
    parsed = parse_gopro_name(name)
    assert parsed is not None
    assert (parsed.family, parsed.prefix, parsed.number, parsed.chapter, parsed.role) == expected


@pytest.mark.parametrize(
    "name",
    ["GL010123.MP4", "GX000123.MP4", "GX0123.MP4", "GX010123.LRV", "VID_01.mp4", "GX010123.txt", "GX010123"],
)
def test_card_rejects_non_gopro_names(name: str) -> None:
    assert parse_gopro_name(name) is None


def test_card_groups_chapters_in_order_with_sidecars(tmp_path: Path) -> None:
    dcim = tmp_path / "DCIM" / "100GOPRO"
    files = [
        touch(dcim / "GX030123.MP4", 30),
        touch(dcim / "GX010123.MP4", 10),
        touch(dcim / "gx020123.mp4", 20),  # lower case from some copy tools
        touch(dcim / "GL010123.LRV"),
        touch(dcim / "GL020123.LRV"),
        touch(dcim / "GX010123.THM"),
        touch(dcim / "GX010124.MP4"),
    ]
    scan = group_media(reversed(files), tmp_path)
    assert [r.name for r in scan.recordings] == ["GX010123", "GX010124"]
    rec = scan.recordings[0]
    assert [c.chapter for c in rec.chapters] == [1, 2, 3]
    assert [c.video.name for c in rec.chapters] == ["GX010123.MP4", "gx020123.mp4", "GX030123.MP4"]
    assert [c.size for c in rec.chapters] == [10, 20, 30]
    assert rec.size == 60
    assert [c.proxy.name if c.proxy else None for c in rec.chapters] == ["GL010123.LRV", "GL020123.LRV", None]
    assert [c.thumbnail.name if c.thumbnail else None for c in rec.chapters] == ["GX010123.THM", None, None]
    assert rec.gopro and rec.notes == ()
    assert scan.orphans == ()


def test_card_old_camera_names_form_one_recording(tmp_path: Path) -> None:
    folder = tmp_path / "DCIM" / "101GOPRO"
    names = ("GOPR0007.MP4", "GOPR0007.LRV", "GOPR0007.THM", "GP010007.MP4", "GP020007.MP4", "GP010007.LRV")
    for name in names:
        touch(folder / name)
    (rec,) = scan_card(tmp_path).recordings
    assert rec.name == "GOPR0007"
    assert [c.video.name for c in rec.chapters] == ["GOPR0007.MP4", "GP010007.MP4", "GP020007.MP4"]
    assert [c.proxy.name if c.proxy else None for c in rec.chapters] == ["GOPR0007.LRV", "GP010007.LRV", None]
    assert rec.chapters[0].thumbnail is not None and rec.chapters[0].thumbnail.name == "GOPR0007.THM"


def test_card_same_number_in_two_folders_or_codecs_stays_apart(tmp_path: Path) -> None:
    touch(tmp_path / "DCIM" / "100GOPRO" / "GX010001.MP4")
    touch(tmp_path / "DCIM" / "101GOPRO" / "GX010001.MP4")
    touch(tmp_path / "DCIM" / "101GOPRO" / "GH010001.MP4")
    scan = scan_card(tmp_path)
    assert len(scan.recordings) == 3
    assert len({r.key for r in scan.recordings}) == 3


def test_card_missing_chapter_is_noted(tmp_path: Path) -> None:
    touch(tmp_path / "GX010009.MP4")
    touch(tmp_path / "GX030009.MP4")
    (rec,) = scan_card(tmp_path).recordings
    assert [c.chapter for c in rec.chapters] == [1, 3]
    assert len(rec.notes) == 1 and "2" in rec.notes[0] and "gap" in rec.notes[0]


def test_card_non_gopro_files_and_hidden_files(tmp_path: Path) -> None:
    touch(tmp_path / "Phone" / "VID_20240601.mp4")
    touch(tmp_path / "Phone" / "VID_20240601.THM")
    touch(tmp_path / "DCIM" / "100GOPRO" / "._GX010001.MP4")  # macOS resource fork
    touch(tmp_path / "DCIM" / "100GOPRO" / ".GX010001.MP4.x7Gq")  # a copy in progress (rsync)
    touch(tmp_path / ".Trashes" / "GX010099.MP4")
    touch(tmp_path / "DCIM" / "100GOPRO" / "GL010002.LRV")  # proxy without its video
    touch(tmp_path / "notes.txt")
    scan = scan_card(tmp_path)
    assert [(r.name, r.gopro) for r in scan.recordings] == [("VID_20240601", False)]
    assert scan.recordings[0].chapters[0].thumbnail == tmp_path / "Phone" / "VID_20240601.THM"
    assert [p.name for p in scan.orphans] == ["GL010002.LRV"]
    assert all(not p.name.startswith(".") for p in list_media_files(tmp_path))


def test_card_bad_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CardError, match="not found"):
        scan_card(tmp_path / "nope")
    with pytest.raises(CardError, match="not a folder"):
        scan_card(touch(tmp_path / "GX010001.MP4"))


def test_card_vanished_file_is_skipped(tmp_path: Path) -> None:
    kept = touch(tmp_path / "GX010001.MP4")
    gone = tmp_path / "GX010002.MP4"
    scan = group_media([kept, gone], tmp_path)
    assert [r.name for r in scan.recordings] == ["GX010001"]

"""The SD-card builder writes a card shaped like a camera's: chapters, real GPMF, LRV, THM, bad files."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from mtbsync.errors import MediaError
from mtbsync.ingest.card import scan_card
from mtbsync.ingest.gopro import read_gopro_telemetry
from mtbsync.io.video import probe
from mtbsync.samples.card import build_sd_card, find_gopro_data
from mtbsync.samples.gopro_mp4 import split_payloads


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory):
    return build_sd_card(
        tmp_path_factory.mktemp("card"), truncated=True, zero_length=True, no_telemetry=True, non_gopro=True
    )


def met_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        streams = [s for s in container.streams.data if "GoPro MET" in s.metadata.get("handler_name", "")]
        if not streams:
            return []
        return [bytes(p) for p in container.demux(streams[0]) if p.size]


def test_sd_card_layout_matches_a_camera(card) -> None:
    names = {p.relative_to(card.root).as_posix() for p in card.files}
    for expected in (
        "DCIM/100GOPRO/GX010101.MP4",
        "DCIM/100GOPRO/GX020101.MP4",
        "DCIM/100GOPRO/GL010101.LRV",
        "DCIM/100GOPRO/GL020101.LRV",
        "DCIM/100GOPRO/GX010101.THM",
        "DCIM/100GOPRO/GX010102.MP4",
        "DCIM/101GOPRO/GOPR0103.MP4",
        "DCIM/101GOPRO/GP010103.MP4",
        "DCIM/101GOPRO/GOPR0103.LRV",
        "Phone/VID_20240601_101500.mp4",
    ):
        assert expected in names
    assert not [n for n in names if Path(n).name.startswith(".")], "no temp files left behind"


def test_sd_card_chapters_carry_the_real_gpmf_payloads(card) -> None:
    source = split_payloads((find_gopro_data() / "hero7-track.raw").read_bytes())
    rec = card.recordings["GX010101"]
    first, second = (met_packets(v) for v in rec.videos)
    assert first and second
    # Chapter 2 continues the track where chapter 1 stopped, as a camera splits it.
    assert first + second == source[: len(first) + len(second)]
    assert met_packets(card.no_telemetry) == []
    assert met_packets(card.non_gopro) == []


def test_sd_card_proxies_are_smaller_videos_and_thumbnails_are_jpeg(card) -> None:
    rec = card.recordings["GX010101"]
    main = probe(rec.videos[0])
    proxy = probe(rec.proxies[0])
    assert (main.width, main.height) == (320, 180)
    assert proxy.width < main.width and proxy.codec == "h264"
    assert abs(proxy.duration - main.duration) < 0.1
    assert rec.thumbnails[0].read_bytes()[:2] == b"\xff\xd8"


def test_sd_card_bad_files_are_bad(card) -> None:
    assert card.zero_length.stat().st_size == 0
    with pytest.raises(MediaError):
        probe(card.truncated)
    with pytest.raises(MediaError):
        probe(card.zero_length)


def test_sd_card_discovery_finds_what_was_written(card) -> None:
    scan = scan_card(card.root)
    found = {r.name: r for r in scan.recordings}
    for name, truth in card.recordings.items():
        rec = found[name]
        assert rec.videos == truth.videos
        assert tuple(c.proxy for c in rec.chapters) == truth.proxies
        assert tuple(c.thumbnail for c in rec.chapters) == truth.thumbnails
    assert {"GX010104", "GX010105"} <= set(found)  # the bad files are found too (the ingest quarantines them)


def test_sd_card_telemetry_reads_back(card) -> None:
    rec = card.recordings["GX010101"]
    telemetry = read_gopro_telemetry(rec.videos)
    assert telemetry.gps is not None and telemetry.gps.has_fix
    assert telemetry.gps.t[-1] > 3.0  # samples of both chapters on one timeline
    assert telemetry.hilights_s == pytest.approx([t / 1000 for t in rec.hilights_ms], abs=1e-3)
    old = read_gopro_telemetry(card.recordings["GOPR0103"].videos)
    assert old.gps is not None and not old.gps.has_fix

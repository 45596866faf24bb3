"""A file cut inside its index (an interrupted copy) is reported as truncated, wherever it is read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtbsync.cli import EXIT_OK, EXIT_USER_ERROR, app
from mtbsync.errors import MediaError
from mtbsync.ingest.gopro import read_gopro_telemetry
from mtbsync.io.video import TRUNCATED_INDEX, DecodeReport, iter_sampled_frames, mp4_index_cut_off, probe
from mtbsync.library.ingest import QUARANTINED, ingest_directory
from mtbsync.samples.card import CardLayout, build_sd_card
from mtbsync.store.catalog import Catalog

SHARED_HERO7 = Path(__file__).resolve().parents[3] / "shared" / "data" / "gopro" / "hero7.mp4"
runner = CliRunner()


def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> CardLayout:
    """A one-recording GoPro card (two chapters, MET track, moov at the end of each)."""
    return build_sd_card(
        tmp_path_factory.mktemp("card"), old_camera=False, gps9=False, seconds_per_chapter=2.0
    )


def test_the_box_walk_tells_a_cut_index_from_a_cut_faststart_file(
    clip_30fps: Path, clip_faststart: Path, tmp_path: Path
) -> None:
    assert not mp4_index_cut_off(clip_30fps) and not mp4_index_cut_off(clip_faststart)
    for fraction in (0.5, 0.99, 0.9999):  # in the media data, and inside the index itself
        assert mp4_index_cut_off(_cut(clip_30fps, tmp_path / f"cut{fraction}.mp4", fraction))
    # The index first: the media data cut short still has its index, and decodes up to the cut.
    assert not mp4_index_cut_off(_cut(clip_faststart, tmp_path / "fast.mp4", 0.5))
    not_mp4 = tmp_path / "notes.mp4"
    not_mp4.write_text("name,t_ref\nx,1\n")
    assert not mp4_index_cut_off(not_mp4)


@pytest.mark.parametrize("fraction", [0.99, 0.5])
def test_a_gopro_chapter_cut_short_says_truncated(card: CardLayout, tmp_path: Path, fraction: float) -> None:
    cut = _cut(card.recordings["GX010101"].videos[0], tmp_path / "GX010001.MP4", fraction)
    for read in (
        probe,
        lambda p: read_gopro_telemetry([p]),
        lambda p: list(iter_sampled_frames(p, sample_fps=3, long_side=160)),
    ):
        with pytest.raises(MediaError) as info:
            read(cut)
        assert str(info.value) == f"{cut}: {TRUNCATED_INDEX}"


def test_a_real_gopro_file_cut_at_99_percent(tmp_path: Path) -> None:
    if not SHARED_HERO7.exists():
        pytest.skip("hero7.mp4 is only in ../shared/data/gopro, which is absent")
    # FFmpeg itself calls this one "no video stream" (it finds stray data where the index was).
    cut = _cut(SHARED_HERO7, tmp_path / "GX010007.MP4", 0.99)
    with pytest.raises(MediaError, match="is truncated or incomplete"):
        probe(cut)


def test_index_and_sync_of_a_cut_file_print_one_line(card: CardLayout, tmp_path: Path) -> None:
    good = card.recordings["GX010101"].videos[0]
    cut = _cut(good, tmp_path / "GX010001.MP4", 0.99)
    commands = [
        ["index", "-r", str(cut), "-o", str(tmp_path / "i.npz")],
        ["sync", "-r", str(good), "-n", str(cut), "-o", str(tmp_path / "out"), "--no-chapters"],
        ["sync", "-r", str(cut), "-n", str(good), "-o", str(tmp_path / "out2"), "--no-chapters"],
    ]
    for args in commands:
        result = runner.invoke(app, [*args, "--db", "none"], env={"COLUMNS": "400"})
        assert result.exit_code == EXIT_USER_ERROR, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines == [f"error: {cut}: {TRUNCATED_INDEX}"], result.output
        assert "no video stream" not in result.output


def test_a_faststart_file_cut_in_its_media_data_decodes_what_is_there(
    clip_faststart: Path, tmp_path: Path
) -> None:
    cut = _cut(clip_faststart, tmp_path / "fast.mp4", 0.5)
    assert probe(cut).duration == pytest.approx(3.0)  # the index still says 3 s
    report = DecodeReport()
    frames = list(iter_sampled_frames(cut, sample_fps=10, long_side=160, report=report))
    assert 0 < len(frames) < 30 and report.truncated
    result = runner.invoke(app, ["index", "-r", str(cut), "-o", str(tmp_path / "i.npz"), "--db", "none"])
    assert result.exit_code == EXIT_OK, result.output
    assert "warning" in result.output and "using what was readable" in result.output


def test_ingest_quarantines_a_cut_chapter_with_the_reason(card: CardLayout, tmp_path: Path) -> None:
    root = tmp_path / "dump"
    shutil.copytree(card.root, root)
    chapter = root / "DCIM" / "100GOPRO" / "GX020101.MP4"
    _cut(chapter, chapter, 0.99)
    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:
        (outcome,) = ingest_directory(root, catalog, settle_s=0).outcomes
    assert outcome.status == QUARANTINED
    assert outcome.reason == f"GX020101.MP4: {TRUNCATED_INDEX}"

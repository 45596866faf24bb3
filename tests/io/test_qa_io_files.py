"""QA regressions for atomic writes: a bad output place is one clear error, and nothing is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtbsync.cli import EXIT_USER_ERROR, app
from mtbsync.errors import OutputError
from mtbsync.io.files import atomic_write_text


def test_qa_io_atomic_write_to_a_folder_is_an_output_error(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="is a folder"):
        atomic_write_text(folder, "x")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["exports", "keep.txt"]


def test_qa_io_atomic_write_below_a_file_is_an_output_error(tmp_path: Path) -> None:
    video = tmp_path / "ride.mp4"
    video.write_bytes(b"not touched")
    with pytest.raises(OutputError, match="a file is in the way"):
        atomic_write_text(video / "markers.csv", "x")
    assert video.read_bytes() == b"not touched"


def test_qa_cli_export_to_a_folder_is_one_red_line(tmp_path: Path) -> None:
    markers = tmp_path / "new_markers.csv"
    markers.write_text(
        "name,t_ref,t_new,confidence,needs_review,colour,comment\ngap,1.0,2.0,0.9,false,,\n", encoding="utf-8"
    )
    result = CliRunner().invoke(
        app,
        ["export", "csv", "--markers", str(markers), "--out", str(tmp_path), "--fps", "25", "--db", "none"],
    )
    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "is a folder" in result.output


@pytest.mark.parametrize("name", ["GX010101.MP4", "ride.gpx", "catalog.duckdb", "GL010101.LRV"])
def test_qa_io_never_overwrites_media_tracks_or_catalogs(tmp_path: Path, name: str) -> None:
    precious = tmp_path / name
    precious.write_bytes(b"the rider's own file")
    with pytest.raises(OutputError, match="never overwrites"):
        atomic_write_text(precious, "an EDL")
    assert precious.read_bytes() == b"the rider's own file"
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left behind
    # Sample generators may (they rebuild their own fixtures).
    atomic_write_text(precious, "sample", replace_media=True)
    assert precious.read_text() == "sample"


def test_qa_cli_export_and_transfer_refuse_to_overwrite_their_input(tmp_path: Path) -> None:
    markers = tmp_path / "new_markers.csv"
    original = "name,t_ref,t_new,confidence,needs_review,colour,comment\ngap,1.0,2.0,0.9,false,,\n"
    markers.write_text(original, encoding="utf-8")
    runner = CliRunner()
    export = runner.invoke(
        app,
        ["export", "csv", "--markers", str(markers), "--out", str(markers), "--fps", "25", "--db", "none"],
    )
    assert export.exit_code == EXIT_USER_ERROR and "also an input" in export.output
    video = tmp_path / "new.mp4"
    video.write_bytes(b"video")
    export_over_video = runner.invoke(
        app,
        [
            "export",
            "resolve-edl",
            "--markers",
            str(markers),
            "--out",
            str(video),
            "--fps",
            "25",
            "--db",
            "none",
        ],
    )
    assert export_over_video.exit_code == EXIT_USER_ERROR, export_over_video.output
    assert video.read_bytes() == b"video"
    ref = tmp_path / "ref_markers.csv"
    ref.write_text("name,t_ref\ngap,1.0\n", encoding="utf-8")
    transfer = runner.invoke(
        app,
        [
            *("transfer", "--reference-markers", str(ref), "--warp", str(tmp_path / "w.npz")),
            *("--out", str(ref), "--db", "none"),
        ],
    )
    assert transfer.exit_code == EXIT_USER_ERROR and "also an input" in transfer.output
    assert markers.read_text(encoding="utf-8") == original
    assert ref.read_text(encoding="utf-8") == "name,t_ref\ngap,1.0\n"

"""`mtbsync export` and `mtbsync export-markers` in process: files, summary line, errors."""

from __future__ import annotations

import json
from pathlib import Path

import opentimelineio as otio
import pytest
from export_cases import SMALL_MARKERS
from typer.testing import CliRunner

from mtbsync.cli import EXIT_OK, EXIT_USER_ERROR, app
from mtbsync.markers.io import write_new_markers

runner = CliRunner()


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.fixture
def markers_csv(tmp_path: Path) -> Path:
    return write_new_markers(tmp_path / "new_markers.csv", list(SMALL_MARKERS))


@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [("csv", ".csv"), ("edl", ".edl"), ("resolve-edl", ".edl"), ("fcpxml", ".fcpxml"), ("premiere", ".xml")],
)
def test_export_writes_each_format(fmt: str, suffix: str, markers_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / f"out{suffix}"
    result = _run("export", fmt, "--markers", markers_csv, "--out", out, "--fps", "25")
    assert result.exit_code == EXIT_OK, result.output
    assert out.stat().st_size > 0
    (summary,) = _lines(result.output)
    assert "Wrote 3 markers (skipped 1 not placed)" in summary and "25 fps" in summary
    # No temp file left behind; mtbsync notes what it wrote (so that a re-run may replace it).
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["new_markers.csv", out.name, ".mtbsync-files.json"]
    )


def test_export_markers_preset_writes_beside_the_csv(markers_csv: Path) -> None:
    result = _run("export-markers", markers_csv, "--preset", "resolve-edl", "--fps", "29.97")
    assert result.exit_code == EXIT_OK, result.output
    out = markers_csv.with_name("new_markers.resolve.edl")  # not new_markers.edl: that is `edl`'s
    text = out.read_text(encoding="utf-8")
    assert "FCM: DROP FRAME" in text and "|C:ResolveColorRed |M:rock garden |D:1" in text
    assert "29.97 DF" in result.output


def test_ndf_and_start_timecode(markers_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.edl"
    result = _run(
        "export", "edl", "-m", markers_csv, "-o", out, "--fps", "29.97", "--ndf", "--start-tc", "00:00:00:00"
    )
    assert result.exit_code == EXIT_OK, result.output
    timeline = otio.adapters.read_from_string(out.read_text(), adapter_name="cmx_3600", rate=30000 / 1001)
    (clip,) = timeline.tracks[0].find_clips()
    assert [m.marked_range.start_time.value for m in clip.markers] == [150, 370, 1768]


def test_rate_and_duration_come_from_the_video_named_in_timewarp_json(
    clip_30fps: Path, markers_csv: Path, tmp_path: Path
) -> None:
    (tmp_path / "timewarp.json").write_text(json.dumps({"meta": {"new": {"path": str(clip_30fps)}}}))
    out = tmp_path / "m.fcpxml"
    result = _run("export", "fcpxml", "--markers", markers_csv, "--out", out)
    assert result.exit_code == EXIT_OK, result.output
    # The 3 s clip: markers at 5 s, 12.34 s and 59 s are all past its end and clamped to frame 89.
    assert "30 fps" in result.output and "clamped 3" in result.output
    text = out.read_text()
    assert 'frameDuration="1/30s"' in text and 'width="320"' in text and clip_30fps.name in text
    assert text.count('start="89/30s"') == 3


def test_video_option_sets_the_rate(clip_30fps: Path, markers_csv: Path, tmp_path: Path) -> None:
    result = _run("export", "csv", "-m", markers_csv, "-o", tmp_path / "m.csv", "--video", clip_30fps)
    assert result.exit_code == EXIT_OK, result.output
    assert "30 fps" in result.output


def test_no_rate_and_no_video_is_one_line(markers_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.edl"
    result = _run("export", "resolve-edl", "--markers", markers_csv, "--out", out)
    assert result.exit_code == EXIT_USER_ERROR
    (line,) = _lines(result.output)
    assert "--fps" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name,t_ref,t_new,confidence,needs_review\njump,1,2,0.9,false\nberm,3,-4,0.9,false\n", "line 3"),
        ("name,t_ref,t_new,confidence,needs_review\njump,1,soon,0.9,false\n", "line 2"),
        ("name,t_ref,t_new,confidence,needs_review\njump,1,2,1.7,false\n", "confidence"),
        ("name,seconds\njump,1\n", "not a new_markers.csv"),
    ],
)
def test_bad_markers_csv_is_one_line_and_no_file(content: str, expected: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    out = tmp_path / "out.edl"
    result = _run("export", "resolve-edl", "--markers", bad, "--out", out, "--fps", "25")
    assert result.exit_code == EXIT_USER_ERROR
    (line,) = _lines(result.output)
    assert expected in line and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("bogus",), "unknown export format"),
        (("edl", "--fps", "12.5"), "frame rate"),
        (("edl", "--fps", "25", "--reel", "A/B"), "reel"),
        (("edl", "--fps", "25", "--start-tc", "25:00"), "timecode"),
    ],
)
def test_bad_options_are_one_line(args: tuple[str, ...], expected: str, markers_csv: Path) -> None:
    fmt, *rest = args
    result = _run("export", fmt, "--markers", markers_csv, "--out", markers_csv.with_suffix(".x"), *rest)
    assert result.exit_code == EXIT_USER_ERROR
    (line,) = _lines(result.output)
    assert expected in line


def test_nothing_placed_is_an_error(tmp_path: Path) -> None:
    from mtbsync.markers.model import TransferredMarker

    path = write_new_markers(tmp_path / "n.csv", [TransferredMarker("a", 1.0, None, 0.0, True)])
    result = _run("export", "fcpxml", "-m", path, "-o", tmp_path / "n.fcpxml", "--fps", "25")
    assert result.exit_code == EXIT_USER_ERROR
    assert "nothing to export" in result.output
    assert not (tmp_path / "n.fcpxml").exists()


def test_unknown_colours_are_warned_about(tmp_path: Path) -> None:
    from mtbsync.markers.model import TransferredMarker

    path = write_new_markers(tmp_path / "n.csv", [TransferredMarker("a", 1.0, 2.0, 0.9, False, "mauve-ish")])
    result = _run("export", "resolve-edl", "-m", path, "-o", tmp_path / "n.edl", "--fps", "25")
    assert result.exit_code == EXIT_OK
    assert "mauve-ish" in result.output
    assert "ResolveColorBlue" in (tmp_path / "n.edl").read_text()

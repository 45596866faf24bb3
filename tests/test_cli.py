"""The command line end to end on generated pairs: in process (CliRunner) plus a subprocess smoke test."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtbsync.cli import EXIT_NOT_ALIGNED, EXIT_OK, EXIT_USER_ERROR, app
from mtbsync.evaluate import read_truth_markers, score_markers
from mtbsync.markers import read_new_markers

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def synced(sample_pair, tmp_path_factory):
    """index + sync (with marker transfer) of the sample pair, once for the module."""
    out = tmp_path_factory.mktemp("cli")
    index = out / "ref_index.npz"
    result = _run("index", "--reference", sample_pair.reference, "--fps", "3", "--out", index)
    assert result.exit_code == EXIT_OK, result.output
    result = _run(
        "sync",
        "--reference",
        sample_pair.reference,
        "--new",
        sample_pair.new,
        "--index",
        index,
        "--out",
        out / "sync",
        "--reference-markers",
        sample_pair.reference_markers_csv,
    )
    return out, result


def test_sync_aligns_and_writes_its_files(synced) -> None:
    out, result = synced
    assert result.exit_code == EXIT_OK, result.output
    for name in ("pairs.csv", "warp.npz", "timewarp.json", "new_markers.csv", "alignment.png"):
        assert (out / "sync" / name).stat().st_size > 0
    doc = json.loads((out / "sync" / "timewarp.json").read_text())
    assert doc["ok"] is True
    assert set(doc["metrics"]["residuals_s"]) >= {"mae", "p50", "p90", "p95"}
    assert doc["gates"]["min_inlier_frac"] == 0.5
    for stage in ("decode", "features", "matching", "path", "refine", "warp", "total"):
        assert stage in result.output


def test_markers_land_within_frames_of_truth(synced, sample_pair) -> None:
    out, _ = synced
    markers = read_new_markers(out / "sync" / "new_markers.csv")
    score = score_markers(markers, read_truth_markers(sample_pair.truth_markers_csv), 1 / sample_pair.new_fps)
    summary = score.summary()
    assert summary["wrongly_placed"] == 0
    assert summary["missed"] <= 1
    assert summary["within_one_frame"] >= 0.7, summary
    assert summary["max_frames"] <= 4, summary


def test_transfer_and_alias_agree(synced, sample_pair, tmp_path: Path) -> None:
    out, _ = synced
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    r1 = _run(
        "transfer",
        "--reference-markers",
        sample_pair.reference_markers_csv,
        "--warp",
        out / "sync" / "warp.npz",
        "--out",
        a,
        "--review-threshold",
        "0.6",
    )
    r2 = _run(
        "transfer-markers",
        "--ref-markers",
        sample_pair.reference_markers_csv,
        "--timewarp-json",
        out / "sync" / "timewarp.json",
        "--out",
        b,
    )
    assert r1.exit_code == r2.exit_code == EXIT_OK, r1.output + r2.output
    ta = {m.name: m.t_new for m in read_new_markers(a)}
    tb = {m.name: m.t_new for m in read_new_markers(b)}
    assert ta.keys() == tb.keys()
    for name, value in ta.items():
        assert (value is None) == (tb[name] is None)
        if value is not None:
            assert value == pytest.approx(tb[name], abs=2e-3)


def test_warp_refits_from_pairs(synced, tmp_path: Path) -> None:
    out, _ = synced
    result = _run("warp", "--pairs", out / "sync" / "pairs.csv", "--out", tmp_path / "w.npz")
    assert result.exit_code == EXIT_OK, result.output
    assert (tmp_path / "w.npz").exists()


def test_plot_command(synced, sample_pair, tmp_path: Path) -> None:
    out, _ = synced
    png = tmp_path / "p.png"
    result = _run(
        "plot",
        "--pairs",
        out / "sync" / "pairs.csv",
        "--warp",
        out / "sync" / "warp.npz",
        "--markers",
        out / "sync" / "new_markers.csv",
        "--truth",
        sample_pair.truth_csv,
        "--out",
        png,
    )
    assert result.exit_code == EXIT_OK, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_different_trails_are_not_aligned(different_trail_pair, sample_pair, tmp_path: Path) -> None:
    result = _run(
        "sync",
        "--reference",
        different_trail_pair.reference,
        "--new",
        different_trail_pair.new,
        "--out",
        tmp_path,
        "--reference-markers",
        sample_pair.reference_markers_csv,
        "--no-plot",
    )
    assert result.exit_code == EXIT_NOT_ALIGNED, result.output
    assert json.loads((tmp_path / "timewarp.json").read_text())["ok"] is False
    with (tmp_path / "new_markers.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(row["t_new"] == "" for row in rows)
    assert all(row["needs_review"] == "true" for row in rows)


def test_index_of_another_video_is_refused(synced, sample_pair, tmp_path: Path) -> None:
    out, _ = synced
    result = runner.invoke(
        app,
        [
            "sync",
            "--reference",
            str(sample_pair.new),
            "--new",
            str(sample_pair.new),
            "--index",
            str(out / "ref_index.npz"),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == EXIT_USER_ERROR
    assert "built for" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("kind", ["missing", "empty", "text"])
def test_bad_video_gives_one_line_and_exit_1(kind: str, sample_pair, tmp_path: Path) -> None:
    bad = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "text":
        bad.write_text("hello, not a video")
    result = runner.invoke(
        app,
        ["sync", "--reference", str(sample_pair.reference), "--new", str(bad), "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == EXIT_USER_ERROR
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_malformed_markers_name_the_line(synced, tmp_path: Path) -> None:
    out, _ = synced
    bad = tmp_path / "m.csv"
    bad.write_text("name,t_ref\njump,12.5\nberm,soon\n")
    result = runner.invoke(
        app,
        [
            "transfer",
            "--reference-markers",
            str(bad),
            "--warp",
            str(out / "sync" / "warp.npz"),
            "--out",
            str(tmp_path / "o.csv"),
        ],
    )
    assert result.exit_code == EXIT_USER_ERROR
    assert "line 3" in result.output
    assert not (tmp_path / "o.csv").exists()


def test_subprocess_smoke(sample_pair, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mtbsync",
            "index",
            "--reference",
            str(sample_pair.reference),
            "--out",
            str(tmp_path / "i.npz"),
            "--fast",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "i.npz").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "mtbsync", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "sync" in proc.stdout

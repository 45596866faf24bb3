"""QA regressions for the command line as a whole: help order, one-line summaries."""

from __future__ import annotations

from types import SimpleNamespace

from typer.testing import CliRunner

from mtbsync.cli import app
from mtbsync.cli._common import duration_text, placed_summary


def test_qa_cli_help_lists_commands_in_the_riders_order() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    text = result.output
    order = [
        text.index(f"│ {name} ")
        for name in ("ingest", "runs", "index", "sync", "export", "preview", "sample")
    ]
    assert order == sorted(order)
    panels = [
        text.index(p)
        for p in ("Cards and catalog", "Align and export", "─ Review ─", "Kept for earlier versions")
    ]
    assert panels == sorted(panels)
    assert text.index("transfer-markers") > text.index("Kept for earlier versions")


def test_qa_cli_placed_summary_does_not_count_unplaced_as_review() -> None:
    markers = [
        SimpleNamespace(t_new=1.0, needs_review=False),
        SimpleNamespace(t_new=2.0, needs_review=True),
        SimpleNamespace(t_new=None, needs_review=True),
    ]
    assert placed_summary(markers) == "Placed 2 of 3 markers (1 to review, 1 not placed)"
    assert placed_summary(markers[:1]) == "Placed 1 of 1 markers (0 to review)"


def test_qa_cli_durations_read_as_minutes() -> None:
    assert [duration_text(s) for s in (6.0, 245.4, 3723.0, None, float("nan"))] == [
        "0:06",
        "4:05",
        "1:02:03",
        "",
        "",
    ]


def test_qa_cli_ctrl_c_in_a_command_says_interrupted(monkeypatch, capsys) -> None:
    import typer

    import mtbsync.cli as cli

    fake = typer.Typer()

    @fake.command()
    def work() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "app", fake)
    monkeypatch.setattr("sys.argv", ["mtbsync"])
    try:
        cli.main()
    except SystemExit as exc:
        assert exc.code == 130
    else:
        raise AssertionError("main() must exit")
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


def test_qa_cli_alignment_table_does_not_repeat_the_gps_mode() -> None:
    from rich.console import Console

    from mtbsync.cli._common import alignment_table

    mode = "none: GPS off (--no-gps); aligned by vision alone"
    warp = SimpleNamespace(
        ok=True,
        reason="",
        is_empty=True,
        metrics={
            "gps": {
                "mode": mode,
                "notes": ["reference: GPS off (--no-gps)", "new: track offset +0.7 s, applied"],
            }
        },
    )
    console = Console(width=200, record=True)
    console.print(alignment_table(warp))
    text = console.export_text()
    assert text.count("GPS off (--no-gps)") == 1
    assert "track offset +0.7 s" in text


def test_qa_cli_not_aligned_never_says_aligned_by_vision() -> None:
    from rich.console import Console

    from mtbsync.cli._common import alignment_table

    warp = SimpleNamespace(
        ok=False,
        reason="too few verified matches between the runs",
        is_empty=True,
        metrics={
            "gps": {"mode": "none: no GPS with a fix in the video; aligned by vision alone", "notes": []}
        },
    )
    console = Console(width=200, record=True)
    console.print(alignment_table(warp))
    text = console.export_text()
    assert "not aligned" in text and "aligned by vision" not in text


def test_qa_cli_sync_refuses_a_file_as_output_folder_before_working(sample_pair, tmp_path) -> None:
    out = tmp_path / "not_a_folder"
    out.write_text("keep me")
    result = CliRunner().invoke(
        app, ["sync", "-r", str(sample_pair.reference), "-n", str(sample_pair.new), "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "needs a folder" in result.output and "Traceback" not in result.output
    assert out.read_text() == "keep me"


def test_qa_cli_track_offset_without_a_track_is_one_line(sample_pair, tmp_path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "sync",
            "-r",
            str(sample_pair.reference),
            "-n",
            str(sample_pair.new),
            "--out",
            str(tmp_path),
            "--track-offset",
            "3",
        ],
    )
    assert result.exit_code == 1
    assert "--track-offset" in result.output and "none given" in result.output


def test_qa_cli_a_corrupt_warp_file_is_one_line(tmp_path) -> None:
    import pytest

    from mtbsync.align.warp import load_warp
    from mtbsync.errors import WarpFileError

    warp = tmp_path / "warp.npz"
    warp.write_bytes(b"PK\x03\x04 this is not a whole zip archive")
    with pytest.raises(WarpFileError, match="not a readable mtbsync warp"):
        load_warp(warp)


def test_qa_io_decoder_errors_read_without_errno_or_repeated_path(tmp_path) -> None:
    from mtbsync.errors import MediaError
    from mtbsync.io.video import probe

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    try:
        probe(junk)
    except MediaError as exc:
        message = str(exc)
    else:  # pragma: no cover - the assertion below says what went wrong
        message = ""
    assert "cannot read the container" in message
    assert "Errno" not in message and message.count("junk.mp4") == 1

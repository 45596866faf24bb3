"""`mtbsync preview` and `mtbsync serve` on bad input: one red line, exit 1."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mtbsync.cli import app

runner = CliRunner()


def test_preview_with_a_missing_warp_is_one_line(sample_pair, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "preview",
            "-r",
            str(sample_pair.reference),
            "-n",
            str(sample_pair.new),
            "--warp",
            str(tmp_path / "no.npz"),
            "--no-open",
        ],
    )
    assert result.exit_code == 1
    assert "warp file not found" in result.output
    assert "Traceback" not in result.output


def test_preview_with_a_short_token_is_refused(sample_pair, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "preview",
            "-r",
            str(sample_pair.reference),
            "-n",
            str(sample_pair.new),
            "--warp",
            "w.npz",
            "--token",
            "abc",
            "--no-open",
        ],
    )
    assert result.exit_code == 1
    assert "at least 8 characters" in result.output


def test_serve_without_a_catalog_is_one_line(tmp_path: Path) -> None:
    # `serve` is wired now (tests/api/test_serve_cli.py runs it); with --db none it refuses at once.
    result = runner.invoke(app, ["serve", "--library", str(tmp_path), "--db", "none"])
    assert result.exit_code == 1
    assert "catalog" in result.output


def test_preview_serves_until_interrupted(sample_pair, tmp_path: Path) -> None:
    """Smoke test of the real command in a subprocess: it prints the URL, serves, stops on Ctrl-C."""
    import re
    import signal
    import subprocess
    import sys

    import httpx
    from web_fixtures import truth_warp

    warp = truth_warp(sample_pair, tmp_path / "warp.npz")
    command = [sys.executable, "-m", "mtbsync", "preview", "-r", str(sample_pair.reference)]
    command += ["-n", str(sample_pair.new), "--warp", str(warp), "--out", str(tmp_path / "out")]
    command += ["--port", "0", "--no-open", "--token", "smoke-token-1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for line in proc.stdout:  # type: ignore[union-attr]
            found = re.search(r"(http://127\.0\.0\.1:\d+)/#token=(\S+)", line)
            if found:
                url = found.group(1)
                break
        # The URL carries the token in its fragment, the only way the browser gets it.
        assert url is not None, "preview printed no URL with #token="
        assert found.group(2) == "smoke-token-1"
        assert "smoke-token-1" not in httpx.get(f"{url}/", timeout=10).text
        assert httpx.get(f"{url}/api/health", timeout=10).json()["mode"] == "preview"
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
        assert proc.returncode in (0, 130)  # 130: the conventional exit after Ctrl-C
        assert "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

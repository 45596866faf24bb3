"""QA regressions for ingest-side inputs: folders where files are expected give one clear error."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from mtbsync.errors import TrackFileError
from mtbsync.ingest.gpx import read_track_file
from mtbsync.library.ingest import watch_and_ingest
from mtbsync.samples.card import build_sd_card
from mtbsync.store.catalog import Catalog


@pytest.mark.parametrize("name", ["tracks", "ride.gpx", "ride.fit"])
def test_qa_ingest_track_file_that_is_a_folder(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name
    folder.mkdir()
    with pytest.raises(TrackFileError, match="is a folder"):
        read_track_file(folder)


def test_qa_ingest_watch_a_relative_folder_ingests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `mtbsync watch dumps` (a relative folder) used to see every file complete and ingest nothing:
    # the scan named files relative, the OS events absolute.
    card = build_sd_card(tmp_path / "card", old_camera=False, gps9=False)
    monkeypatch.chdir(tmp_path)
    Path("dumps").mkdir()
    stop = threading.Event()
    outcomes: list = []
    errors: list[BaseException] = []
    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:

        def run() -> None:
            try:
                watch_and_ingest("dumps", catalog, stop, on_outcome=outcomes.append, settle_s=0.3, poll_s=0.1)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            time.sleep(0.5)
            shutil.copytree(card.root / "DCIM", Path("dumps") / "DCIM")
            end = time.monotonic() + 20
            while time.monotonic() < end and not any(o.status == "new" for o in outcomes):
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(timeout=10)
        assert not errors and not thread.is_alive()
        assert [o.name for o in outcomes if o.status == "new"] == ["GX010101"], outcomes
        assert catalog.query("SELECT count(*) AS n FROM runs")["n"][0] == 1


def test_qa_ingest_fresh_copy_says_what_to_do(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mtbsync.cli import app

    card = build_sd_card(tmp_path / "card", old_camera=False, gps9=False)
    result = CliRunner().invoke(
        app, ["ingest", str(card.root), "--db", str(tmp_path / "c.duckdb"), "--settle", "3600"]
    )
    assert result.exit_code == 0, result.output
    assert "1 still being written" in result.output
    assert "run `mtbsync ingest` again" in result.output


def test_qa_ingest_watch_a_missing_folder_fails_before_the_catalog(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mtbsync.cli import app

    db = tmp_path / "c.duckdb"
    result = CliRunner().invoke(app, ["watch", str(tmp_path / "nope"), "--db", str(db)])
    assert result.exit_code == 1
    assert "folder not found" in result.output and "Watching" not in result.output
    assert not db.exists()

"""`mtbsync ingest` of a dump it has seen: known recordings show their duration, GPS and HiLights too."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mtbsync.cli import EXIT_OK, app
from mtbsync.library.ingest import KNOWN, NEW, ingest_directory
from mtbsync.samples.card import build_sd_card
from mtbsync.store.catalog import Catalog


def _row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.strip().startswith(name))


def test_ingest_polish_known_recordings_show_what_the_catalog_has(tmp_path: Path) -> None:
    card = build_sd_card(tmp_path / "card").root
    db = tmp_path / "c.duckdb"
    with Catalog.open(db) as catalog:
        first = {o.name: o for o in ingest_directory(card, catalog, settle_s=0).outcomes}
        again = {o.name: o for o in ingest_directory(card, catalog, settle_s=0).outcomes}
    assert {o.status for o in first.values()} == {NEW}
    assert {o.status for o in again.values()} == {KNOWN}
    for name, new in first.items():
        known = again[name]
        assert known.duration_s is not None and abs(known.duration_s - new.duration_s) < 1e-6, name
        assert (known.gps, known.gps_source, known.hilights) == (new.gps, new.gps_source, new.hilights), name
    assert any(o.gps for o in again.values()) and any(o.hilights for o in again.values())

    runner = CliRunner()
    args = ["ingest", str(card), "--db", str(db), "--settle", "0"]
    shown = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert shown.exit_code == EXIT_OK, shown.output
    with_gps = next(name for name, o in again.items() if o.gps)
    row = _row(shown.output, with_gps)
    assert "known" in row and "yes" in row, row
    assert "0:0" in row  # the duration (m:ss) is filled in

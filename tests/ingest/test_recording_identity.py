"""One identity for a recording: a card ingest and `mtbsync index` / `sync` of its files are one run."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from mtbsync.cli import EXIT_NOT_ALIGNED, EXIT_OK, app
from mtbsync.io.video import chapters_identity, probe, video_identity
from mtbsync.library.ingest import recording_identity
from mtbsync.samples.card import CardLayout, build_sd_card
from mtbsync.store.catalog import Catalog, migrate
from mtbsync.store.schema import MIGRATIONS

runner = CliRunner()


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> CardLayout:
    """GX010101 in two chapters, GX010102 in one (HERO11 telemetry)."""
    return build_sd_card(tmp_path_factory.mktemp("card"), old_camera=False, seconds_per_chapter=2.0)


def _old_recording_identity(chapter_identities: list[str]) -> str:
    """How card ingests named every recording before one chapter was its file's identity."""
    digest = hashlib.blake2b(b"mtbsync-recording-v1", digest_size=16)
    for identity in chapter_identities:
        digest.update(b"\n" + identity.encode())
    return f"rec:{digest.hexdigest()}"


def _runs(db: Path) -> list[dict[str, str]]:
    result = runner.invoke(app, ["runs", "--db", str(db), "--format", "csv"])
    assert result.exit_code == EXIT_OK, result.output
    return list(csv.DictReader(io.StringIO(result.output)))


def _invoke(args: list[str]) -> None:
    result = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert result.exit_code in (EXIT_OK, EXIT_NOT_ALIGNED), result.output  # not aligned: a result
    assert "Traceback" not in result.output and "not recorded" not in result.output, result.output


def test_a_one_chapter_recording_is_named_by_its_file() -> None:
    assert recording_identity(["1:aa"]) == chapters_identity(["1:aa"]) == "1:aa"
    several = recording_identity(["1:aa", "2:bb"])
    assert several == chapters_identity(["1:aa", "2:bb"]) == _old_recording_identity(["1:aa", "2:bb"])


def test_ingest_then_index_and_sync_of_the_same_files_list_each_run_once(
    card: CardLayout, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.duckdb"
    one = card.recordings["GX010102"]
    chaptered = card.recordings["GX010101"]
    assert len(one.videos) == 1 and len(chaptered.videos) == 2
    # The probe of the file given to the CLI and the card ingest compute the same identity.
    assert probe(one.videos[0]).identity == recording_identity([video_identity(one.videos[0])])

    ingest = runner.invoke(app, ["ingest", str(card.root), "--db", str(db), "--settle", "0"])
    assert ingest.exit_code == EXIT_OK, ingest.output
    ingested = {row["run"]: row["run_id"] for row in _runs(db)}
    assert set(ingested) == {"GX010101", "GX010102"}

    index = tmp_path / "one.npz"
    _invoke(["index", "-r", str(one.videos[0]), "-o", str(index), "--fps", "3", "--db", str(db)])
    # The first chapter of a chaptered recording is joined with its later chapter: the same run too.
    _invoke(
        [
            "sync", "-r", str(chaptered.videos[0]), "-n", str(one.videos[0]), "-o", str(tmp_path / "sync"),
            "--no-plot", "--db", str(db),
        ]
    )  # fmt: skip
    rows = _runs(db)
    assert sorted(row["run"] for row in rows) == ["GX010101", "GX010102"], rows
    assert {row["run"]: row["run_id"] for row in rows} == ingested
    with Catalog.open(db, read_only=True) as catalog:
        aligned = catalog.query("SELECT new_run_id, ref_run_id FROM alignments").rows()
        indexed = catalog.query("SELECT run_id FROM indexes").rows()
    assert aligned == [(int(ingested["GX010102"]), int(ingested["GX010101"]))]
    assert indexed == [(int(ingested["GX010102"]),)]


def test_an_older_catalog_takes_the_one_identity_on_open(card: CardLayout, tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    one = card.recordings["GX010102"].videos[0]
    conn = duckdb.connect(str(db))
    migrate(conn, migrations=MIGRATIONS[:4])  # the catalog as the ingest left it before the change
    rows = [
        # (run_id, identity, kind, name, [video media identities])
        (1, _old_recording_identity([video_identity(one)]), "recording", "GX010102", [video_identity(one)]),
        (2, _old_recording_identity(["3:cc", "4:dd"]), "recording", "GX010201", ["3:cc", "4:dd"]),
        # Already split in two by the old schemes: left for an editor (both keep their results).
        (3, _old_recording_identity(["5:ee"]), "recording", "GX010301", ["5:ee"]),
        (4, "5:ee", "video", "GX010301", ["5:ee"]),
    ]
    for run_id, identity, kind, name, media in rows:
        conn.execute(
            "INSERT INTO runs (run_id, identity, name, kind, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, now(), now())",
            [run_id, identity, name, kind],
        )
        for chapter, media_identity in enumerate(media, start=1):
            conn.execute(
                "INSERT INTO media_files (run_id, role, chapter, path, size, identity) "
                "VALUES (?, 'video', ?, ?, 1, ?)",
                [run_id, chapter, f"/card/{name}-{chapter}.MP4", media_identity],
            )
        if kind == "recording":
            conn.execute(
                "INSERT INTO media_files (run_id, role, chapter, path, size, identity) "
                "VALUES (?, 'proxy', 1, ?, 1, 'lrv')",
                [run_id, f"/card/{name}.LRV"],
            )
    conn.close()

    with Catalog.open(db) as catalog:
        identities = dict(catalog.query("SELECT run_id, identity FROM runs ORDER BY run_id").rows())
    assert identities == {
        1: video_identity(one),
        2: _old_recording_identity(["3:cc", "4:dd"]),
        3: _old_recording_identity(["5:ee"]),
        4: "5:ee",
    }
    # The migrated run is the one `mtbsync index` of the file records into.
    _invoke(["index", "-r", str(one), "-o", str(tmp_path / "one.npz"), "--fps", "3", "--db", str(db)])
    with Catalog.open(db, read_only=True) as catalog:
        assert catalog.query("SELECT run_id FROM indexes").rows() == [(1,)]
        assert catalog.query("SELECT count(*) FROM runs").rows() == [(4,)]

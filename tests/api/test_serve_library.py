"""`mtbsync serve --library DIR` in process: a real card, the watcher, the worker pool and the API on uvicorn.

The service runs once for the module over a card built with `build_sd_card` (small clips of unrelated
textures, so each recording starts its own trail and is its reference). Before it starts, a recording
is ingested whose files are then deleted: the pool must mark it failed and go on.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

TOKEN = "serve-token-123"
BUSY = {"queued", "ingesting", "aligning"}


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (no timing asserts: just a deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def settled_runs(url: str, count: int) -> list[dict] | None:
    """The runs, once there are ``count`` of them and none is queued or being processed."""
    runs = httpx.get(f"{url}/api/runs").json()
    if len(runs) >= count and all(r["state"] not in BUSY for r in runs):
        return runs
    return None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running library service; ``.gone`` is the run whose files were deleted before it started."""
    from mtbsync.library.ingest import ingest_directory
    from mtbsync.samples.card import build_sd_card
    from mtbsync.service import LibraryService
    from mtbsync.store.catalog import Catalog

    work = tmp_path_factory.mktemp("serve_library")
    library = work / "library"
    db = work / "catalog.duckdb"
    gone = build_sd_card(library / "gone", seconds_per_chapter=1.0, old_camera=False, gps9=False, seed=7)
    with Catalog.open(db) as catalog:
        report = ingest_directory(library / "gone", catalog, settle_s=0)
    gone_id = report.new[0].run_id
    shutil.rmtree(library / "gone")  # the rider deleted it while the service was down
    build_sd_card(library / "card1", seconds_per_chapter=1.5, old_camera=False)
    service = LibraryService(
        library, db=db, port=0, token=TOKEN, settle_s=0.3, telemetry_interval_s=0.5
    ).start()
    service.gone_id = gone_id
    service.test_library = library
    assert gone.recordings  # the card had a recording to lose
    try:
        yield service
    finally:
        service.stop()


def test_runs_go_through_the_pipeline_and_end_ready(served) -> None:
    runs = wait_for(lambda: settled_runs(served.url, 3), what="three settled runs")
    by_name = {r["name"]: r for r in runs if r["id"] != str(served.gone_id)}
    assert set(by_name) == {"GX010101", "GX010102"}
    for run in by_name.values():
        # Unrelated clips: each starts its own trail and is its reference.
        assert run["state"] == "ready" and run["is_reference"] and run["trail"], run
        assert run["media"]["url"] == f"/api/media/{run['id']}"
    jobs = httpx.post(
        f"{served.url}/api/sql",
        json={"sql": "SELECT run_id, kind, state FROM jobs WHERE state = 'done' ORDER BY job_id"},
    ).json()["rows"]
    done = {(kind, run) for run, kind, _ in jobs}
    for run in by_name.values():
        assert ("ingest", int(run["id"])) in done and ("align", int(run["id"])) in done
    stages = httpx.post(
        f"{served.url}/api/sql",
        json={"sql": f"SELECT DISTINCT stage FROM stage_timings WHERE run_id = {by_name['GX010101']['id']}"},
    ).json()["rows"]
    assert {"proxy", "save"} <= {s for (s,) in stages}


def test_a_run_whose_file_is_gone_fails_with_a_reason_and_the_pool_goes_on(served) -> None:
    wait_for(lambda: settled_runs(served.url, 3), what="three settled runs")
    run = httpx.get(f"{served.url}/api/runs/{served.gone_id}").json()
    assert run["state"] == "failed"
    assert "not there any more" in run["reason"] and "\n" not in run["reason"]
    # The others were processed after it (the failure did not stop the pool).
    assert sum(r["state"] == "ready" for r in httpx.get(f"{served.url}/api/runs").json()) == 2


def test_a_multi_chapter_run_is_one_timeline_and_plays_as_one_file(served, tmp_path) -> None:
    from mtbsync.io.video import probe

    wait_for(lambda: settled_runs(served.url, 3), what="three settled runs")
    rows = httpx.post(
        f"{served.url}/api/sql",
        json={"sql": f"SELECT name, notes FROM runs WHERE name = 'GX010101' AND run_id <> {served.gone_id}"},
    ).json()["rows"]
    assert "2 chapters joined into one timeline" in rows[0][1]
    run = next(
        r
        for r in httpx.get(f"{served.url}/api/runs").json()
        if r["name"] == "GX010101" and r["state"] == "ready"
    )
    chapters = sorted(served.test_library.rglob("GX0[12]0101.MP4"))
    joined = sum(probe(c).duration for c in chapters)
    assert run["media"]["duration"] == pytest.approx(joined, abs=0.05)
    # The browser gets one H.264 file of the whole recording (made from the chapters' LRVs).
    media = httpx.get(f"{served.url}{run['media']['url']}")
    assert media.status_code == 200
    played = tmp_path / "played.mp4"
    played.write_bytes(media.content)
    info = probe(played)
    assert info.codec == "h264"
    assert info.duration == pytest.approx(joined, abs=0.2)
    partial = httpx.get(f"{served.url}{run['media']['url']}", headers={"Range": "bytes=0-63"})
    assert partial.status_code == 206 and partial.content == media.content[:64]


def test_sql_over_http_is_read_only_bounded_and_cannot_read_files(served) -> None:
    url = served.url
    body = httpx.post(f"{url}/api/sql", json={"sql": "SELECT * FROM range(30)", "max_rows": 5}).json()
    assert len(body["rows"]) == 5 and body["truncated"] is True
    for sql in ("DELETE FROM runs", "SET enable_external_access = true", "COPY runs TO '/tmp/x.csv'"):
        refused = httpx.post(f"{url}/api/sql", json={"sql": sql})
        assert refused.status_code == 400, sql
    files = httpx.post(f"{url}/api/sql", json={"sql": "SELECT * FROM read_csv('/etc/hostname')"})
    assert files.status_code == 400 and "disabled" in files.json()["detail"]
    assert httpx.post(f"{url}/api/sql", json={"sql": "SELECT count(*) FROM runs"}).json()["rows"][0][0] >= 3


def test_mtbsync_sql_talks_to_the_running_service(served) -> None:
    from mtbsync.cli import app
    from mtbsync.store.service_file import read_live_service

    info = read_live_service(served.db_path)
    assert info is not None and info.url == served.url and info.token == TOKEN
    result = CliRunner().invoke(
        app, ["sql", "SELECT name FROM runs ORDER BY name", "--format", "csv", "--db", str(served.db_path)]
    )
    assert result.exit_code == 0, result.output
    assert "GX010101" in result.output and "GX010102" in result.output
    write = CliRunner().invoke(app, ["sql", "DELETE FROM runs", "--write", "--db", str(served.db_path)])
    assert write.exit_code == 1 and "owns the catalog" in write.output


def test_markers_list_reads_every_marker_through_the_running_service(served) -> None:
    from mtbsync.cli import app
    from mtbsync.store.service_file import SERVICE_MAX_ROWS, query_service, read_live_service

    runs = wait_for(lambda: settled_runs(served.url, 3), what="three settled runs")
    run = next(r for r in runs if r["name"] == "GX010101" and r["state"] == "ready")
    # It used to ask for more rows than one answer of the service holds ("max_rows: ... <= 10000").
    listing = CliRunner().invoke(app, ["markers", "list", run["id"], "--db", str(served.db_path)])
    assert listing.exit_code == 0, listing.output
    assert "HiLight 1" in listing.output and "HiLight 2" in listing.output
    # Past the service's limit the rows come page by page, in the query's order, none twice.
    info = read_live_service(served.db_path)
    sql = "SELECT i FROM range(25) t(i) ORDER BY i DESC;"
    paged = query_service(info, sql, max_rows=1000, page_rows=10)
    assert paged["i"].to_list() == list(range(24, -1, -1))
    assert query_service(info, sql, max_rows=12, page_rows=5)["i"].to_list() == list(range(24, 12, -1))
    assert len(query_service(info, "SELECT * FROM range(20)", max_rows=20, page_rows=10)) == 20
    many = query_service(info, f"SELECT * FROM range({SERVICE_MAX_ROWS + 5})", max_rows=10**6)
    assert len(many) == SERVICE_MAX_ROWS + 5


def _collect_until(url: str, done: Callable[[dict[str, list[dict]]], bool], timeout: float = 60.0):
    seen: dict[str, list[dict]] = {}
    event = None
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", f"{url}/api/events", timeout=10.0) as response:
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event:
                seen.setdefault(event, []).append(json.loads(line.split(":", 1)[1]))
                if done(seen) or time.monotonic() > deadline:
                    return seen
    return seen


def test_a_card_copied_in_while_serving_shows_its_states_on_the_event_stream(served) -> None:
    from mtbsync.samples.card import build_sd_card

    wait_for(lambda: settled_runs(served.url, 3), what="three settled runs")
    broker = served.server.app.state.broker
    before = broker.clients

    def finished(seen: dict[str, list[dict]]) -> bool:
        return any(
            e["previous_state"] == "aligning" for e in seen.get("run", []) if e["run"]["id"] not in known
        )

    known = {r["id"] for r in httpx.get(f"{served.url}/api/runs").json()}
    seen: dict[str, list[dict]] = {}
    reader = threading.Thread(target=lambda: seen.update(_collect_until(served.url, finished)))
    reader.start()
    wait_for(lambda: broker.clients > before, timeout=10, what="the event stream")
    # A second card is copied into the library while the service runs: the same ride's GPS track as
    # card1's GX010101 (so it is put on that trail) but other pictures (so it cannot be aligned).
    build_sd_card(
        served.test_library / "card2", seconds_per_chapter=1.0, old_camera=False, gps9=False, seed=5
    )
    reader.join(90)
    new_events = [e for e in seen.get("run", []) if e["run"]["id"] not in known]
    states = [e["run"]["state"] for e in new_events]
    assert states[:4] == ["queued", "ingesting", "queued", "aligning"], states
    final = new_events[-1]["run"]
    assert final["state"] == "not aligned" and final["reason"], final
    assert final["trail"] == next(
        r["trail"]
        for r in httpx.get(f"{served.url}/api/runs").json()
        if r["name"] == "GX010101" and r["is_reference"]
    )
    stages = [e for e in seen.get("stage", []) if e["run_id"] not in known]
    assert {("start", "proxy"), ("finish", "proxy")} <= {(e["phase"], e["record"]["name"]) for e in stages}
    wait_for(lambda: settled_runs(served.url, 4), what="the second card's run")


def test_exports_are_written_to_the_work_folder_and_recorded(served) -> None:
    runs = wait_for(lambda: settled_runs(served.url, 3), what="three settled runs")
    run = next(r for r in runs if r["name"] == "GX010101" and r["state"] == "ready")
    # A reference with only its camera HiLights: they are its markers and export as such.
    markers = httpx.get(f"{served.url}/api/runs/{run['id']}/markers").json()["markers"]
    assert [m["name"] for m in markers] == ["HiLight 1", "HiLight 2"]
    response = httpx.get(f"{served.url}/api/runs/{run['id']}/exports/csv")
    assert response.status_code == 200 and "HiLight 1" in response.text
    rows = httpx.post(
        f"{served.url}/api/sql", json={"sql": f"SELECT format, path FROM exports WHERE run_id = {run['id']}"}
    ).json()["rows"]
    assert rows and rows[0][0] == "csv"
    assert Path(rows[0][1]).is_relative_to(served.work_dir / "exports")
    assert not Path(rows[0][1]).is_relative_to(served.test_library)


def test_a_multi_chapter_runs_export_keeps_the_joined_timeline(served) -> None:
    # As the preview and `mtbsync export` do: no one chapter file is linked as the clip.
    wait_for(lambda: settled_runs(served.url, 3), what="three settled runs")
    run = next(
        r
        for r in httpx.get(f"{served.url}/api/runs").json()
        if r["name"] == "GX010101" and r["state"] == "ready"
    )
    xml = httpx.get(f"{served.url}/api/runs/{run['id']}/exports/fcpxml").text
    assert "GX010101 + 1 chapters joined" in xml
    assert "GX010101.MP4" not in xml

"""Screenshots of the dashboard for the README: docs/dashboard-runs.png and docs/dashboard-run.png.

Generates a sample pair, aligns it with `mtbsync sync`'s pipeline, serves ``mtbsync preview`` of it
and photographs the runs table and the run page in headless Chromium (/usr/bin/chromium).

    .venv/bin/python docs/make_screenshots.py [--out docs] [--work /tmp/mtbsync-shots]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from mtbsync.config import preset
from mtbsync.markers import read_reference_markers
from mtbsync.pipeline import sync
from mtbsync.samples import make_sample_pair
from mtbsync.service import ApiServer, preview_app, preview_files
from mtbsync.timing import StageTimer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mtbsync-shots"))
    parser.add_argument("--theme", choices=["dark", "light"], default="dark")
    args = parser.parse_args()

    pair = make_sample_pair(args.work / "pair", duration_s=30.0, seed=7, n_markers=10)
    timer = StageTimer()
    result = sync(
        pair.reference,
        pair.new,
        args.work / "sync",
        preset("default"),
        markers=read_reference_markers(pair.reference_markers_csv),
        timer=timer,
    )
    shutil.rmtree(args.work / "review", ignore_errors=True)
    files = preview_files(
        pair.reference,
        pair.new,
        result.files["warp"],
        new_markers=result.files["markers"],
        reference_markers=pair.reference_markers_csv,
        out_dir=args.work / "review",
    )
    app, source = preview_app(files, history=timer.records, telemetry_interval_s=0.5)
    placed = [m for m in source.markers("new").markers if m.t_new is not None]
    with ApiServer(app, host="127.0.0.1", port=0) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=["--no-sandbox"]
        )
        page = browser.new_page(
            viewport={"width": 1440, "height": 900}, color_scheme=args.theme, device_scale_factor=1
        )
        page.goto(f"{server.url}/")
        page.wait_for_selector("#runs-table tbody tr")
        time.sleep(6)  # a few seconds of telemetry for the charts
        page.screenshot(path=str(args.out / "dashboard-runs.png"))
        page.goto(f"{server.url}/#/run/new")
        page.wait_for_function("window.mtbsync.ready === true")
        page.wait_for_function("document.getElementById('video-new').readyState >= 2")
        moment = placed[len(placed) // 2].t_new + 0.4 if placed else 5.0
        page.evaluate(f"document.getElementById('video-new').currentTime = {moment}")
        time.sleep(1.5)
        page.screenshot(path=str(args.out / "dashboard-run.png"), full_page=True)
        browser.close()
    print(f"wrote {args.out / 'dashboard-runs.png'} and {args.out / 'dashboard-run.png'}")  # noqa: T201


if __name__ == "__main__":
    main()

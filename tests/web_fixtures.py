"""Fixtures of the API and dashboard tests (a pytest plugin loaded by tests/conftest.py).

A warp built from the sample pair's exact truth (fast: no sync), a preview server on a free port of
127.0.0.1 per test area, and headless Chromium (/usr/bin/chromium) driven by Playwright.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# A stretch of the new run where the truth-built warp is made unsure on purpose (for shading/review).
LOW_CONFIDENCE_NEW = (6.0, 7.5)
API_TOKEN = "test-token-123"


def truth_warp(pair: Any, path: Path, step_s: float = 0.2) -> Path:
    """A warp through the sample pair's exact truth (every ``step_s``), saved as .npz; fast, no sync."""
    from mtbsync.align.warp import Warp, save_warp
    from mtbsync.io.video import probe

    with open(pair.truth_csv, newline="") as fh:
        rows = [(float(r["t_new"]), float(r["t_ref"])) for r in csv.DictReader(fh)]
    t = np.array(rows)
    keep = np.concatenate([[True], np.diff(np.floor(t[:, 0] / step_s)) > 0])
    keep[-1] = True
    t_new, t_ref = t[keep, 0], np.maximum.accumulate(t[keep, 1])
    low = (t_new >= LOW_CONFIDENCE_NEW[0]) & (t_new <= LOW_CONFIDENCE_NEW[1])
    confidence = np.where(low, 0.35, 0.92)
    ref_info, new_info = probe(pair.reference), probe(pair.new)
    warp = Warp(
        t_new,
        t_ref,
        confidence,
        ok=True,
        metrics={
            "coverage_new": float((t_new[-1] - t_new[0]) / new_info.duration),
            "residuals_s": {"p50": 0.012, "p90": 0.031, "max": 0.06},
            "mean_confidence": float(confidence.mean()),
        },
        gates={"min_coverage": 0.3, "max_p90": 0.25},
        meta={
            "reference": {"path": str(pair.reference.resolve()), "identity": ref_info.identity},
            "new": {"path": str(pair.new.resolve()), "identity": new_info.identity},
        },
    )
    return save_warp(warp, path)


@dataclass
class PreviewServer:
    """A running preview server and what the tests need to know about it."""

    url: str
    token: str
    source: Any  # PreviewSource
    out_dir: Path
    warp_path: Path
    server: Any  # ApiServer


@contextmanager
def start_preview_server(pair: Any, work: Path, *, token: str = API_TOKEN) -> Iterator[PreviewServer]:
    """Serve the preview of ``pair`` on 127.0.0.1 (free port) until the block ends."""
    from mtbsync.service import ApiServer, preview_app, preview_files

    warp_path = truth_warp(pair, work / "warp.npz")
    out_dir = work / "review"
    files = preview_files(
        pair.reference, pair.new, warp_path, reference_markers=pair.reference_markers_csv, out_dir=out_dir
    )
    app, source = preview_app(files, token=token, telemetry_interval_s=0.5)
    server = ApiServer(app, host="127.0.0.1", port=0).start()
    try:
        yield PreviewServer(server.url, token, source, out_dir, warp_path, server)
    finally:
        server.stop()


# -- the API tests (tests/api) ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def preview_server(sample_pair: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PreviewServer]:
    """The preview of the sample pair (warp built from the known truth), served on a free port."""
    with start_preview_server(sample_pair, tmp_path_factory.mktemp("api_review")) as server:
        yield server


@pytest.fixture(scope="session")
def base_url(preview_server: PreviewServer) -> str:
    """``http://127.0.0.1:PORT`` of the API tests' server."""
    return preview_server.url


@pytest.fixture(scope="session")
def api_token(preview_server: PreviewServer) -> str:
    """The API tests' server's write token."""
    return preview_server.token


# -- the dashboard tests (tests/dashboard) ---------------------------------------------------------


@pytest.fixture(scope="session")
def dashboard_server(sample_pair: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PreviewServer]:
    """A server of its own for the browser tests (their edits do not meet the API tests')."""
    with start_preview_server(sample_pair, tmp_path_factory.mktemp("dashboard_review")) as server:
        yield server


def log_in(page: Any, url: str, token: str) -> None:
    """Open the URL that ``mtbsync serve`` prints (``/#token=T``) and wait until the page may write."""
    page.goto(f"{url}/#token={token}")
    page.wait_for_function("window.mtbsync && window.mtbsync.session.write === true", timeout=15000)


def open_run_page(page: Any, url: str, run_id: str, *, token: str | None = None) -> None:
    """Open a run's page and wait until the dashboard is ready and both players have their videos.

    With ``token``, the page is first opened as the printed URL, so that it may write.
    """
    if token is not None:
        log_in(page, url, token)
    page.goto(f"{url}/#/run/{run_id}")
    page.wait_for_function("window.mtbsync && window.mtbsync.ready === true", timeout=15000)
    page.wait_for_function(
        "document.getElementById('video-new').readyState >= 1"
        " && document.getElementById('video-ref').readyState >= 1",
        timeout=15000,
    )


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Headless Chromium (the Debian package) through Playwright's Python package."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        yield browser
        browser.close()


@pytest.fixture()
def dashboard_page(chromium: Any, dashboard_server: PreviewServer) -> Iterator[Any]:
    """A fresh page (own context) that records console errors in ``page.console_errors``."""
    context = chromium.new_context(
        viewport={"width": 1400, "height": 1000}, accept_downloads=True, color_scheme="dark"
    )
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    yield page
    context.close()

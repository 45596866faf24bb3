"""Exports download over HTTP and parse in independent readers."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

import httpx
import opentimelineio as otio
import pytest


def _placed_count(base_url: str) -> int:
    markers = httpx.get(f"{base_url}/api/runs/new/markers").json()["markers"]
    return sum(m["t_new"] is not None for m in markers)


def test_formats_are_listed(base_url: str) -> None:
    formats = httpx.get(f"{base_url}/api/runs/new/exports").json()
    assert {"csv", "edl", "resolve-edl", "fcpxml", "premiere"} <= set(formats)


def test_csv_download_parses(base_url: str) -> None:
    response = httpx.get(f"{base_url}/api/runs/new/exports/csv")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == _placed_count(base_url)


def test_edl_download_is_read_by_opentimelineio(base_url: str) -> None:
    response = httpx.get(f"{base_url}/api/runs/new/exports/edl")
    assert response.status_code == 200
    assert response.headers["content-disposition"].endswith('.edl"')
    timeline = otio.adapters.read_from_string(response.text, adapter_name="cmx_3600", rate=25)
    markers = [m for track in timeline.tracks for clip in track for m in clip.markers]
    assert len(markers) == _placed_count(base_url)


@pytest.mark.parametrize("fmt", ["fcpxml", "premiere"])
def test_xml_downloads_parse(base_url: str, fmt: str) -> None:
    response = httpx.get(f"{base_url}/api/runs/new/exports/{fmt}")
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.tag in {"fcpxml", "xmeml"}


def test_unknown_format_is_404(base_url: str) -> None:
    response = httpx.get(f"{base_url}/api/runs/new/exports/avid-bin")
    assert response.status_code == 404
    assert "csv" in response.json()["detail"]

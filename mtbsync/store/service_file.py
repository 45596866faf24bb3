"""One writer: how the CLI reaches the catalog while `mtbsync serve` holds it.

DuckDB lets one process open a database file for writing, and no other process may open it at all
meanwhile (not even read-only). So:

1. The service opens the catalog for writing and, once its HTTP server listens, writes
   ``<db>.service.json`` next to the database: ``{"url", "pid", "token", "db", "started_utc"}``
   (`write_service_file`; mode 0600 because of the token). It removes the file on a clean stop
   (`remove_service_file`).
2. A CLI command that reads (``mtbsync sql``, ``runs``, ``trails``) first calls `read_live_service`:
   if the file exists and its pid is alive, it sends the query to ``POST {url}/api/sql`` with
   ``{"sql": ..., "max_rows": N}`` and the token as ``Authorization: Bearer ...``; the service
   answers ``{"columns": [...], "rows": [[...], ...], "truncated": bool}`` (via `queries.run_sql`,
   read-only) or a 4xx with ``{"error": code, "detail": "one line"}``. It returns at most
   `SERVICE_MAX_ROWS` rows an answer, so a caller that wants more gets them page by page
   (`query_service`). With no live service it opens the file read-only itself.
3. A CLI command that writes (``index``, ``sync``, ...) still writes its files; if the catalog is
   held by the service it says in one line what was not recorded.

A stale file (the service was killed) is ignored: its pid is not alive.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from mtbsync.errors import CatalogError
from mtbsync.io.files import atomic_write_text

SERVICE_SUFFIX = ".service.json"
# The most rows the service's POST /api/sql returns in one answer (its ``max_rows`` limit).
SERVICE_MAX_ROWS = 10_000


@dataclass(frozen=True)
class ServiceInfo:
    """A running service that owns a catalog.

    Attributes:
        url: Base URL, e.g. ``http://127.0.0.1:8000``.
        pid: The service's process id.
        token: The API token (None when the service runs without one).
        db: The catalog file it owns.
    """

    url: str
    pid: int
    token: str | None
    db: str


def service_file_path(db_path: str | Path) -> Path:
    """``<db>.service.json`` beside the database file."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + SERVICE_SUFFIX)


def write_service_file(
    db_path: str | Path, url: str, *, token: str | None = None, pid: int | None = None
) -> Path:
    """Announce a running service next to its catalog (atomically, readable by the owner only).

    Args:
        db_path: The catalog the service owns.
        url: Where the service listens.
        token: The API token clients must send, if any.
        pid: The service's pid (default: this process).

    Returns:
        The service file's path.
    """
    path = service_file_path(db_path)
    document = {
        "url": url.rstrip("/"),
        "pid": pid if pid is not None else os.getpid(),
        "token": token,
        "db": str(Path(db_path).resolve()),
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # 0o600 from the start (the token is never readable by others, not even for an instant).
    atomic_write_text(path, json.dumps(document, indent=2) + "\n", mode=0o600)
    return path


def remove_service_file(db_path: str | Path, *, pid: int | None = None) -> None:
    """Remove the service file if it is this process's (another service's file is left alone)."""
    path = service_file_path(db_path)
    info = _read(path)
    if info is not None and info.pid == (pid if pid is not None else os.getpid()):
        path.unlink(missing_ok=True)


def _read(path: Path) -> ServiceInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ServiceInfo(
            url=str(data["url"]),
            pid=int(data["pid"]),
            token=data.get("token") or None,
            db=str(data.get("db", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (and is not a zombie)."""
    if pid <= 0:
        return False
    try:
        import psutil

        if not psutil.pid_exists(pid):
            return False
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except ImportError:  # pragma: no cover - psutil is a dependency
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    except Exception:  # process vanished between the two calls
        return False


def read_live_service(db_path: str | Path) -> ServiceInfo | None:
    """The service that owns ``db_path``, if its file is there and its process alive.

    Returns:
        The service, or None (no file, unreadable file, or a stale one left by a killed service).
    """
    info = _read(service_file_path(db_path))
    if info is None or not pid_alive(info.pid):
        return None
    return info


def query_service(
    info: ServiceInfo,
    sql: str,
    *,
    max_rows: int = SERVICE_MAX_ROWS,
    timeout_s: float = 30.0,
    page_rows: int = SERVICE_MAX_ROWS,
    query_timeout_s: float | None = None,
) -> pl.DataFrame:
    """Run a read-only query through the service's ``POST /api/sql``, page by page past its limit.

    The service returns at most `SERVICE_MAX_ROWS` rows an answer. When more are wanted and the
    first answer says there were more, the query is asked again as
    ``SELECT * FROM (<sql>) LIMIT n OFFSET k`` until ``max_rows`` rows or the end (give the query an
    ORDER BY for a stable order across pages).

    Args:
        info: The live service.
        sql: The query (one statement to be paged; anything the service takes otherwise).
        max_rows: Most rows to return (any number).
        timeout_s: HTTP timeout of each request.
        page_rows: Rows asked for in one request (at most the service's limit).
        query_timeout_s: The query's time budget on the service (None: the service's own; the
            service never grants more than its own).

    Returns:
        The rows as a DataFrame.

    Raises:
        CatalogError: The service refused the query (its one-line reason) or did not answer, or a
            query with more rows than one answer holds cannot be paged.
    """
    if max_rows < 1:
        raise CatalogError("max_rows must be at least 1")
    page_rows = max(1, min(page_rows, SERVICE_MAX_ROWS))
    columns, rows, truncated = _post_sql(info, sql, min(max_rows, page_rows), timeout_s, query_timeout_s)
    if truncated and len(rows) < max_rows:
        inner = sql.strip().rstrip(";").strip()
        while truncated and len(rows) < max_rows:
            want = min(max_rows - len(rows), page_rows)
            paged = f"SELECT * FROM (\n{inner}\n) AS mtbsync_page LIMIT {want} OFFSET {len(rows)}"
            try:
                _, more, truncated = _post_sql(info, paged, want, timeout_s, query_timeout_s)
            except CatalogError as exc:
                raise CatalogError(
                    f"the service returns at most {len(rows)} rows at a time and this query cannot be "
                    f"paged ({exc}); ask for fewer rows or add LIMIT/OFFSET"
                ) from None
            if not more:
                break
            rows.extend(more)
            # The page asked for exactly ``want`` rows: one more page if it came back full.
            truncated = len(more) == want
    return frame_from_rows(columns, rows[:max_rows])


def _post_sql(
    info: ServiceInfo, sql: str, max_rows: int, timeout_s: float, query_timeout_s: float | None = None
) -> tuple[list[str], list[list[Any]], bool]:
    """One ``POST /api/sql``: (columns, rows, whether there were more)."""
    import httpx

    request: dict[str, Any] = {"sql": sql, "max_rows": max_rows}
    if query_timeout_s is not None:
        request["timeout_s"] = query_timeout_s
        timeout_s = max(timeout_s, query_timeout_s + 5.0)  # the service answers 408 first

    headers = {"Authorization": f"Bearer {info.token}"} if info.token else {}
    try:
        response = httpx.post(f"{info.url}/api/sql", json=request, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise CatalogError(
            f"the mtbsync service at {info.url} (pid {info.pid}) holds the catalog but does not answer: {exc}"
        ) from None
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, list):  # FastAPI's validation errors: [{"loc": ..., "msg": ...}, ...]
            detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
        elif not isinstance(detail, str):
            detail = json.dumps(detail) if detail is not None else response.reason_phrase
        raise CatalogError(str(detail).splitlines()[0] if detail else f"HTTP {response.status_code}")
    if not isinstance(body, dict) or "columns" not in body or "rows" not in body:
        raise CatalogError(f"the mtbsync service at {info.url} sent an unexpected answer to /api/sql")
    rows = list(body["rows"])
    # An older service without "truncated": a full answer may have had more.
    truncated = bool(body.get("truncated", len(rows) >= max_rows))
    return list(body["columns"]), rows, truncated


def frame_from_rows(columns: list[str], rows: list[list[Any]]) -> pl.DataFrame:
    """A DataFrame from the JSON shape of ``/api/sql`` (columns + rows)."""
    if not rows:
        return pl.DataFrame({name: [] for name in columns})
    return pl.DataFrame(rows, schema=list(columns), orient="row", infer_schema_length=None)


def frame_to_rows(frame: pl.DataFrame) -> dict[str, Any]:
    """A DataFrame as the JSON shape of ``/api/sql``: ``{"columns": [...], "rows": [[...], ...]}``.

    Every value becomes plain JSON: times as ISO text, decimals as floats, NaN/inf as null, bytes as
    hex, lists and structs as JSON arrays and objects (the service's endpoint uses this).
    """
    return {"columns": frame.columns, "rows": [[jsonable(v) for v in row] for row in frame.iter_rows()]}


def jsonable(value: Any) -> Any:
    """A query result's value as plain JSON data (see `frame_to_rows`)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return jsonable(float(value))
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)  # timedelta, UUID, ...

"""The catalog's schema in one place: an append-only list of migrations (the simonw/llm way).

Each migration is a name and its SQL. `Catalog.open` applies the ones a database has not seen yet, in
one transaction, and records each in ``schema_migrations``; the schema version of a file is the
number of migrations applied to it. Never edit or reorder a released migration: append a new one.

Conventions (so rows stay comparable and queries stay simple):
- Every time of day is a ``TIMESTAMP`` in UTC (``*_utc`` / ``*_at`` columns); times within a video
  are float seconds from its start (``t``, ``t_ref``, ``t_new``).
- Ids come from sequences; natural keys (content identity, run + stage + start, path) are UNIQUE
  so that recording the same result twice (a re-run after a crash) is a no-op or an update.
- No FOREIGN KEY constraints: DuckDB checks them eagerly and refuses legitimate updates and deletes
  inside one transaction; the catalog keeps references consistent itself (e.g. `prune`).
- Parameters, gates and metrics are JSON text, so new ones need no migration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One step of the schema: applied once, in order, never edited after release."""

    name: str
    sql: str


_M001_CORE = """
CREATE SEQUENCE trails_id_seq;
CREATE SEQUENCE runs_id_seq;
CREATE SEQUENCE media_id_seq;

-- A trail: one line on a hill; its reference run carries the markers all other runs inherit.
CREATE TABLE trails (
    trail_id BIGINT PRIMARY KEY DEFAULT nextval('trails_id_seq'),
    name TEXT NOT NULL UNIQUE,
    reference_run_id BIGINT,
    notes TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);

-- A run: one recording (all chapters of a GoPro recording, or one video file given to the CLI).
CREATE TABLE runs (
    run_id BIGINT PRIMARY KEY DEFAULT nextval('runs_id_seq'),
    identity TEXT NOT NULL UNIQUE,          -- content identity: a second dump of a card is a no-op
    name TEXT NOT NULL,
    kind TEXT NOT NULL,                     -- 'recording' (card ingest) or 'video' (CLI)
    trail_id BIGINT,
    video_path TEXT,                        -- first chapter's video (what the pipeline reads)
    source_dir TEXT,
    started_utc TIMESTAMP,                  -- absolute start (GPS / MP4 creation time), if known
    duration_s DOUBLE,
    camera TEXT,
    gps_source TEXT,
    notes TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Files of a run on disk: chapter videos, LRV proxies, THM thumbnails. Referenced, never copied.
CREATE TABLE media_files (
    media_id BIGINT PRIMARY KEY DEFAULT nextval('media_id_seq'),
    run_id BIGINT NOT NULL,
    role TEXT NOT NULL,                     -- video / proxy / thumbnail
    chapter INTEGER NOT NULL,
    path TEXT NOT NULL,
    size BIGINT NOT NULL,
    identity TEXT NOT NULL,
    duration_s DOUBLE,
    width INTEGER,
    height INTEGER,
    fps DOUBLE,
    codec TEXT,
    UNIQUE (run_id, role, chapter)
);

CREATE TABLE gps_samples (
    run_id BIGINT NOT NULL,
    chapter INTEGER,
    t DOUBLE NOT NULL,                      -- seconds on the run's timeline
    utc TIMESTAMP,
    lat DOUBLE,
    lon DOUBLE,
    alt DOUBLE,
    speed DOUBLE,
    fix INTEGER,
    dop DOUBLE,
    usable BOOLEAN
);
CREATE INDEX gps_samples_run ON gps_samples (run_id);
"""

_M002_RESULTS = """
CREATE SEQUENCE indexes_id_seq;
CREATE SEQUENCE alignments_id_seq;
CREATE SEQUENCE markers_id_seq;
CREATE SEQUENCE exports_id_seq;

-- A feature index on disk (the .npz is referenced, not stored).
CREATE TABLE indexes (
    index_id BIGINT PRIMARY KEY DEFAULT nextval('indexes_id_seq'),
    run_id BIGINT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    keyframes INTEGER,
    params TEXT NOT NULL DEFAULT '{}',      -- JSON
    created_at TIMESTAMP NOT NULL
);

-- One alignment of a new run to a reference run.
CREATE TABLE alignments (
    alignment_id BIGINT PRIMARY KEY DEFAULT nextval('alignments_id_seq'),
    new_run_id BIGINT NOT NULL,
    ref_run_id BIGINT NOT NULL,
    params_key TEXT NOT NULL,               -- hash of the parameters: same pair + params = same row
    ok BOOLEAN NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    coverage DOUBLE,
    mean_confidence DOUBLE,
    residual_p50_s DOUBLE,
    residual_p90_s DOUBLE,
    new_start_s DOUBLE,
    new_end_s DOUBLE,
    ref_start_s DOUBLE,
    ref_end_s DOUBLE,
    warp_path TEXT,
    out_dir TEXT,
    params TEXT NOT NULL DEFAULT '{}',      -- JSON
    gates TEXT NOT NULL DEFAULT '{}',       -- JSON: thresholds used
    metrics TEXT NOT NULL DEFAULT '{}',     -- JSON: everything the warp measured
    created_at TIMESTAMP NOT NULL,
    UNIQUE (new_run_id, ref_run_id, params_key)
);

CREATE TABLE warp_points (
    alignment_id BIGINT NOT NULL,
    i INTEGER NOT NULL,
    t_new DOUBLE NOT NULL,
    t_ref DOUBLE NOT NULL,
    confidence DOUBLE NOT NULL,
    PRIMARY KEY (alignment_id, i)
);

-- Markers of a run: reference markers (source 'manual'), markers carried over from the trail's
-- reference ('transferred') and camera HiLight button presses ('hilight').
CREATE TABLE markers (
    marker_id BIGINT PRIMARY KEY DEFAULT nextval('markers_id_seq'),
    run_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    ordinal INTEGER NOT NULL,               -- position in the source list: names need not be unique
    source TEXT NOT NULL,                   -- manual / transferred / hilight
    t DOUBLE,                               -- seconds in this run; NULL = could not be placed
    t_ref DOUBLE,                           -- the reference marker's time (transferred markers)
    confidence DOUBLE NOT NULL DEFAULT 1.0,
    needs_review BOOLEAN NOT NULL DEFAULT false,
    review_state TEXT NOT NULL DEFAULT 'pending',   -- pending / reviewed / rejected
    moved_by_user BOOLEAN NOT NULL DEFAULT false,
    alignment_id BIGINT,
    colour TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT '',
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (run_id, source, ordinal)
);

CREATE TABLE exports (
    export_id BIGINT PRIMARY KEY DEFAULT nextval('exports_id_seq'),
    run_id BIGINT,
    alignment_id BIGINT,
    format TEXT NOT NULL,                   -- csv / edl / fcpxml / premiere / ...
    path TEXT NOT NULL UNIQUE,
    markers INTEGER,
    created_at TIMESTAMP NOT NULL
);
"""

_M003_OPERATIONS = """
CREATE SEQUENCE timings_id_seq;
CREATE SEQUENCE events_id_seq;
CREATE SEQUENCE jobs_id_seq;

CREATE TABLE stage_timings (
    timing_id BIGINT PRIMARY KEY DEFAULT nextval('timings_id_seq'),
    run_id BIGINT,                          -- NULL for work not tied to one run
    stage TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',         -- e.g. which video of a pair ('reference', 'new')
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP NOT NULL,
    seconds DOUBLE NOT NULL,
    cpu_seconds DOUBLE,
    frames BIGINT,
    device TEXT NOT NULL DEFAULT 'cpu',
    cpu_percent DOUBLE,
    rss_mb DOUBLE,
    gpu_util DOUBLE,
    vram_mb DOUBLE,
    extra TEXT NOT NULL DEFAULT '{}',       -- JSON
    UNIQUE (run_id, stage, label, started_at)
);

CREATE TABLE ingest_events (
    event_id BIGINT PRIMARY KEY DEFAULT nextval('events_id_seq'),
    at_utc TIMESTAMP NOT NULL,
    path TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);

-- Files that failed to ingest; retried when their size or mtime changes.
CREATE TABLE quarantine (
    path TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    reason TEXT NOT NULL,
    quarantined_at TIMESTAMP NOT NULL
);

-- The service's work queue: survives restarts (running jobs are put back on open).
CREATE TABLE jobs (
    job_id BIGINT PRIMARY KEY DEFAULT nextval('jobs_id_seq'),
    run_id BIGINT,
    kind TEXT NOT NULL,                     -- e.g. 'align', 'export'
    state TEXT NOT NULL DEFAULT 'queued',   -- queued / running / done / failed
    reason TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP
);
"""

# Views answer the common questions; riders build on them in `mtbsync sql`.
_M004_VIEWS = """
-- Placed, not rejected markers: what the splits are measured between.
CREATE VIEW markers_per_run AS
SELECT m.run_id, r.name AS run, t.name AS trail, m.marker_id, m.ordinal, m.name AS marker, m.source,
       m.t, m.t_ref, m.confidence, m.needs_review, m.review_state, m.moved_by_user
FROM markers m
JOIN runs r USING (run_id)
LEFT JOIN trails t ON t.trail_id = r.trail_id
ORDER BY m.run_id, m.t NULLS LAST, m.ordinal;

CREATE VIEW run_summary AS
WITH mk AS (
    SELECT run_id,
           count(*) FILTER (WHERE source <> 'hilight') AS markers,
           count(*) FILTER (WHERE needs_review AND review_state = 'pending') AS needs_review,
           min(t) FILTER (WHERE source <> 'hilight') AS first_marker_s,
           max(t) FILTER (WHERE source <> 'hilight') AS last_marker_s,
           count(*) FILTER (WHERE source = 'hilight') AS hilights
    FROM markers m
    WHERE t IS NOT NULL AND review_state <> 'rejected'
      AND (source <> 'transferred'
           OR NOT EXISTS (SELECT 1 FROM markers o WHERE o.run_id = m.run_id AND o.source = 'manual'))
    GROUP BY run_id
),
al AS (
    SELECT * FROM (
        SELECT a.*,
               row_number() OVER (PARTITION BY new_run_id
                                  ORDER BY created_at DESC, alignment_id DESC) AS k
        FROM alignments a
    ) WHERE k = 1
),
st AS (SELECT run_id, sum(seconds) AS stage_seconds FROM stage_timings GROUP BY run_id)
SELECT r.run_id, r.name AS run, t.name AS trail, t.trail_id,
       coalesce(t.reference_run_id = r.run_id, false) AS is_reference,
       coalesce(r.started_utc, r.created_at) AS ridden_at,
       r.duration_s,
       mk.last_marker_s - mk.first_marker_s AS marker_span_s,
       coalesce(mk.markers, 0) AS markers,
       coalesce(mk.needs_review, 0) AS needs_review,
       coalesce(mk.hilights, 0) AS hilights,
       al.ok AS aligned, al.reason AS align_reason, al.coverage, al.mean_confidence,
       st.stage_seconds, r.kind, r.video_path
FROM runs r
LEFT JOIN trails t ON t.trail_id = r.trail_id
LEFT JOIN mk USING (run_id)
LEFT JOIN al ON al.new_run_id = r.run_id
LEFT JOIN st USING (run_id);

-- Time between consecutive markers of each run, and the same split on the trail's reference run.
CREATE VIEW splits AS
WITH placed AS (
    SELECT m.run_id, m.name, m.t, m.ordinal
    FROM markers m
    WHERE m.t IS NOT NULL AND m.source <> 'hilight' AND m.review_state <> 'rejected'
      -- A run with its own (manual) markers is measured by them, others by their transferred ones.
      AND (m.source = 'manual'
           OR NOT EXISTS (SELECT 1 FROM markers o WHERE o.run_id = m.run_id AND o.source = 'manual'))
),
consecutive AS (
    SELECT run_id,
           lag(name) OVER w AS from_marker, name AS to_marker,
           lag(t) OVER w AS from_t, t AS to_t,
           t - lag(t) OVER w AS split_s,
           row_number() OVER w - 1 AS split_no
    FROM placed
    WINDOW w AS (PARTITION BY run_id ORDER BY t, ordinal)
)
SELECT c.run_id, r.name AS run, tr.name AS trail,
       coalesce(tr.reference_run_id = c.run_id, false) AS is_reference,
       c.split_no, c.from_marker, c.to_marker,
       c.from_t, c.to_t, c.split_s,
       ref.split_s AS reference_split_s,
       c.split_s - ref.split_s AS delta_s
FROM consecutive c
JOIN runs r USING (run_id)
LEFT JOIN trails tr ON tr.trail_id = r.trail_id
LEFT JOIN consecutive ref
       ON ref.run_id = tr.reference_run_id
      AND ref.from_marker = c.from_marker AND ref.to_marker = c.to_marker
WHERE c.from_marker IS NOT NULL
ORDER BY c.run_id, c.split_no;
"""

# One identity for a recording (`mtbsync.io.video.chapters_identity`): a one-chapter recording is
# its file's identity, as the CLI's probe names it. Card ingests before this named it ``rec:`` + a
# hash over that one identity, so `mtbsync index` of the same file made a second run. Such runs take
# their one video's identity; where the CLI already made that second run, both are left as they are
# (merging two runs' results is an editor's call, not a migration's).
_M005_ONE_CHAPTER_IDENTITY = """
UPDATE runs SET identity = one.identity
FROM (
    SELECT run_id, min(identity) AS identity
    FROM media_files
    WHERE role = 'video'
    GROUP BY run_id
    HAVING count(*) = 1
) AS one
WHERE runs.run_id = one.run_id
  AND runs.identity LIKE 'rec:%'
  AND one.identity NOT LIKE 'rec:%'
  AND NOT EXISTS (SELECT 1 FROM runs AS other WHERE other.identity = one.identity);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration("core: trails, runs, media files, gps samples", _M001_CORE),
    Migration("results: indexes, alignments, warp points, markers, exports", _M002_RESULTS),
    Migration("operations: stage timings, ingest events, quarantine, jobs", _M003_OPERATIONS),
    Migration("views: run_summary, markers_per_run, splits", _M004_VIEWS),
    Migration("runs: a one-chapter recording is named by its file's identity", _M005_ONE_CHAPTER_IDENTITY),
)

SCHEMA_VERSION = len(MIGRATIONS)

# The bookkeeping table itself is not a migration: it must exist before any migration can be recorded.
MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL
)
"""

# Tables a rider may export or prune; views are queryable but not listed here.
TABLES: tuple[str, ...] = (
    "trails",
    "runs",
    "media_files",
    "gps_samples",
    "indexes",
    "alignments",
    "warp_points",
    "markers",
    "exports",
    "stage_timings",
    "ingest_events",
    "quarantine",
    "jobs",
    "schema_migrations",
)

VIEWS: tuple[str, ...] = ("run_summary", "markers_per_run", "splits")

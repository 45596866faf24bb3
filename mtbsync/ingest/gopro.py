"""GoPro telemetry of one recording: GPS from the GPMF `GoPro MET` track, HiLight tags, camera, start time.

The MET stream is found through PyAV by its handler name; its payloads are then read by offset from
the MP4's own sample table (`mp4box`), so a 4 GB chapter costs a few hundred kB of reads. Chapters
of one recording join on one timeline: chapter k is shifted by the summed durations of chapters < k.

Timing: each payload's samples are spread evenly over the payload (one MET sample). Where the
payloads carry STMP (microseconds from the start of recording, MAX and HERO8+) and it agrees with
the packet times within 2 s, STMP gives the payload starts instead (the camera's own clock for the
sensor, up to ~100 ms more exact than the container). Absolute UTC comes from GPS9's own time, or
from GPSU fitted against packet time (the largest cluster of consistent offsets; GPSU without a fix,
before 2016, or more than 2 s off the cluster is dropped as stale).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np

from mtbsync.errors import MediaError, TelemetryError
from mtbsync.ingest import mp4box
from mtbsync.ingest.gpmf import GpmfPayload, GpsBlock, gps9_utc, parse_payload
from mtbsync.ingest.track import FIX_NONE, GpsTrack, make_track
from mtbsync.io.video import TRUNCATED_INDEX, mp4_index_cut_off

log = logging.getLogger("mtbsync")

MET_HANDLER = "GoPro MET"
_STMP_AGREEMENT_S = 2.0  # STMP is trusted only when it lands this close to the packet time
_MAX_PAYLOAD = 16 << 20  # real MET samples are 2-20 kB; a bigger one is a corrupt index, not telemetry
_GPSU_OUTLIER_S = 2.0  # GPSU more than this off the median offset is stale
_EARLIEST_PLAUSIBLE = datetime(2016, 1, 1, tzinfo=UTC)  # before GPMF cameras: a receiver default (2015-10-18)


@dataclass(frozen=True)
class GoProTelemetry:
    """Telemetry of one GoPro recording (all its chapters).

    Attributes:
        gps: The GPS track on the recording's timeline (GPS9 where present, else GPS5), None without GPS.
        hilights_s: HiLight (button press) times in seconds on the recording's timeline.
        camera: Camera name from the telemetry (DVNM, e.g. "HERO11 Black"), None when unknown.
        started_utc: Absolute UTC time of t = 0, None when no fix gave one.
        problems: One line per problem a rider should know about (no telemetry, no fix, corrupt data);
            skipped samples come first, as "GPS: 1 of 11 telemetry samples unreadable, skipped".
        samples: Telemetry samples (MET payloads) in all chapters, skipped ones included.
        skipped_samples: Samples whose GPS could not be read (a corrupt payload, an undecodable GPS
            stream of the track's kind, an implausible size); the rest of the track is kept.
    """

    gps: GpsTrack | None
    hilights_s: tuple[float, ...]
    camera: str | None
    started_utc: datetime | None
    problems: tuple[str, ...]
    samples: int = 0
    skipped_samples: int = 0


@dataclass(frozen=True)
class MetPayload:
    """One MET sample: its GPMF bytes and its time span in seconds on the chapter's timeline."""

    data: bytes
    start_s: float
    duration_s: float


@dataclass(frozen=True)
class _Chapter:
    payloads: tuple[MetPayload, ...]
    duration_s: float
    hilights_s: tuple[float, ...]
    problems: tuple[str, ...]
    oversized: int = 0  # samples not read at all (an implausible size in the index)


def read_gopro_telemetry(chapters: Sequence[Path]) -> GoProTelemetry:
    """Read the telemetry of one recording from its chapter files, joined on one timeline.

    Args:
        chapters: The chapter MP4s of ONE recording, in order (GX01xxxx, GX02xxxx, ...).

    Returns:
        The joined telemetry; problems (no telemetry track, corrupt payloads, no fix) are listed in
        ``problems`` rather than raised, as long as the files are readable videos. A sample that
        cannot be read is skipped and counted (``skipped_samples``); the rest of the track is kept.

    Raises:
        MediaError: A chapter is missing, empty, truncated or not a video.
    """
    all_payloads: list[MetPayload] = []
    all_parsed: list[GpmfPayload | TelemetryError] = []
    hilights: list[float] = []
    problems: list[str] = []
    offset = 0.0
    oversized = 0
    for path in chapters:
        chapter = _read_chapter(Path(path))
        oversized += chapter.oversized
        prefix = f"{Path(path).name}: " if len(chapters) > 1 else ""
        problems.extend(prefix + p for p in chapter.problems)
        parsed = _parse_all(chapter.payloads)  # each payload is parsed once
        all_payloads.extend(
            MetPayload(p.data, p.start_s + offset, p.duration_s)
            for p in _retime(chapter.payloads, parsed, offset)
        )
        all_parsed.extend(parsed)
        hilights.extend(t + offset for t in chapter.hilights_s)
        offset += chapter.duration_s
    telemetry = _telemetry(all_payloads, all_parsed, hilights, oversized=oversized)
    if not chapters:
        problems.append("no video files given")
    summary = [p for p in telemetry.problems if p.startswith(_SKIPPED_PREFIX)]
    if summary:
        log.warning("%s: %s", Path(chapters[0]).name, summary[0])
    return GoProTelemetry(
        telemetry.gps,
        telemetry.hilights_s,
        telemetry.camera,
        telemetry.started_utc,
        tuple(summary) + tuple(problems) + tuple(p for p in telemetry.problems if p not in summary),
        telemetry.samples,
        telemetry.skipped_samples,
    )


def read_gps_from_mp4(path: Path) -> GpsTrack | None:
    """The GPS track of one GoPro MP4, or None when it has no telemetry or never got a fix.

    Raises:
        MediaError: The file is missing, empty, truncated or not a video.
    """
    telemetry = read_gopro_telemetry([Path(path)])
    if telemetry.gps is None or not telemetry.gps.has_fix:
        return None
    return telemetry.gps


def telemetry_from_payloads(
    payloads: Sequence[MetPayload], *, hilights_s: Sequence[float] = ()
) -> GoProTelemetry:
    """Build the telemetry from timed GPMF payloads (also for raw MET tracks without an MP4).

    Args:
        payloads: MET samples in time order, times on the recording's timeline.
        hilights_s: HiLight times to pass through.

    Returns:
        The telemetry; corrupt payloads are skipped and listed in ``problems``.
    """
    return _telemetry(payloads, _parse_all(payloads), hilights_s)


def _parse_all(payloads: Sequence[MetPayload]) -> list[GpmfPayload | TelemetryError]:
    """Parse each payload on its own: one bad sample costs that sample, never the track."""
    out: list[GpmfPayload | TelemetryError] = []
    for payload in payloads:
        try:
            out.append(parse_payload(payload.data))
        except TelemetryError as exc:
            out.append(exc)
        except Exception as exc:  # a parser bug too must cost this one sample, not the whole track
            log.warning("GPMF parser failed on a sample (%s: %s)", type(exc).__name__, exc)
            out.append(TelemetryError(f"internal error {type(exc).__name__}"))
    return out


_SKIPPED_PREFIX = "GPS: "
_DETAIL_LINES = 3  # per-sample problem lines kept; a long damaged track gets a count instead


def _telemetry(
    payloads: Sequence[MetPayload],
    parsed_all: Sequence[GpmfPayload | TelemetryError],
    hilights_s: Sequence[float],
    *,
    oversized: int = 0,
) -> GoProTelemetry:
    problems: list[str] = []
    details: list[str] = []
    camera: str | None = None
    rows: dict[str, list[tuple[float, GpsBlock, float]]] = {"GPS9": [], "GPS5": []}
    corrupt = 0
    failed = {"GPS9": 0, "GPS5": 0}  # payloads whose stream of that kind did not decode
    for index, (payload, parsed) in enumerate(zip(payloads, parsed_all, strict=True)):
        if isinstance(parsed, TelemetryError):
            corrupt += 1
            where = f"telemetry sample {index} at {payload.start_s:.1f} s"
            details.append(f"{where} is corrupt ({parsed.message})")
            continue
        details.extend(f"telemetry sample {index}: {p}" for p in parsed.problems)
        for key in set(parsed.failed_gps) & failed.keys():
            failed[key] += 1
        if camera is None and parsed.devices:
            camera = parsed.devices[0]
        for block in parsed.gps:
            if len(block):
                rows[block.kind].append((payload.start_s, block, payload.duration_s))
    kind = "GPS9" if rows["GPS9"] else "GPS5"
    total = len(payloads) + oversized
    skipped = corrupt + oversized + failed[kind]
    if skipped:
        problems.append(f"{_SKIPPED_PREFIX}{skipped} of {total} telemetry samples unreadable, skipped")
    problems.extend(details[:_DETAIL_LINES])
    if len(details) > _DETAIL_LINES:
        problems.append(f"{len(details) - _DETAIL_LINES} more telemetry sample problems")
    gps, started, gps_problems = _build_track(kind, rows[kind])
    problems.extend(gps_problems)
    if payloads and gps is None and skipped < total:
        problems.append("the telemetry has no GPS stream")
    return GoProTelemetry(gps, tuple(sorted(hilights_s)), camera, started, tuple(problems), total, skipped)


def _build_track(
    kind: str, blocks: list[tuple[float, GpsBlock, float]]
) -> tuple[GpsTrack | None, datetime | None, list[str]]:
    if not blocks:
        return None, None, []
    problems: list[str] = []
    t_parts, value_parts, fix_parts, dop_parts = [], [], [], []
    gpsu_pairs: list[tuple[float, datetime]] = []
    for start, block, duration in blocks:
        n = len(block)
        t_parts.append(start + duration * np.arange(n) / n)
        value_parts.append(block.values)
        if kind == "GPS9":
            fix_parts.append(block.values[:, 8])
            dop_parts.append(block.values[:, 7])
        else:
            fix_parts.append(np.full(n, block.fix if block.fix is not None else FIX_NONE, dtype=np.float64))
            dop_parts.append(np.full(n, block.dop if block.dop is not None else np.nan))
            # GPSU belongs to the payload's first sample (as gopro-telemetry reads it); only with a fix.
            if block.utc is not None and block.fix is not None and block.fix >= 2:
                gpsu_pairs.append((start, block.utc))
    t = np.concatenate(t_parts)
    values = np.concatenate(value_parts)
    fix = np.clip(np.nan_to_num(np.concatenate(fix_parts)), 0, 3).astype(np.int8)  # garbage stays in range
    dop = np.concatenate(dop_parts)
    utc = np.full(t.shape[0], np.datetime64("NaT"), dtype="datetime64[us]")
    started: datetime | None = None
    if kind == "GPS9":
        # Days 5845..36524 = 2016..2099: anything else is a receiver default or garbage.
        ok = (fix >= 2) & (values[:, 5] >= 5845) & (values[:, 5] <= 36524)
        ok &= (values[:, 6] >= 0) & (values[:, 6] < 86402)
        if ok.any():
            stamps = [gps9_utc(d, s) for d, s in zip(values[ok, 5], values[ok, 6], strict=True)]
            utc[ok] = np.array([s.replace(tzinfo=None) for s in stamps], dtype="datetime64[us]")
            # The first fixed sample's own time, not a fit: GPS9 time is exact, packet times drift.
            started = stamps[0] - timedelta(seconds=float(t[ok][0]))
    else:
        started, gpsu_note = _fit_gpsu(gpsu_pairs)
        if gpsu_note:
            problems.append(gpsu_note)
        if started is not None:
            base = np.datetime64(started.replace(tzinfo=None), "us")
            utc = base + (t * 1e6).round().astype("timedelta64[us]")
    track = make_track(
        t,
        values[:, 0],
        values[:, 1],
        alt=values[:, 2],
        speed=values[:, 3],
        fix=fix,
        dop=dop,
        utc=utc,
        source=f"gpmf:{kind}",
    )
    if not track.has_fix:
        problems.append(f"GPS never got a fix ({len(track)} {kind} samples kept, not used for alignment)")
        track = make_track(
            track.t, track.lat, track.lon, alt=track.alt, speed=track.speed, fix=track.fix, dop=track.dop,
            utc=track.utc, source=track.source, notes=("no GPS fix",),
        )  # fmt: skip
    return track, started, problems


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _fit_gpsu(pairs: list[tuple[float, datetime]]) -> tuple[datetime | None, str | None]:
    """UTC of t = 0 from (payload time, GPSU) pairs: median offset, stale and implausible GPSU dropped."""
    plausible = [(t, u) for t, u in pairs if u >= _EARLIEST_PLAUSIBLE]
    dropped = len(pairs) - len(plausible)
    if not plausible:
        return None, ("GPSU dates are implausible (before 2016), no absolute time" if dropped else None)
    offsets = np.array([(u - _EPOCH).total_seconds() - t for t, u in plausible])
    # The centre is the offset with the most others within the tolerance (the largest consistent
    # cluster), not the median: a median can fall between two clusters and keep nothing.
    ordered = np.sort(offsets)
    support = np.searchsorted(ordered, offsets + _GPSU_OUTLIER_S, "right")
    support -= np.searchsorted(ordered, offsets - _GPSU_OUTLIER_S, "left")
    centre = float(offsets[int(np.argmax(support))])
    keep = np.abs(offsets - centre) <= _GPSU_OUTLIER_S
    dropped += int((~keep).sum())
    started = _EPOCH + timedelta(seconds=float(np.median(offsets[keep])))
    note = f"{dropped} GPSU time stamps dropped as stale or implausible" if dropped else None
    return started, note


def retime_by_stmp(payloads: Sequence[MetPayload], chapter_offset_s: float = 0.0) -> list[MetPayload]:
    """Re-time payloads by STMP where every payload has it and it agrees with the packet times.

    Args:
        payloads: One chapter's MET samples, times on the chapter's own timeline.
        chapter_offset_s: Where the chapter starts on the recording's timeline (STMP may count from there).

    Returns:
        The payloads with STMP-based start and duration, or unchanged.
    """
    return _retime(payloads, _parse_all(payloads), chapter_offset_s)


def _retime(
    payloads: Sequence[MetPayload], parsed_all: Sequence[GpmfPayload | TelemetryError], offset: float
) -> list[MetPayload]:
    stmps: list[float] = []
    for parsed in parsed_all:
        if isinstance(parsed, TelemetryError):
            return list(payloads)
        stamp = next((b.stmp for b in parsed.gps if b.stmp is not None), None)
        if stamp is None:
            return list(payloads)
        stmps.append(stamp / 1e6)
    if not stmps:
        return list(payloads)
    # STMP counts from the start of the recording; in a later chapter it may include earlier chapters.
    for base in (0.0, offset):
        starts = np.array(stmps) - base
        packet = np.array([p.start_s for p in payloads])
        if np.all(np.abs(starts - packet) <= _STMP_AGREEMENT_S) and np.all(np.diff(starts) > 0):
            ends = np.append(starts[1:], starts[-1] + payloads[-1].duration_s)
            return [
                MetPayload(p.data, float(s), float(e - s))
                for p, s, e in zip(payloads, starts, ends, strict=True)
            ]
    return list(payloads)


def _met_stream_info(path: Path) -> tuple[bool, float]:
    """Open with PyAV (index only, no demuxing): (has a GoPro MET stream, chapter duration in s)."""
    if not path.exists():
        raise MediaError("file not found", path=path)
    if path.stat().st_size == 0:
        raise MediaError("file is empty (0 bytes)", path=path)
    if mp4_index_cut_off(path):  # FFmpeg would say "no video stream" or "invalid data"
        raise MediaError(TRUNCATED_INDEX, path=path)
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaError(
            f"cannot read the container ({_short(exc)}); the file may be truncated", path=path
        ) from None
    with container:
        if not container.streams.video:
            raise MediaError("has no video stream", path=path)
        video = container.streams.video[0]
        duration = 0.0
        if video.duration is not None and video.time_base is not None:
            duration = float(video.duration * video.time_base)
        elif container.duration is not None:
            duration = container.duration / 1e6
        met = [s for s in container.streams if s.type == "data" and _handler(s) == MET_HANDLER]
        return bool(met), duration


def _demux_met(path: Path) -> list[MetPayload]:
    """Fallback: the MET payloads through PyAV's demuxer (reads the whole file)."""
    out: list[MetPayload] = []
    with av.open(str(path), mode="r") as container:
        met = next(s for s in container.streams if s.type == "data" and _handler(s) == MET_HANDLER)
        tb = met.time_base
        for packet in container.demux(met):
            if packet.size == 0 or packet.pts is None:
                continue
            out.append(MetPayload(bytes(packet), float(packet.pts * tb), float((packet.duration or 0) * tb)))
    return out


def _handler(stream) -> str:
    name = stream.metadata.get("handler_name", "")
    return "".join(ch for ch in name if ch.isprintable()).strip()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _read_chapter(path: Path) -> _Chapter:
    has_met, duration = _met_stream_info(path)
    problems: list[str] = []
    hilights: tuple[float, ...] = ()
    payloads: list[MetPayload] = []
    oversized = 0
    try:
        index = mp4box.read_index(path)
    except TelemetryError as exc:
        index = None
        problems.append(f"MP4 index unreadable for telemetry ({exc.message})")
    if index is not None:
        hilights = tuple(t / 1000.0 for t in index.hilights_ms)
    if not has_met:
        problems.append("no GoPro telemetry track (not a GoPro file, or GPS/telemetry was off)")
        return _Chapter((), duration, hilights, tuple(problems))
    track = None
    if index is not None:
        track = next((t for t in index.tracks if t.handler_name == MET_HANDLER), None)
    if track is not None and track.timescale > 0:
        with path.open("rb") as fh:
            for off, size, start, dur in zip(
                track.offsets, track.sizes, track.starts, track.durations, strict=True
            ):
                if size > _MAX_PAYLOAD:
                    oversized += 1
                    problems.append(
                        f"telemetry sample of {int(size)} bytes at {start / track.timescale:.1f} s skipped"
                    )
                    continue
                fh.seek(int(off))
                payloads.append(
                    MetPayload(fh.read(int(size)), start / track.timescale, dur / track.timescale)
                )
    else:
        try:
            payloads = _demux_met(path)
        except (av.FFmpegError, OSError) as exc:
            problems.append(f"telemetry track unreadable ({_short(exc)})")
    if duration <= 0 and payloads:
        duration = payloads[-1].start_s + payloads[-1].duration_s
    log.debug("%s: %d telemetry samples, %.1f s", path.name, len(payloads), duration)
    return _Chapter(tuple(payloads), duration, hilights, tuple(problems), oversized)

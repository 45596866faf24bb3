"""A minimal ISO-BMFF (MP4) box reader for what PyAV does not expose.

Two things: the sample table of a track (so the GoPro MET track of a multi-GB chapter is read by
offset, a few hundred kB, instead of demuxing the whole file) and the HiLight tags in
``moov/udta`` (``HMMT``: a count then press times in ms, HERO5-MAX; ``GPMF``: a KLV block whose
``HLMT`` device holds ``MANL`` times in ms, HERO8+).

Only the ``moov`` box is read. Every size is checked against its parent and the file, and the
``moov`` size is capped, so truncated or garbage files give a `TelemetryError`, never a hang.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtbsync.errors import TelemetryError

_MAX_MOOV = 512 << 20  # a 4-hour chapter's moov is a few MB; anything near this is garbage
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"edts", b"dinf"}


@dataclass(frozen=True)
class TrackIndex:
    """One track's sample table.

    Attributes:
        handler_type: hdlr handler type ("vide", "soun", "meta", ...).
        handler_name: hdlr name, control characters and padding stripped ("GoPro MET").
        timescale: mdhd ticks per second.
        offsets: int64 file offset of each sample.
        sizes: int64 byte size of each sample.
        starts: int64 decode time of each sample in ticks.
        durations: int64 duration of each sample in ticks.
    """

    handler_type: str
    handler_name: str
    timescale: int
    offsets: np.ndarray
    sizes: np.ndarray
    starts: np.ndarray
    durations: np.ndarray


@dataclass(frozen=True)
class Mp4Index:
    """What `read_index` found in the moov box.

    Attributes:
        tracks: Every track with a sample table.
        hilights_ms: HiLight times in ms (HMMT and udta GPMF MANL merged, sorted, unique).
        movie_duration_s: mvhd duration in seconds (0 when unknown).
        file_size: Size of the file in bytes.
    """

    tracks: tuple[TrackIndex, ...]
    hilights_ms: tuple[int, ...]
    movie_duration_s: float
    file_size: int


def _boxes(data: bytes, start: int, end: int):
    """Yield (type, body_start, box_end) of the boxes in data[start:end], sizes checked."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise TelemetryError(f"MP4 box {kind!r} at byte {pos} is truncated")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise TelemetryError(f"MP4 box {kind!r} at byte {pos} runs past its parent")
        yield kind, pos + header, pos + size
        pos += size


def _find_moov(fh, file_size: int) -> bytes:
    pos = 0
    while pos + 8 <= file_size:
        fh.seek(pos)
        header = fh.read(16)
        if len(header) < 8:
            break
        size, kind = struct.unpack_from(">I4s", header)
        header_len = 8
        if size == 1:
            if len(header) < 16:
                break
            size = struct.unpack_from(">Q", header, 8)[0]
            header_len = 16
        elif size == 0:
            size = file_size - pos
        if size < header_len:
            raise TelemetryError(f"MP4 box at byte {pos} has a bad size {size}")
        if kind == b"moov":
            if pos + size > file_size:
                raise TelemetryError("the MP4 index (moov) is cut off: the file is truncated or incomplete")
            if size > _MAX_MOOV:
                raise TelemetryError(f"the MP4 index (moov) claims {size} bytes")
            fh.seek(pos + header_len)
            return fh.read(size - header_len)
        pos += size
    raise TelemetryError("the MP4 has no index (moov box): the file is truncated or incomplete")


def read_index(path: str | Path) -> Mp4Index:
    """Read the sample tables and HiLight tags from an MP4's moov box.

    Args:
        path: An MP4 / MOV file.

    Returns:
        The tracks' sample tables and the HiLight times.

    Raises:
        TelemetryError: No moov, or a box or table that does not fit (truncated or garbage file).
    """
    path = Path(path)
    try:
        file_size = path.stat().st_size
        with path.open("rb") as fh:
            moov = _find_moov(fh, file_size)
    except OSError as exc:
        raise TelemetryError(f"cannot read ({exc.strerror or exc})", path=path) from None
    except TelemetryError as exc:
        raise TelemetryError(exc.message, path=path) from None  # name the file, as below
    try:
        return _parse_moov(moov, file_size)
    except TelemetryError as exc:
        raise TelemetryError(exc.message, path=path) from None
    except (struct.error, ValueError) as exc:
        raise TelemetryError(f"malformed MP4 index ({exc})", path=path) from None


def _parse_moov(moov: bytes, file_size: int) -> Mp4Index:
    tracks: list[TrackIndex] = []
    hilights: set[int] = set()
    movie_duration = 0.0
    for kind, body, end in _boxes(moov, 0, len(moov)):
        if kind == b"mvhd":
            version = moov[body]
            if version == 1:
                scale, duration = struct.unpack_from(">IQ", moov, body + 20)
            else:
                scale, duration = struct.unpack_from(">II", moov, body + 12)
            movie_duration = duration / scale if scale else 0.0
        elif kind == b"trak":
            track = _parse_trak(moov, body, end, file_size)
            if track is not None:
                tracks.append(track)
        elif kind == b"udta":
            hilights.update(_parse_udta(moov, body, end))
    return Mp4Index(tuple(tracks), tuple(sorted(hilights)), movie_duration, file_size)


def _parse_udta(data: bytes, start: int, end: int) -> list[int]:
    from mtbsync.ingest.gpmf import parse_klv  # the udta GPMF block is plain KLV

    times: list[int] = []
    for kind, body, box_end in _boxes(data, start, end):
        if kind == b"HMMT" and box_end - body >= 4:
            count = struct.unpack_from(">I", data, body)[0]
            count = min(count, (box_end - body - 4) // 4)
            times.extend(struct.unpack_from(f">{count}I", data, body + 4))
        elif kind == b"GPMF":
            # A damaged settings block must not cost the telemetry.
            with contextlib.suppress(TelemetryError):
                times.extend(_manl_times(parse_klv(data[body:box_end])))
    return [t for t in times if t > 0]


def _manl_times(klvs) -> list[int]:
    out: list[int] = []
    for klv in klvs:
        if klv.children:
            out.extend(_manl_times(klv.children))
        elif klv.key == "MANL" and klv.type in ("L", "l") and klv.size == 4:
            out.extend(struct.unpack(f">{klv.repeat}I", klv.data))
    return out


def _parse_trak(data: bytes, start: int, end: int, file_size: int) -> TrackIndex | None:
    tables: dict[bytes, tuple[int, int]] = {}
    handler_type, handler_name, timescale = "", "", 0

    def walk(s: int, e: int, depth: int) -> None:
        nonlocal handler_type, handler_name, timescale
        if depth > 6:
            raise TelemetryError("MP4 boxes nested too deep")
        for kind, body, box_end in _boxes(data, s, e):
            if kind in _CONTAINERS:
                walk(body, box_end, depth + 1)
            elif kind == b"hdlr" and box_end - body >= 24:
                handler_type = data[body + 8 : body + 12].decode("latin-1")
                raw = data[body + 24 : box_end]
                handler_name = "".join(ch for ch in raw.decode("latin-1") if ch.isprintable()).strip()
            elif kind == b"mdhd":
                version = data[body]
                timescale = struct.unpack_from(">I", data, body + (20 if version == 1 else 12))[0]
            elif kind in (b"stts", b"stsz", b"stsc", b"stco", b"co64"):
                tables[kind] = (body, box_end)

    walk(start, end, 0)
    if not ({b"stts", b"stsz", b"stsc"} <= tables.keys()) or not ({b"stco", b"co64"} & tables.keys()):
        return None
    sizes = _stsz(data, *tables[b"stsz"])
    n = sizes.shape[0]
    starts, durations = _stts(data, *tables[b"stts"], n)
    chunk_key = b"co64" if b"co64" in tables else b"stco"
    chunks = _stco(data, *tables[chunk_key], wide=chunk_key == b"co64")
    offsets = _sample_offsets(data, *tables[b"stsc"], chunks, sizes)
    if n and (offsets.min() < 0 or int((offsets + sizes).max()) > file_size):
        raise TelemetryError(f"the {handler_name or handler_type} track points past the end of the file")
    return TrackIndex(handler_type, handler_name, timescale, offsets, sizes, starts, durations)


def _full_header_count(data: bytes, body: int, end: int, entry: int, offset: int = 4) -> int:
    if end - body < offset + 4:
        raise TelemetryError("MP4 sample table is truncated")
    count = struct.unpack_from(">I", data, body + offset)[0]
    if count * entry > end - body - offset - 4:
        raise TelemetryError("MP4 sample table claims more entries than it holds")
    return count


def _stsz(data: bytes, body: int, end: int) -> np.ndarray:
    if end - body < 12:
        raise TelemetryError("MP4 stsz is truncated")
    uniform, count = struct.unpack_from(">II", data, body + 4)
    if uniform:
        if count > 1 << 28:
            raise TelemetryError("MP4 stsz claims too many samples")
        return np.full(count, uniform, dtype=np.int64)
    if count * 4 > end - body - 12:
        raise TelemetryError("MP4 stsz claims more entries than it holds")
    return np.frombuffer(data, dtype=">u4", count=count, offset=body + 12).astype(np.int64)


def _stts(data: bytes, body: int, end: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    count = _full_header_count(data, body, end, 8)
    table = (
        np.frombuffer(data, dtype=">u4", count=2 * count, offset=body + 8).reshape(count, 2).astype(np.int64)
    )
    repeats = np.minimum(table[:, 0], n)  # bound the expansion by the real sample count
    durations = np.repeat(table[:, 1], repeats)[:n]
    if durations.shape[0] < n:
        raise TelemetryError("MP4 stts covers fewer samples than stsz")
    starts = np.concatenate([[0], np.cumsum(durations)[:-1]]) if n else np.zeros(0, np.int64)
    return starts.astype(np.int64), durations


def _stco(data: bytes, body: int, end: int, *, wide: bool) -> np.ndarray:
    count = _full_header_count(data, body, end, 8 if wide else 4)
    return np.frombuffer(data, dtype=">u8" if wide else ">u4", count=count, offset=body + 8).astype(np.int64)


def _sample_offsets(data: bytes, body: int, end: int, chunks: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    count = _full_header_count(data, body, end, 12)
    table = (
        np.frombuffer(data, dtype=">u4", count=3 * count, offset=body + 8).reshape(count, 3).astype(np.int64)
    )
    n = sizes.shape[0]
    offsets = np.empty(n, dtype=np.int64)
    sample = 0
    n_chunks = chunks.shape[0]
    for i in range(count):
        first = int(table[i, 0]) - 1
        last = int(table[i + 1, 0]) - 1 if i + 1 < count else n_chunks
        per_chunk = int(table[i, 1])
        if first < 0 or last > n_chunks or per_chunk <= 0:
            raise TelemetryError("MP4 stsc refers to chunks that do not exist")
        for chunk in range(first, last):
            pos = int(chunks[chunk])
            for _ in range(per_chunk):
                if sample >= n:
                    return offsets
                offsets[sample] = pos
                pos += int(sizes[sample])
                sample += 1
    if sample < n:
        raise TelemetryError("MP4 sample table places fewer samples than it lists")
    return offsets

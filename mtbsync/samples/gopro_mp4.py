"""GoPro-shaped MP4s for tests and demos: H.264 video plus a `GoPro MET` track carrying real GPMF.

The video is encoded with `mtbsync.io.writer.VideoWriter` (the only encoder); the telemetry track is
then added at the box level, the way a camera lays it out: the GPMF payloads in their own `mdat`
after the video's, and a `trak` with handler `meta` / "GoPro MET", sample entry `gpmd`, one sample
(one payload) per chunk, in a 1/1000 s timescale. HiLight tags go into `moov/udta/HMMT` (a count,
then the press times in ms), as HERO5-MAX cameras write them. Box surgery rather than FFmpeg's muxer
keeps the layout camera-like and keeps PyAV out of this package (import-linter: av only in io/ingest).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from mtbsync.errors import ConfigError, MediaError
from mtbsync.ingest.gpmf import split_track
from mtbsync.io.files import atomic_write_bytes
from mtbsync.io.writer import VideoWriter, exact_fps

_MET_TIMESCALE = 1000  # GoPro writes the MET track in milliseconds (HERO5-7) or 1/90000; 1000 is exact here


def write_gopro_mp4(
    path: str | Path,
    *,
    duration_s: float,
    size: tuple[int, int] = (320, 180),
    fps: float | Fraction = 30,
    gpmf_payloads: Sequence[bytes],
    payload_duration_s: float = 1.0,
    hilights_ms: Sequence[int] = (),
    seed: int = 0,
) -> Path:
    """Write a small GoPro-like MP4: moving-noise H.264 video, a GoPro MET track and HiLight tags.

    Args:
        path: The MP4 to write (replaced atomically).
        duration_s: Video length in seconds.
        size: (width, height), even.
        fps: Frame rate.
        gpmf_payloads: One GPMF payload (bytes starting with a DEVC KLV) per MET sample, in order;
            e.g. the payloads of a `*-track.raw` file split at top-level DEVC boundaries. Empty: no
            MET track at all (a GoPro-shaped file without telemetry).
        payload_duration_s: Duration of each MET sample (cameras write ~1.001 s).
        hilights_ms: HiLight (button press) times in ms from the start, written to udta/HMMT.
        seed: Seed of the noise texture (different seeds give different-looking clips).

    Returns:
        ``path``.

    Raises:
        ConfigError: A non-positive duration or payload duration.
        MediaError: The encoded video could not be re-read for the telemetry track.
    """
    path = Path(path)
    if duration_s <= 0 or payload_duration_s <= 0:
        raise ConfigError("duration_s and payload_duration_s must be positive")
    rate = exact_fps(fps)
    width, height = size
    n_frames = max(1, round(duration_s * float(rate)))
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 255, (height, width + 4 * n_frames), dtype=np.uint8)
    with VideoWriter(path, size, rate, crf=30) as writer:
        for k in range(n_frames):
            grey = np.ascontiguousarray(texture[:, 4 * k : 4 * k + width])
            writer.write(np.repeat(grey[:, :, None], 3, axis=2))
    _add_met_track(path, [bytes(p) for p in gpmf_payloads], payload_duration_s, list(hilights_ms))
    return path


def split_payloads(track: bytes) -> list[bytes]:
    """Split a concatenated MET track (``*-track.raw`` / ``.gpmf`` / ``hero11.raw``) into payloads.

    Raises:
        TelemetryError: The bytes are not a sequence of GPMF KLVs.
    """
    return split_track(track)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _top_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        if size < 8:
            break
        boxes.append((kind, pos, size))
        pos += size
    return boxes


def _met_trak(track_id: int, offsets: list[int], sizes: list[int], delta: int, movie_duration: int) -> bytes:
    n = len(sizes)
    media_duration = n * delta
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    tkhd = _full_box(
        b"tkhd",
        0,
        0,
        struct.pack(">IIIII", 0, 0, track_id, 0, movie_duration)
        + b"\0" * 8
        + struct.pack(">hhhH", 0, 0, 0, 0)
        + identity
        + struct.pack(">II", 0, 0),
    )
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, _MET_TIMESCALE, media_duration, 0x55C4, 0))
    # GoPro's handler name is a counted string padded with spaces ("\x0bGoPro MET  ").
    hdlr = _full_box(b"hdlr", 0, 0, b"mhlr" + b"meta" + b"\0" * 12 + b"\x0bGoPro MET  ")
    gmin = _full_box(b"gmin", 0, 0, struct.pack(">HHHHHH", 0x40, 0x8000, 0x8000, 0x8000, 0, 0))
    gmhd = _box(b"gmhd", gmin)
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1) + _full_box(b"url ", 0, 1, b"")))
    gpmd = _box(b"gpmd", b"\0" * 6 + struct.pack(">H", 1) + b"\0" * 4)
    stsd = _full_box(b"stsd", 0, 0, struct.pack(">I", 1) + gpmd)
    stts = _full_box(b"stts", 0, 0, struct.pack(">III", 1, n, delta))
    stsc = _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, 1, 1))
    stsz = _full_box(b"stsz", 0, 0, struct.pack(">II", 0, n) + struct.pack(f">{n}I", *sizes))
    if offsets and max(offsets) >= 1 << 32:
        stco = _full_box(b"co64", 0, 0, struct.pack(">I", n) + struct.pack(f">{n}Q", *offsets))
    else:
        stco = _full_box(b"stco", 0, 0, struct.pack(">I", n) + struct.pack(f">{n}I", *offsets))
    stbl = _box(b"stbl", stsd + stts + stsc + stsz + stco)
    minf = _box(b"minf", gmhd + dinf + stbl)
    mdia = _box(b"mdia", mdhd + hdlr + minf)
    return _box(b"trak", tkhd + mdia)


def _add_met_track(
    path: Path, payloads: list[bytes], payload_duration_s: float, hilights_ms: list[int]
) -> None:
    data = path.read_bytes()
    boxes = _top_boxes(data)
    if not boxes or boxes[-1][0] != b"moov":
        raise MediaError("expected the encoder to write the moov box last", path=path)
    _, moov_pos, moov_size = boxes[-1]
    head = data[:moov_pos]
    moov_body = data[moov_pos + 8 : moov_pos + moov_size]
    children = _top_boxes(moov_body)

    # The payloads go into a new mdat placed where the moov was; existing chunk offsets stay valid.
    mdat_body = b"".join(payloads)
    mdat = _box(b"mdat", mdat_body)
    offsets, pos = [], len(head) + 8
    for payload in payloads:
        offsets.append(pos)
        pos += len(payload)

    new_children: list[bytes] = []
    mvhd_timescale, next_id = 1000, 2
    have_udta = False
    for kind, cpos, csize in children:
        body = moov_body[cpos : cpos + csize]
        if kind == b"mvhd":
            version = body[8]
            if version == 1:
                mvhd_timescale = struct.unpack(">I", body[28:32])[0]
                next_id = struct.unpack(">I", body[-4:])[0]
            else:
                mvhd_timescale = struct.unpack(">I", body[20:24])[0]
                next_id = struct.unpack(">I", body[-4:])[0]
            body = body[:-4] + struct.pack(">I", next_id + 1)
        elif kind == b"udta":
            have_udta = True
            body = _box(b"udta", body[8:] + _hmmt(hilights_ms))
        new_children.append(body)
    if payloads:
        delta = round(payload_duration_s * _MET_TIMESCALE)
        movie_duration = round(len(payloads) * payload_duration_s * mvhd_timescale)
        new_children.append(_met_trak(next_id, offsets, [len(p) for p in payloads], delta, movie_duration))
    if not have_udta:
        new_children.append(_box(b"udta", _hmmt(hilights_ms)))
    moov = _box(b"moov", b"".join(new_children))
    parts = (head, mdat, moov) if payloads else (head, moov)
    atomic_write_bytes(path, lambda fh: fh.writelines(parts), replace_media=True)


def _hmmt(hilights_ms: list[int]) -> bytes:
    times = sorted(int(t) for t in hilights_ms)
    return _box(b"HMMT", struct.pack(f">I{len(times)}I", len(times), *times))

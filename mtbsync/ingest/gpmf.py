"""A small GPMF (GoPro Metadata Format) parser: KLV walking, stream metadata and the GPS streams.

GPMF is a Key-Length-Value format: a FourCC key, a one-byte type char, a one-byte struct size and a
16-bit repeat count, then ``size * repeat`` bytes padded to 32 bits. Type 0 means the value is itself
a list of KLVs (DEVC devices hold STRM streams). Inside a STRM, "sticky" metadata (SCAL, TYPE, STNM,
UNIT, TSMP, STMP, ...) precedes the data KLV it describes (GPS5, GPS9, ACCL, ...).

Every size is checked against the bytes that remain before anything is read or allocated, so any
byte string yields parsed data or a `TelemetryError`, never a hang, a crash or a huge allocation
(`benchmarks/fuzz_gpmf.py` checks this; its crashing inputs stay in ``tests/data/gpmf_corpus``).
Only the streams mtbsync needs are decoded into numbers (the GPS family); other streams are kept
as raw KLVs with their sample counts. Decoded positions outside the globe (a damaged value) become
NaN, so they are stored but never aligned by.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np

from mtbsync.errors import TelemetryError

# Bytes per element of each GPMF type char (0 = nested KLVs, '?' = complex, described by TYPE).
_TYPE_SIZES = {
    "b": 1, "B": 1, "c": 1, "d": 8, "f": 4, "F": 4, "G": 16, "j": 8, "J": 8,
    "l": 4, "L": 4, "q": 4, "Q": 8, "s": 2, "S": 2, "U": 16,
}  # fmt: skip
_NUMPY = {
    "b": ">i1", "B": ">u1", "d": ">f8", "f": ">f4", "j": ">i8", "J": ">u8",
    "l": ">i4", "L": ">u4", "q": ">i4", "Q": ">i8", "s": ">i2", "S": ">u2",
}  # fmt: skip
_FIXED_POINT = {"q": 65536.0, "Q": 4294967296.0}  # Q15.16 and Q31.32
_MAX_DEPTH = 8  # real files nest 2-3 deep (DEVC > STRM > value); deeper is garbage
_MAX_ELEMENTS = 255  # a struct is at most 255 bytes (one size byte), so at most 255 elements
_COUNT_RE = re.compile(r"\[([0-9]{1,4})\]")  # ASCII digits only: str.isdigit() accepts "²"
_KEY_RE = re.compile(rb"[A-Za-z0-9 _]{4}")
_KEYS: dict[bytes, str] = {}  # validated keys (the regex is the parser's hottest line otherwise)
_GPS_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # GPS9 counts days from here (UTC, leap seconds applied)
_STICKY_KEYS = frozenset(
    {"SCAL", "TYPE", "STNM", "UNIT", "SIUN", "TSMP", "STMP", "TIMO", "EMPT", "ORIN", "ORIO", "MTRX",
     "GPSF", "GPSP", "GPSU", "GPSA", "TMPC", "DVID", "DVNM", "TICK", "TOCK", "RMRK", "QUAN"}
)  # fmt: skip


class Klv(NamedTuple):
    """One GPMF key-length-value item (a NamedTuple: payloads hold hundreds, built in the hot loop).

    Attributes:
        key: FourCC, e.g. "DEVC", "GPS5".
        type: Type char ("" for nested KLVs).
        size: Bytes per struct (one sample).
        repeat: Number of structs.
        data: The ``size * repeat`` value bytes (without padding).
        children: The nested KLVs when ``type`` is "".
        offset: Byte offset of the KLV header in the parsed buffer.
    """

    key: str
    type: str
    size: int
    repeat: int
    data: bytes
    children: tuple[Klv, ...] = ()
    offset: int = 0


@dataclass(frozen=True)
class GpsBlock:
    """The GPS samples of one payload (one stream KLV), scaled to real units.

    Attributes:
        kind: "GPS5" or "GPS9".
        values: float64 array (n, 5) lat, lon, alt, speed2d, speed3d for GPS5; (n, 9) adding days since
            2000, seconds of day, DOP and fix for GPS9.
        fix: GPSF of the payload (GPS5), None when absent.
        dop: GPSP / 100 of the payload (GPS5), None when absent.
        utc: GPSU of the payload (GPS5), None when absent or unreadable.
        tsmp: Total samples of this stream before and including this payload, None when absent.
        stmp: Microsecond time stamp of the payload's first sample, None when absent.
        device: DVNM of the device.
    """

    kind: str
    values: np.ndarray
    fix: int | None = None
    dop: float | None = None
    utc: datetime | None = None
    tsmp: int | None = None
    stmp: int | None = None
    device: str | None = None

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class GpmfPayload:
    """What one payload (one MET sample) holds.

    Attributes:
        devices: Device names (DVNM) in order.
        gps: GPS blocks (GPS5 and/or GPS9), in stream order.
        sample_counts: Samples per stream key (e.g. {"ACCL": 200, "GPS5": 18}).
        problems: One line per GPS stream that could not be decoded (the rest of the payload still
            is) or that held positions out of range.
        failed_gps: The keys ("GPS5", "GPS9") of the GPS streams that could not be decoded, so a
            reader can count the payloads whose GPS it lost.
    """

    devices: tuple[str, ...]
    gps: tuple[GpsBlock, ...]
    sample_counts: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    failed_gps: tuple[str, ...] = ()


def parse_klv(data: bytes, *, depth: int = 0, base: int = 0) -> list[Klv]:
    """Parse a buffer of GPMF KLVs (recursively into nested ones).

    Trailing zero bytes (padding some cameras leave at the end of a payload) end the list.

    Args:
        data: GPMF bytes.
        depth: Nesting depth of ``data`` (internal).
        base: Offset of ``data`` in the outer buffer (for messages).

    Returns:
        The top-level KLVs, children filled.

    Raises:
        TelemetryError: A bad key, a size past the end of the buffer, or nesting that is too deep.
    """
    if depth > _MAX_DEPTH:
        raise TelemetryError(f"GPMF nesting deeper than {_MAX_DEPTH} at byte {base}")
    data = bytes(data)
    items: list[Klv] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 8:
            if any(data[pos:end]):
                raise TelemetryError(f"GPMF truncated: {end - pos} stray bytes at byte {base + pos}")
            break
        key_bytes = data[pos : pos + 4]
        if key_bytes == b"\0\0\0\0":
            break  # padding
        key = _KEYS.get(key_bytes)
        if key is None:
            if not _KEY_RE.fullmatch(key_bytes):
                raise TelemetryError(f"GPMF key {key_bytes!r} at byte {base + pos} is not a FourCC")
            key = key_bytes.decode("ascii")
            if len(_KEYS) < 4096:  # real files use a few dozen keys; garbage must not grow the cache
                _KEYS[key_bytes] = key
        type_byte, size = data[pos + 4], data[pos + 5]
        repeat = (data[pos + 6] << 8) | data[pos + 7]
        length = size * repeat
        padded = (length + 3) & ~3
        if padded > end - pos - 8:
            remain = end - pos - 8
            raise TelemetryError(
                f"GPMF {key_bytes.decode()} at byte {base + pos} claims {length} bytes, only {remain} remain"
            )
        value = data[pos + 8 : pos + 8 + length]
        if type_byte == 0:
            children = tuple(parse_klv(value, depth=depth + 1, base=base + pos + 8))
            items.append(Klv(key, "", size, repeat, b"", children, base + pos))
        else:
            type_char = chr(type_byte)
            if type_char != "?" and type_char not in _TYPE_SIZES:
                raise TelemetryError(f"GPMF {key} at byte {base + pos} has unknown type {type_byte:#04x}")
            items.append(Klv(key, type_char, size, repeat, value, (), base + pos))
        pos += 8 + padded
    return items


def expand_type(type_string: str | None) -> str:
    """Expand a TYPE string with counts ("f[3]L" -> "fffL").

    Raises:
        TelemetryError: No TYPE, unknown type chars, a malformed count, or more elements than a
            struct can hold.
    """
    if not type_string:
        raise TelemetryError("GPMF complex type '?' without a TYPE")
    shown = type_string[:40]
    out: list[str] = []
    total = 0
    i = 0
    while i < len(type_string):
        char = type_string[i]
        if char == "\0":
            break
        if char not in _TYPE_SIZES:
            raise TelemetryError(f"GPMF TYPE {shown!r} has unknown type {char!r}")
        count = 1
        if type_string.startswith("[", i + 1):
            match = _COUNT_RE.match(type_string, i + 1)
            if match is None:
                raise TelemetryError(f"GPMF TYPE {shown!r} has a malformed count")
            count = int(match.group(1))
            i = match.end() - 1
        total += count
        # Checked as it grows: a long TYPE of big counts must not build a huge string first.
        if total > _MAX_ELEMENTS:
            raise TelemetryError(f"GPMF TYPE {shown!r} has more than {_MAX_ELEMENTS} elements")
        out.append(char * count)
        i += 1
    return "".join(out)


def decode_values(klv: Klv, type_string: str | None = None) -> np.ndarray:
    """Decode a numeric KLV into float64 (repeat, elements), fixed-point types converted.

    Args:
        klv: A KLV with a numeric type, or "?" with ``type_string`` (its TYPE).
        type_string: The stream's TYPE, needed for "?".

    Returns:
        float64 array of shape (repeat, elements per struct); NaN and inf are passed through.

    Raises:
        TelemetryError: The struct size does not fit the type, or a "?" KLV has no usable TYPE.
    """
    if klv.type == "?" and not type_string:
        raise TelemetryError(f"GPMF {klv.key} has complex type '?' but its stream has no TYPE")
    types = expand_type(type_string) if klv.type == "?" else None
    if types is None:
        if klv.type not in _NUMPY:
            raise TelemetryError(f"GPMF {klv.key} has non-numeric type {klv.type!r}")
        elem = _TYPE_SIZES[klv.type]
        if klv.size == 0 or klv.size % elem:
            raise TelemetryError(f"GPMF {klv.key} struct size {klv.size} does not fit type {klv.type!r}")
        types = klv.type * (klv.size // elem)
    if not types or any(t not in _NUMPY for t in types):
        raise TelemetryError(f"GPMF {klv.key} type {types[:40]!r} is not numeric")
    if sum(_TYPE_SIZES[t] for t in types) != klv.size:
        raise TelemetryError(f"GPMF {klv.key} struct size {klv.size} does not match TYPE {types[:40]!r}")
    # Damaged floats may be signalling NaNs, whose cast sets numpy's "invalid" flag: the value
    # stays NaN (screened later), and the warning would only be noise.
    with np.errstate(invalid="ignore", over="ignore"):
        if len(set(types)) == 1:
            raw = np.frombuffer(klv.data, dtype=_NUMPY[types[0]]).reshape(klv.repeat, len(types))
            out = raw.astype(np.float64)
            if types[0] in _FIXED_POINT:
                out /= _FIXED_POINT[types[0]]
            return out
        dtype = np.dtype([(f"f{i}", _NUMPY[t]) for i, t in enumerate(types)])
        raw = np.frombuffer(klv.data, dtype=dtype, count=klv.repeat)
        out = np.empty((klv.repeat, len(types)), dtype=np.float64)
        for i, t in enumerate(types):
            out[:, i] = raw[f"f{i}"]
            if t in _FIXED_POINT:
                out[:, i] /= _FIXED_POINT[t]
        return out


def decode_string(klv: Klv) -> str:
    """A 'c' (or 'U') KLV as text, NULs stripped."""
    return klv.data.split(b"\0", 1)[0].decode("latin-1").strip()


def _scalar(klv: Klv) -> float:
    values = decode_values(klv)
    if values.size == 0:
        raise TelemetryError(f"GPMF {klv.key} is empty")
    value = float(values.flat[0])
    if not np.isfinite(value):
        raise TelemetryError(f"GPMF {klv.key} is {value}")
    return value


def _count(klv: Klv) -> int:
    """An integral sticky value (GPSF, TSMP, STMP) that Python and int64 can both hold."""
    value = _scalar(klv)
    if abs(value) >= 2.0**63:
        raise TelemetryError(f"GPMF {klv.key} is implausibly large ({value:.3g})")
    return int(value)


def _scale(values: np.ndarray, scal: np.ndarray | None, key: str) -> np.ndarray:
    """Divide by SCAL: one divisor for all elements, or one per element."""
    if scal is None:
        return values
    divisors = scal.reshape(-1)
    if divisors.size not in (1, values.shape[1]):
        raise TelemetryError(f"GPMF {key} has {divisors.size} SCAL values for {values.shape[1]} elements")
    if np.any(divisors == 0) or not np.all(np.isfinite(divisors)):
        raise TelemetryError(f"GPMF {key} has a zero or non-finite SCAL")
    with np.errstate(over="ignore", invalid="ignore"):  # inf / NaN values are screened by the caller
        return values / divisors


def parse_gpsu(text: str) -> datetime | None:
    """GPSU "yymmddhhmmss.sss" (UTC) as a datetime, None when unreadable."""
    text = text.strip()
    match = re.fullmatch(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,6}))?", text)
    if not match:
        return None
    yy, mo, dd, hh, mi, ss, frac = match.groups()
    try:
        stamp = datetime(2000 + int(yy), int(mo), int(dd), int(hh), int(mi), int(ss), tzinfo=UTC)
    except ValueError:
        return None
    return stamp + timedelta(microseconds=round(float("0." + (frac or "0")) * 1e6))


def gps9_utc(days: float, seconds: float) -> datetime:
    """GPS9's own time (days since 2000-01-01 and seconds of the day) as a UTC datetime."""
    return _GPS_EPOCH + timedelta(days=float(days), seconds=float(seconds))


def _parse_gps5(klv: Klv, meta: dict[str, Klv]) -> np.ndarray:
    """GPS5: lat, lon, alt, 2D speed, 3D speed as signed 32-bit, each with its SCAL."""
    type_string = decode_string(meta["TYPE"]) if "TYPE" in meta else None
    values = decode_values(klv, type_string)
    if values.shape[1] != 5:
        raise TelemetryError(f"GPMF GPS5 has {values.shape[1]} elements, expected 5")
    scal = decode_values(meta["SCAL"]) if "SCAL" in meta else None
    return _scale(values, scal, "GPS5")


def _parse_gps9(klv: Klv, meta: dict[str, Klv]) -> np.ndarray:
    """GPS9: lat, lon, alt, 2D speed, 3D speed, days since 2000, seconds, DOP, fix (complex, via TYPE).

    The seconds and DOP carry their scale in SCAL (1000 and 100) like the other elements.
    """
    type_string = decode_string(meta["TYPE"]) if "TYPE" in meta else None
    values = decode_values(klv, type_string)
    if values.shape[1] != 9:
        raise TelemetryError(f"GPMF GPS9 has {values.shape[1]} elements, expected 9")
    scal = decode_values(meta["SCAL"]) if "SCAL" in meta else None
    return _scale(values, scal, "GPS9")


_GPS_PARSERS = {"GPS5": _parse_gps5, "GPS9": _parse_gps9}


def parse_payload(data: bytes) -> GpmfPayload:
    """Parse one GPMF payload (one MET sample) and decode its GPS streams.

    A GPS stream that cannot be decoded is reported in ``problems`` and ``failed_gps`` and the rest is
    kept; a payload whose KLV structure itself is broken raises. Positions outside the globe (or not
    finite) become NaN, with a line in ``problems``.

    Args:
        data: The payload bytes.

    Returns:
        The devices, GPS blocks and per-stream sample counts.

    Raises:
        TelemetryError: The KLV structure is malformed or truncated.
    """
    top = parse_klv(data)
    devices: list[str] = []
    gps: list[GpsBlock] = []
    counts: dict[str, int] = {}
    problems: list[str] = []
    failed: list[str] = []
    for devc in top:
        if devc.key != "DEVC" or devc.type:
            continue
        name = None
        for item in devc.children:
            if item.key == "DVNM" and item.type in ("c", "U"):
                name = decode_string(item)
                devices.append(name)
        for strm in devc.children:
            if strm.key != "STRM" or strm.type:
                continue
            meta: dict[str, Klv] = {}
            for item in strm.children:
                if item.key in _STICKY_KEYS:
                    meta[item.key] = item
                    continue
                if not item.type:
                    continue
                counts[item.key] = counts.get(item.key, 0) + item.repeat
                parser = _GPS_PARSERS.get(item.key)
                if parser is None:
                    continue
                try:
                    block = _gps_block(item, meta, parser, name)
                except TelemetryError as exc:
                    problems.append(f"{item.key} at byte {item.offset}: {exc.message}")
                    failed.append(item.key)
                    continue
                block, off_globe = _screen_positions(block)
                if off_globe:
                    problems.append(
                        f"{item.key} at byte {item.offset}: {off_globe} of {len(block)} positions "
                        "out of range (kept, not used)"
                    )
                gps.append(block)
    return GpmfPayload(tuple(devices), tuple(gps), counts, tuple(problems), tuple(failed))


def _gps_block(item: Klv, meta: dict[str, Klv], parser, device: str | None) -> GpsBlock:
    values = parser(item, meta)
    fix = dop = utc = tsmp = stmp = None
    if "GPSF" in meta:
        fix = _count(meta["GPSF"])
    if "GPSP" in meta:
        dop = _scalar(meta["GPSP"]) / 100.0
    if "GPSU" in meta and meta["GPSU"].type in ("U", "c"):
        utc = parse_gpsu(decode_string(meta["GPSU"]))
    if "TSMP" in meta:
        tsmp = _count(meta["TSMP"])
    if "STMP" in meta:
        stmp = _count(meta["STMP"])
    return GpsBlock(item.key, values, fix, dop, utc, tsmp, stmp, device)


def _screen_positions(block: GpsBlock) -> tuple[GpsBlock, int]:
    """Latitudes / longitudes outside the globe (or NaN / inf) set to NaN; how many rows that hit.

    A flipped byte in a GPS value can leave the struct readable but the position absurd (a latitude
    of 214 degrees); NaN keeps the row's place in the payload's timing and keeps it out of alignment.
    """
    lat, lon = block.values[:, 0], block.values[:, 1]
    with np.errstate(invalid="ignore"):
        bad = ~((np.abs(lat) <= 90.0) & (np.abs(lon) <= 180.0))  # NaN compares False: bad too
    n_bad = int(bad.sum())
    if not n_bad:
        return block, 0
    values = block.values.copy()
    values[bad, :2] = np.nan
    return replace(block, values=values), n_bad


def split_track(data: bytes) -> list[bytes]:
    """Split a concatenated MET track (payloads back to back, no MP4) at its top-level KLVs.

    Each payload starts with the camera's DEVC; a following DEVC of another device (a BLE sensor,
    the Karma) belongs to the same payload.

    Raises:
        TelemetryError: The bytes are not a sequence of KLVs.
    """
    payloads: list[bytes] = []
    first_id: int | None = None
    for klv in parse_klv(data):
        end = klv.offset + 8 + ((klv.size * klv.repeat + 3) & ~3)
        dvid = next((c for c in klv.children if c.key == "DVID"), None)
        ok = dvid is not None and dvid.type == "L" and len(dvid.data) >= 4
        ident = struct.unpack(">I", dvid.data[:4])[0] if ok else None
        if first_id is None:
            first_id = ident
        chunk = data[klv.offset : end]
        if payloads and ident != first_id:
            payloads[-1] += chunk
        else:
            payloads.append(chunk)
    return payloads

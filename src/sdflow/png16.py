"""A small PNG codec for 16-bit images (zlib + numpy), because Pillow reduces 16-bit colour
PNGs (RGB, RGBA, gray+alpha) to 8 bits.

Reads 16-bit PNGs of every colour type (gray, gray+alpha, RGB, RGBA; interlaced or not,
``tRNS`` colour keys honoured) and writes 16-bit PNGs with text and ICC chunks. Everything
else (8-bit, palette) goes through Pillow in :mod:`sdflow.imageio`.

Unfiltering runs row by row with numpy when a PNG uses only the None/Sub/Up filters and
along anti-diagonals (each step one vectorised numpy operation over all pixels whose
left, upper and upper-left neighbours are done) when it uses Average or Paeth, so a
large image takes well under a second either way.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour type -> channels
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
COLOR_TYPE = {v: k for k, v in CHANNELS.items()}
#: Adam7 passes: (row start, column start, row step, column step)
ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2),
         (1, 0, 2, 1))


class PNGError(ValueError):
    """A PNG file is malformed or of a kind this codec does not read."""


@dataclass
class PNGHeader:
    width: int
    height: int
    bit_depth: int
    color_type: int
    interlace: int


@dataclass
class PNG16:
    """A decoded 16-bit PNG: ``pixels`` is ``H x W x C`` uint16 (C = 1, 2, 3 or 4)."""

    pixels: np.ndarray
    text: dict[str, str] = field(default_factory=dict)
    icc_profile: bytes | None = None


def _chunks(data: bytes):
    if not data.startswith(SIGNATURE):
        raise PNGError("not a PNG file (bad signature)")
    pos = len(SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise PNGError("truncated PNG (chunk header cut off)")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise PNGError(f"truncated PNG ({ctype.decode('latin-1')} chunk cut off)")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : end])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise PNGError(f"corrupt PNG (CRC mismatch in {ctype.decode('latin-1')} chunk)")
        yield ctype, body
        if ctype == b"IEND":
            return
        pos = end
    raise PNGError("truncated PNG (no IEND chunk)")


def read_header(data: bytes) -> PNGHeader:
    """The IHDR of PNG bytes (only the first 33 bytes are needed)."""
    if not data.startswith(SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 29:
        raise PNGError("not a PNG file")
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return PNGHeader(w, h, depth, ctype, interlace)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unfilter(raw: np.ndarray, height: int, width: int, bpp: int) -> np.ndarray:
    """Undo the per-row filters of one (sub-)image: ``raw`` holds ``height`` rows of one
    filter byte plus ``width * bpp`` bytes. Returns ``height x width x bpp`` uint8."""
    rows = raw.reshape(height, 1 + width * bpp)
    ftype = rows[:, 0]
    if ftype.max(initial=0) > 4:
        raise PNGError(f"corrupt PNG (unknown filter type {int(ftype.max())})")
    f = rows[:, 1:].reshape(height, width, bpp).astype(np.int32)
    if not bool(np.isin(ftype, (3, 4)).any()):
        out = np.empty((height, width, bpp), np.int32)
        prev = np.zeros((width, bpp), np.int32)
        for i in range(height):
            t = ftype[i]
            row = f[i]
            if t == 1:
                row = np.cumsum(row, axis=0)
            elif t == 2:
                row = row + prev
            prev = row & 255
            out[i] = prev
        return out.astype(np.uint8)
    # Average/Paeth: sweep anti-diagonals i + j = k, with a zero row/column of padding.
    rec = np.zeros((height + 1, width + 1, bpp), np.int32)
    for k in range(height + width - 1):
        i = np.arange(max(0, k - width + 1), min(height - 1, k) + 1)
        j = k - i
        a, b, c = rec[i + 1, j], rec[i, j + 1], rec[i, j]
        t = ftype[i][:, None]
        pred = np.where(t == 1, a, np.where(t == 2, b, np.where(t == 3, (a + b) >> 1,
                        np.where(t == 4, _paeth(a, b, c), 0))))
        rec[i + 1, j + 1] = (f[i, j] + pred) & 255
    return rec[1:, 1:].astype(np.uint8)


def decode(data: bytes) -> PNG16:
    """Decode a 16-bit PNG. Raises :class:`PNGError` for malformed or non-16-bit files."""
    header = None
    idat: list[bytes] = []
    text: dict[str, str] = {}
    icc = None
    trns = None
    for ctype, body in _chunks(data):
        if ctype == b"IHDR":
            header = PNGHeader(*struct.unpack(">IIBBBBB", body)[:4],
                               struct.unpack(">IIBBBBB", body)[6])
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"tRNS":
            trns = body
        elif ctype == b"tEXt":
            key, _, value = body.partition(b"\0")
            text[key.decode("latin-1")] = value.decode("latin-1")
        elif ctype == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, _method = rest[0], rest[1]
            _lang, _, rest = rest[2:].partition(b"\0")
            _tkey, _, value = rest.partition(b"\0")
            value = zlib.decompress(value) if compressed else value
            text[key.decode("latin-1")] = value.decode("utf-8")
        elif ctype == b"iCCP":
            _name, _, rest = body.partition(b"\0")
            icc = zlib.decompress(rest[1:])
    if header is None:
        raise PNGError("corrupt PNG (no IHDR chunk)")
    if header.bit_depth != 16 or header.color_type not in CHANNELS:
        raise PNGError(f"not a 16-bit gray/RGB PNG (bit depth {header.bit_depth}, colour "
                       f"type {header.color_type})")
    if header.width < 1 or header.height < 1:
        raise PNGError("corrupt PNG (zero size)")
    channels = CHANNELS[header.color_type]
    bpp = 2 * channels
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    except zlib.error as exc:
        raise PNGError(f"corrupt or truncated PNG image data ({exc})") from exc
    h, w = header.height, header.width
    if header.interlace == 0:
        need = h * (1 + w * bpp)
        if raw.size < need:
            raise PNGError("truncated PNG image data")
        img = _unfilter(raw[:need], h, w, bpp)
    elif header.interlace == 1:
        img = np.zeros((h, w, bpp), np.uint8)
        pos = 0
        for y0, x0, dy, dx in ADAM7:
            ph, pw = -(-(h - y0) // dy) if h > y0 else 0, -(-(w - x0) // dx) if w > x0 else 0
            if ph == 0 or pw == 0:
                continue
            need = ph * (1 + pw * bpp)
            if raw.size < pos + need:
                raise PNGError("truncated PNG image data")
            img[y0::dy, x0::dx] = _unfilter(raw[pos : pos + need], ph, pw, bpp)
            pos += need
    else:
        raise PNGError(f"corrupt PNG (interlace method {header.interlace})")
    pixels = img.view(">u2").reshape(h, w, channels).astype(np.uint16)
    if trns is not None and channels in (1, 3) and len(trns) == 2 * channels:
        key = np.frombuffer(trns, ">u2").astype(np.uint16)
        alpha = np.where((pixels == key).all(axis=2), 0, 65535).astype(np.uint16)
        pixels = np.concatenate([pixels, alpha[:, :, None]], axis=2)
    return PNG16(pixels, text, icc)


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + ctype + body
            + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF))


def _filter_rows(img: np.ndarray) -> bytes:
    """Filter ``H x W x bpp`` bytes, choosing per row the filter with the smallest sum of
    absolute (signed) residuals (the usual heuristic), in blocks of rows to bound memory."""
    h, w, bpp = img.shape
    x = img.astype(np.int16)
    out = []
    for r0 in range(0, h, 128):
        r1 = min(h, r0 + 128)
        cur = x[r0:r1]
        up = x[r0 - 1 : r1 - 1] if r0 > 0 else np.concatenate(
            [np.zeros_like(x[:1]), x[: r1 - 1]])
        left = np.concatenate([np.zeros_like(cur[:, :1]), cur[:, :-1]], axis=1)
        upleft = np.concatenate([np.zeros_like(up[:, :1]), up[:, :-1]], axis=1)
        cands = np.stack([cur, cur - left, cur - up, cur - ((left + up) >> 1),
                          cur - _paeth(left, up, upleft)]) & 255
        signed = np.where(cands > 127, 256 - cands, cands)
        best = signed.reshape(5, r1 - r0, -1).sum(axis=2).argmin(axis=0)
        chosen = cands[best, np.arange(r1 - r0)].reshape(r1 - r0, -1).astype(np.uint8)
        out.append(np.concatenate([best.astype(np.uint8)[:, None], chosen], axis=1).tobytes())
    return b"".join(out)


def encode(pixels: np.ndarray, text: dict[str, str] | None = None,
           icc_profile: bytes | None = None, level: int = 6) -> bytes:
    """PNG bytes of a 16-bit image ``H x W`` or ``H x W x C`` (C = 1..4), with ``text`` as
    tEXt chunks (iTXt for non-Latin-1 values) and an optional ICC profile."""
    if pixels.dtype != np.uint16:
        raise TypeError(f"expected uint16 pixels, got {pixels.dtype}")
    arr = pixels[:, :, None] if pixels.ndim == 2 else pixels
    h, w, c = arr.shape
    if c not in COLOR_TYPE or h < 1 or w < 1:
        raise ValueError(f"cannot write a {arr.shape} image as PNG")
    img = np.ascontiguousarray(arr.astype(">u2")).view(np.uint8).reshape(h, w, 2 * c)
    parts = [SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, COLOR_TYPE[c],
                                                     0, 0, 0))]
    if icc_profile:
        parts.append(_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)))
    for key, value in (text or {}).items():
        k = key.encode("latin-1")[:79]
        try:
            parts.append(_chunk(b"tEXt", k + b"\0" + value.encode("latin-1")))
        except UnicodeEncodeError:
            parts.append(_chunk(b"iTXt", k + b"\0\0\0\0\0" + value.encode("utf-8")))
    parts.append(_chunk(b"IDAT", zlib.compress(_filter_rows(img), level)))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)

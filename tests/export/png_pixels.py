"""A tiny PNG reader (8-bit RGB or RGBA, not interlaced): enough to check screenshot pixels."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import attrs
import numpy as np


@attrs.frozen
class Image:
    """Decoded pixels: an array of shape (height, width, 3)."""

    width: int
    height: int
    pixels: np.ndarray[Any, np.dtype[np.uint8]] = attrs.field(eq=False)

    def pixel(self, x: float, y: float) -> tuple[int, int, int]:
        """The colour at ``(x, y)`` (rounded down to whole pixels)."""
        r, g, b = self.pixels[int(y), int(x)].tolist()
        return r, g, b

    def colors(self) -> set[tuple[int, int, int]]:
        """Every distinct colour in the image."""
        flat = np.unique(self.pixels.reshape(-1, 3), axis=0)
        return {(int(r), int(g), int(b)) for r, g, b in flat}


def _unfilter_sequential(kind: int, line: list[int], prev: list[int], channels: int) -> None:
    """Average (3) and Paeth (4) depend on the byte just decoded, so they go byte by byte."""
    for i in range(len(line)):
        a = line[i - channels] if i >= channels else 0
        b = prev[i]
        if kind == 3:
            line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            continue
        c = prev[i - channels] if i >= channels else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        line[i] = (line[i] + pred) & 0xFF


def read_png(data: bytes) -> Image:
    """Decode a PNG screenshot."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG: depth {depth}, colour type {color}")
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, -1)
    filters, rows = raw[:, 0], raw[:, 1:].copy()
    previous = np.zeros(width * channels, dtype=np.uint8)
    for y in range(height):
        kind, line = int(filters[y]), rows[y]
        # uint8 arithmetic wraps modulo 256, which is what PNG's filters want.
        if kind == 1:
            rows[y] = np.cumsum(line.reshape(width, channels), axis=0, dtype=np.uint8).ravel()
        elif kind == 2:
            rows[y] = line + previous
        elif kind in (3, 4):
            decoded = line.tolist()
            _unfilter_sequential(kind, decoded, previous.tolist(), channels)
            rows[y] = decoded
        previous = rows[y]
    pixels = rows.reshape(height, width, channels)[:, :, :3]
    return Image(width, height, pixels)


def hex_rgb(color: str) -> tuple[int, int, int]:
    """``#rrggbb`` as a tuple."""
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def near(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 12) -> bool:
    """Whether two colours differ by at most ``tolerance`` in every channel."""
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))

"""A line plot written as a PNG with the standard library only (zlib + struct): no matplotlib.

    plot_png(path, series=[("fresh", (200, 40, 40), [(1, 310.0), (10, 330.0)])], x_label="images", y_label="ms")

Axes, tick labels (digits from a 3x5 bitmap font), one polyline with square markers per series;
dashed series (name ending in "minimum") for the physical minimum. The legend is the caller's
Markdown, which names each colour; the picture carries numbers only.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Sequence

Color = tuple[int, int, int]
Series = tuple[str, Color, Sequence[tuple[float, float]]]

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 50
_FONT = {  # 3x5 glyphs, rows top to bottom, bits left to right
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7), "4": (5, 5, 7, 1, 1),
    "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1), "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7),
    ".": (0, 0, 0, 0, 2), "m": (0, 0, 7, 7, 5), "s": (0, 3, 6, 1, 6), " ": (0, 0, 0, 0, 0),
}


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i:i + 3] = bytes(color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, *, width: int = 2, dash: int = 0) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for step in range(steps + 1):
            if dash and (step // dash) % 2:
                continue
            x, y = x0 + (x1 - x0) * step // steps, y0 + (y1 - y0) * step // steps
            for dx in range(width):
                for dy in range(width):
                    self.dot(x + dx, y + dy, color)

    def text(self, x: int, y: int, text: str, color: Color = (0, 0, 0), scale: int = 2) -> None:
        for index, char in enumerate(text):
            for row, bits in enumerate(_FONT.get(char, _FONT[" "])):
                for col in range(3):
                    if bits & (4 >> col):
                        for sx in range(scale):
                            for sy in range(scale):
                                self.dot(x + (index * 4 + col) * scale + sx, y + row * scale + sy, color)

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.pixels[y * self.width * 3:(y + 1) * self.width * 3])
                       for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _nice_step(top: float) -> float:
    for step in (10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000):
        if top / step <= 8:
            return float(step)
    return top / 8


def plot_png(path: Path, series: Sequence[Series], *, x_ticks: Sequence[float]) -> None:
    """Write a plot of `series` (x, y in ms) to `path`; x is laid out on the given ticks' range."""
    canvas = Canvas(WIDTH, HEIGHT)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    x_min, x_max = min(x_ticks), max(x_ticks)
    y_top = max((y for _, _, points in series for _, y in points), default=1.0) * 1.1
    step = _nice_step(y_top)
    y_top = step * (int(y_top / step) + 1)

    def to_px(x: float, y: float) -> tuple[int, int]:
        return (LEFT + int((x - x_min) / (x_max - x_min or 1) * plot_w), TOP + plot_h - int(y / y_top * plot_h))

    grey, black = (220, 220, 220), (0, 0, 0)
    tick = 0.0
    while tick <= y_top + 1e-9:
        _, y = to_px(x_min, tick)
        canvas.line(LEFT, y, LEFT + plot_w, y, grey, width=1)
        label = f"{tick:g}"
        canvas.text(LEFT - 8 - len(label) * 8, y - 5, label)
        tick += step
    for x_value in x_ticks:
        x, _ = to_px(x_value, 0)
        canvas.line(x, TOP, x, TOP + plot_h, grey, width=1)
        label = f"{x_value:g}"
        canvas.text(x - len(label) * 4, TOP + plot_h + 10, label)
    canvas.line(LEFT, TOP, LEFT, TOP + plot_h, black, width=2)
    canvas.line(LEFT, TOP + plot_h, LEFT + plot_w, TOP + plot_h, black, width=2)
    canvas.text(LEFT - 60, TOP - 14, "ms")
    for name, color, points in series:
        pixels = [to_px(x, y) for x, y in points]
        dash = 6 if name.endswith("minimum") else 0
        for (x0, y0), (x1, y1) in zip(pixels, pixels[1:], strict=False):
            canvas.line(x0, y0, x1, y1, color, dash=dash)
        for x, y in pixels:
            for dx in range(-3, 4):
                for dy in range(-3, 4):
                    canvas.dot(x + dx, y + dy, color)
    path.write_bytes(canvas.png())

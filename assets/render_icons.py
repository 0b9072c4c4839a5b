"""Render traceagent's tray and app icons with Pillow.

This script is the icons' source: every shape is described below on a 16-unit design
grid and rendered at each size separately (8x supersampling, then a box filter), so the
small sizes are drawn, not shrunk. Run it after changing a shape or a colour::

    .venv/bin/python assets/render_icons.py

It writes ``assets/icons/tray/<state>-<variant>-<size>.png`` and
``assets/icons/traceagent-256.png``; ``src/traceagent/icons.py`` loads them.

Each state has its own silhouette and its own knocked-out (transparent) glyph, so the
states stay apart without colour (a macOS template image keeps only the alpha):

=========== ======================================= ========
state       picture                                 colour
=========== ======================================= ========
up_to_date  disc with a check mark cut out           green
syncing     disc with an upward arrow cut out        blue
paused      disc with two pause bars cut out         amber
error       triangle with an exclamation mark cut    red
offline     open ring crossed by a slash             grey
local_only  folder with a check mark cut out         purple
=========== ======================================= ========

Variants: ``light`` is for light panels (deep colours), ``dark`` for dark panels (light
tints). The glyphs are transparent, so they show the panel's own colour on both.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
OUT = HERE / "icons"

STATES = ("up_to_date", "syncing", "paused", "error", "offline", "local_only")
VARIANTS = ("light", "dark")
SIZES = (16, 22, 24, 32, 48, 64)
SUPERSAMPLE = 8

#: (light-panel colour, dark-panel colour) per state.
COLOURS: dict[str, tuple[str, str]] = {
    "up_to_date": ("#1e8e3e", "#81c995"),
    "syncing": ("#1a73e8", "#8ab4f8"),
    "paused": ("#c26401", "#fbbc04"),
    "error": ("#d93025", "#f28b82"),
    "offline": ("#5f6368", "#bdc1c6"),
    "local_only": ("#8430ce", "#d7aefb"),
}

Point = tuple[float, float]


class Canvas:
    """A supersampled drawing surface addressed in design units (16 = full icon)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.k = size * SUPERSAMPLE / 16.0
        self.shape = Image.new("L", (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
        self.draw = ImageDraw.Draw(self.shape)

    def snap(self, u: float) -> float:
        """Design units -> supersampled pixels, snapped to the final pixel grid (crisp edges)."""
        return math.floor(u * self.size / 16.0 + 0.5) * SUPERSAMPLE

    def p(self, u: float) -> float:
        """Design units -> supersampled pixels, unsnapped (for curves and diagonals)."""
        return u * self.k

    def width(self, u: float) -> int:
        """A stroke width: at least one final pixel, a whole number of final pixels."""
        return max(1, math.floor(u * self.size / 16.0 + 0.5)) * SUPERSAMPLE

    def disc(self, cx: float, cy: float, r: float, fill: int = 255) -> None:
        self.draw.ellipse((self.p(cx - r), self.p(cy - r), self.p(cx + r) - 1, self.p(cy + r) - 1), fill=fill)

    def ring(self, cx: float, cy: float, r: float, w: float, fill: int = 255) -> None:
        self.draw.ellipse(
            (self.p(cx - r), self.p(cy - r), self.p(cx + r) - 1, self.p(cy + r) - 1),
            outline=fill,
            width=self.width(w),
        )

    def rect(self, x0: float, y0: float, x1: float, y1: float, *, fill: int = 255, radius: float = 0) -> None:
        box = (self.snap(x0), self.snap(y0), self.snap(x1) - 1, self.snap(y1) - 1)
        if radius:
            self.draw.rounded_rectangle(box, radius=self.p(radius), fill=fill)
        else:
            self.draw.rectangle(box, fill=fill)

    def polygon(self, pts: Sequence[Point], fill: int = 255) -> None:
        self.draw.polygon([(self.p(x), self.p(y)) for x, y in pts], fill=fill)

    def stroke(self, pts: Sequence[Point], w: float, fill: int = 255, snap_width: bool = True) -> None:
        """A polyline with round joins and caps (width snapped to whole pixels unless told)."""
        px = [(self.p(x), self.p(y)) for x, y in pts]
        width = self.width(w) if snap_width else round(self.p(w))
        self.draw.line(px, fill=fill, width=width, joint="curve")
        for x, y in (px[0], px[-1]):
            r = width / 2
            self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def alpha(self) -> Image.Image:
        """The final-size coverage mask (box filter = exact area coverage)."""
        return self.shape.resize((self.size, self.size), Image.Resampling.BOX)


# --- the shapes (design grid 0..16; 255 = ink, 0 = cut out) -------------------------------


def _check(c: Canvas, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> None:
    pts = [(4.4, 8.4), (7.0, 11.0), (11.8, 5.9)]
    cx, cy = 8.0, 8.4
    c.stroke([(cx + (x - cx) * scale + dx, cy + (y - cy) * scale + dy) for x, y in pts], 2.0 * scale, fill=0)


def shape_up_to_date(c: Canvas) -> None:
    c.disc(8, 8, 7.6)
    _check(c)


def shape_syncing(c: Canvas) -> None:
    c.disc(8, 8, 7.6)
    # upward arrow: head then shaft; shaft snapped to whole pixels for a crisp stem
    c.polygon([(3.6, 8.4), (8.0, 3.4), (12.4, 8.4)], fill=0)
    c.rect(7, 7, 9, 12.6, fill=0)


def shape_paused(c: Canvas) -> None:
    c.disc(8, 8, 7.6)
    c.rect(5, 4.5, 7, 11.5, fill=0)
    c.rect(9, 4.5, 11, 11.5, fill=0)


def shape_error(c: Canvas) -> None:
    # a warning triangle with rounded corners: the corner centres, dilated by r
    r = 1.0
    corners = [(8.0, 2.5), (1.9, 13.6), (14.1, 13.6)]
    c.polygon(corners)
    c.stroke([*corners, corners[0]], 2 * r, snap_width=False)
    for x, y in corners:
        c.disc(x, y, r)
    c.rect(7, 5.5, 9, 10, fill=0)
    c.rect(7, 11, 9, 13, fill=0)


def shape_offline(c: Canvas) -> None:
    # an open ring crossed by a slash ("no connection"); the slash ends inside the ring
    c.ring(8, 8, 7.4, 1.8)
    d = 6.4 * math.cos(math.pi / 4)
    c.stroke([(8 - d, 8 - d), (8 + d, 8 + d)], 1.8)


def shape_local_only(c: Canvas) -> None:
    # folder: a tab on the top left, a body below it
    c.rect(1, 2, 7.5, 5, radius=1.0)
    c.polygon([(6.0, 2.0), (8.5, 4.0), (6.0, 4.0)])
    c.rect(1, 4, 15, 14.5, radius=1.2)
    _check(c, scale=0.8, dy=1.0)


SHAPES: dict[str, Callable[[Canvas], None]] = {
    "up_to_date": shape_up_to_date,
    "syncing": shape_syncing,
    "paused": shape_paused,
    "error": shape_error,
    "offline": shape_offline,
    "local_only": shape_local_only,
}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def render_state(state: str, variant: str, size: int) -> Image.Image:
    """One tray icon: the state's colour, with the shape's coverage as alpha."""
    canvas = Canvas(size)
    SHAPES[state](canvas)
    colour = _rgb(COLOURS[state][VARIANTS.index(variant)])
    img = Image.new("RGBA", (size, size), (*colour, 0))
    img.putalpha(canvas.alpha())
    return img


def render_app_icon(size: int = 256) -> Image.Image:
    """The application icon: a transcript (three lines) rising to the Hub (yellow arrow)."""
    k = SUPERSAMPLE
    s = size * k
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    u = s / 16.0
    d.rounded_rectangle((0.5 * u, 0.5 * u, 15.5 * u, 15.5 * u), radius=3.2 * u, fill=(17, 24, 39, 255))
    for i, length in enumerate((6.2, 4.6, 5.4)):
        y = (5.2 + i * 2.6) * u
        d.rounded_rectangle((2.6 * u, y, (2.6 + length) * u, y + 1.2 * u), radius=0.6 * u, fill="#e5e7eb")
    yellow = "#ffd21e"
    d.polygon([(9.2 * u, 7.6 * u), (11.8 * u, 3.4 * u), (14.4 * u, 7.6 * u)], fill=yellow)
    d.rounded_rectangle((11.05 * u, 6.4 * u, 12.55 * u, 12.6 * u), radius=0.3 * u, fill=yellow)
    return img.resize((size, size), Image.Resampling.BOX)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: assets/icons)")
    args = parser.parse_args(argv)
    tray = args.out / "tray"
    tray.mkdir(parents=True, exist_ok=True)
    for state in STATES:
        for variant in VARIANTS:
            for size in SIZES:
                render_state(state, variant, size).save(tray / f"{state}-{variant}-{size}.png", optimize=True)
    render_app_icon(256).save(args.out / "traceagent-256.png", optimize=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

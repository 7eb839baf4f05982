"""Draws bot/assets/sample.png: a sunset over a lake and hills, for the demo and the simulator.

Run `python bot/assets/make_sample.py` to regenerate it. Pillow only, seeded, so the picture
is the same each time. It is drawn in layers (sky, sun, clouds, mountains, lake, hills, trees,
birds) because a scene with depth is what makes a slow zoom-and-pan pleasant to watch.
"""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 768, 512
HORIZON = 300  # the lake's far shore
SUN = (548, 236, 38)  # x, y, radius
Color = tuple[int, int, int]


def _mix(a: Color, b: Color, t: float) -> Color:
    t = min(1.0, max(0.0, t))
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _sky_color(y: float) -> Color:
    """Night blue at the top, through rose, to gold at the horizon."""
    stops = [
        (0.0, (24, 28, 72)),
        (0.45, (112, 64, 124)),
        (0.75, (236, 120, 104)),
        (1.0, (255, 196, 112)),
    ]
    t = y / HORIZON
    for (t0, c0), (t1, c1) in itertools.pairwise(stops):
        if t <= t1:
            return _mix(c0, c1, (t - t0) / (t1 - t0))
    return stops[-1][1]


def _sky(img: Image.Image, rng: random.Random) -> None:
    draw = ImageDraw.Draw(img)
    for y in range(HORIZON):
        draw.line([(0, y), (WIDTH, y)], fill=_sky_color(y))
    for _ in range(70):  # a few early stars, only where the sky is dark
        star = (rng.uniform(0, WIDTH), rng.uniform(0, HORIZON * 0.35))
        level = rng.randint(150, 255)
        draw.point(star, fill=(level, level, min(255, level + 20)))


def _glow(img: Image.Image) -> None:
    x, y, r = SUN
    glow = Image.new("L", img.size, 0)
    gd = ImageDraw.Draw(glow)
    for radius, alpha in ((r * 5, 40), (r * 3, 70), (r * 1.8, 120)):
        gd.ellipse([x - radius, y - radius, x + radius, y + radius], fill=alpha)
    glow = glow.filter(ImageFilter.GaussianBlur(r * 1.2))
    img.paste(Image.new("RGB", img.size, (255, 210, 140)), mask=glow)
    ImageDraw.Draw(img).ellipse([x - r, y - r, x + r, y + r], fill=(255, 236, 178))


def _clouds(img: Image.Image, rng: random.Random) -> None:
    layer = Image.new("L", img.size, 0)
    draw = ImageDraw.Draw(layer)
    for cx, cy, span in ((150, 80, 190), (420, 130, 150), (660, 60, 170), (300, 200, 120)):
        for _ in range(9):
            w, h = rng.uniform(span * 0.3, span * 0.6), rng.uniform(14, 30)
            x, y = cx + rng.uniform(-span / 2, span / 2), cy + rng.uniform(-10, 10)
            draw.ellipse([x - w / 2, y - h / 2, x + w / 2, y + h / 2], fill=rng.randint(120, 190))
    layer = layer.filter(ImageFilter.GaussianBlur(7))
    img.paste(Image.new("RGB", img.size, (255, 178, 170)), mask=layer)


def _ridge(rng: random.Random, base: float, height: float, waves: int, jag: float) -> list[float]:
    phases = [rng.uniform(0, math.tau) for _ in range(waves)]
    ridge = []
    for x in range(WIDTH + 1):
        y = base
        for k, phase in enumerate(phases, start=1):
            y -= height / k * math.sin(x / WIDTH * math.pi * (k + 0.5) + phase)
        ridge.append(y + rng.uniform(-jag, jag))
    return ridge


def _fill_below(img: Image.Image, ridge: list[float], bottom: int, top: Color, low: Color) -> None:
    draw = ImageDraw.Draw(img)
    for x, y in enumerate(ridge):
        span = max(1.0, bottom - y)
        for row in range(int(y), bottom, 3):  # a vertical gradient, three rows at a time
            draw.line([(x, row), (x, min(bottom, row + 3))], fill=_mix(top, low, (row - y) / span))


def _lake(img: Image.Image, rng: random.Random) -> None:
    draw = ImageDraw.Draw(img)
    for y in range(HORIZON, HEIGHT):
        mirror = HORIZON - (y - HORIZON) * 1.4  # the sky, reflected and a little darker
        draw.line([(0, y), (WIDTH, y)], fill=_mix(_sky_color(max(0.0, mirror)), (30, 30, 70), 0.35))
    x, _, r = SUN
    for y in range(HORIZON + 2, HEIGHT, 4):  # the sun's broken path across the water
        depth = (y - HORIZON) / (HEIGHT - HORIZON)
        half = r * (0.6 + depth * 1.6) * rng.uniform(0.3, 1.0)
        shift = rng.uniform(-6, 6)
        draw.line([(x - half + shift, y), (x + half + shift, y)], fill=(255, 214, 150), width=2)


def _hill(rng: random.Random, peak_x: float, peak_y: float, spread: float) -> list[float]:
    """A rounded hill rising out of the bottom edge, with a little texture on its crest."""
    rise = HEIGHT + 40 - peak_y
    wobble = [rng.uniform(0, math.tau) for _ in range(2)]
    return [
        min(
            float(HEIGHT),
            HEIGHT
            + 40
            - rise * math.exp(-(((x - peak_x) / spread) ** 2))
            + 3 * math.sin(x / 23 + wobble[0])
            + 2 * math.sin(x / 9 + wobble[1]),
        )
        for x in range(WIDTH + 1)
    ]


def _trees(img: Image.Image, rng: random.Random, ridge: list[float], xs: range) -> None:
    draw = ImageDraw.Draw(img)
    for x0 in xs:
        x = x0 + rng.randint(-4, 4)
        if ridge[min(WIDTH, max(0, x))] >= HEIGHT - 20:
            continue
        height = rng.uniform(30, 58)
        base = ridge[min(WIDTH, max(0, x))] + 6
        for tier in range(4):  # a pine: stacked triangles narrowing to the top
            top = base - height * (0.35 + tier * 0.22)
            bottom = base - height * tier * 0.2
            half = height * (0.28 - tier * 0.05)
            draw.polygon([(x - half, bottom), (x + half, bottom), (x, top)], fill=(14, 26, 30))
        draw.rectangle([x - 2, base - 6, x + 2, base], fill=(20, 16, 18))


def _birds(img: Image.Image, rng: random.Random) -> None:
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y, s = rng.uniform(250, 470), rng.uniform(110, 190), rng.uniform(5, 9)
        draw.line([(x - s, y - s * 0.5), (x, y), (x + s, y - s * 0.6)], fill=(40, 28, 52), width=2)


def draw() -> Image.Image:
    """The whole scene, 768x512 RGB."""
    rng = random.Random(20240601)
    img = Image.new("RGB", (WIDTH, HEIGHT))
    _sky(img, rng)
    _glow(img)
    _clouds(img, rng)
    mountains = _ridge(rng, HORIZON - 22, 16, 5, 1.5)
    _lake(img, rng)
    _fill_below(img, mountains, HORIZON, (122, 86, 140), (156, 104, 136))
    far = _hill(rng, 650, 345, 200)
    _fill_below(img, far, HEIGHT, (58, 72, 96), (34, 46, 64))
    _trees(img, rng, far, range(560, 768, 17))
    near = _hill(rng, 110, 385, 280)
    _fill_below(img, near, HEIGHT, (36, 56, 52), (14, 22, 24))
    _trees(img, rng, near, range(0, 250, 14))
    _birds(img, rng)
    return img


def main() -> None:
    path = Path(__file__).with_name("sample.png")
    draw().save(path, "PNG", optimize=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""The small chart /usage attaches: a person's spend per day over the last 30 days."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from providers.money import format_usd

WIDTH, HEIGHT = 600, 220
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 56, 12, 28, 30
BAR = (88, 101, 242)
AXIS = (110, 110, 120)
TEXT = (40, 40, 48)


def spend_chart(days: list[tuple[str, int]], *, title: str = "Spend, last 30 days") -> bytes:
    """A PNG bar chart of (YYYY-MM-DD, micro-dollars) pairs, oldest first."""
    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    draw.text((MARGIN_L, 6), title, fill=TEXT)
    top = max((v for _, v in days), default=0)
    plot_w = WIDTH - MARGIN_L - MARGIN_R
    plot_h = HEIGHT - MARGIN_T - MARGIN_B
    base_y = MARGIN_T + plot_h
    draw.line((MARGIN_L, base_y, WIDTH - MARGIN_R, base_y), fill=AXIS)
    draw.text((4, MARGIN_T - 6), format_usd(top), fill=TEXT)
    draw.text((4, base_y - 6), "$0", fill=TEXT)
    n = max(1, len(days))
    slot = plot_w / n
    for i, (day, value) in enumerate(days):
        x0 = MARGIN_L + i * slot + 1
        x1 = MARGIN_L + (i + 1) * slot - 1
        if top and value:
            h = max(1.0, plot_h * value / top)
            draw.rectangle((x0, base_y - h, x1, base_y - 1), fill=BAR)
        if i % 7 == 0 or i == n - 1:
            draw.text((x0, base_y + 6), day[5:], fill=AXIS)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()

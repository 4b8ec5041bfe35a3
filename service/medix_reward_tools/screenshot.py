"""A terminal screenshot as a PNG: the ANSI text `tmux capture-pane -e -p` prints, drawn cell by cell in a
monospace font with its colours (how docs/top.png is made).

    tmux capture-pane -e -p -t top > top.ansi
    python -m medix_reward_tools.screenshot top.ansi docs/top.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from rich.color import Color
from rich.console import Console
from rich.text import Text

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
BACKGROUND, FOREGROUND = (24, 24, 27), (220, 220, 220)


def _rgb(color: Color | None, default: tuple[int, int, int]) -> tuple[int, int, int]:
    if color is None or color.is_default:
        return default
    triplet = color.get_truecolor()
    return (triplet.red, triplet.green, triplet.blue)


def render_png(ansi: str, path: Path, size: int = 15) -> None:
    lines = [Text.from_ansi(line) for line in ansi.rstrip("\n").split("\n")]
    while lines and not lines[-1].plain.strip():
        lines.pop()
    font, bold = ImageFont.truetype(FONT, size), ImageFont.truetype(BOLD, size)
    cell_w = round(font.getlength("M"))
    cell_h = sum(font.getmetrics())  # ascent + descent: box-drawing lines join from row to row
    width = max(len(line.plain) for line in lines) + 2
    image = Image.new("RGB", (width * cell_w, (len(lines) + 2) * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(image)
    console = Console()
    for row, line in enumerate(lines, start=1):
        for column, char in enumerate(line.plain, start=1):
            style = line.get_style_at_offset(console, column - 1)
            fg, bg = _rgb(style.color, FOREGROUND), _rgb(style.bgcolor, BACKGROUND)
            if style.reverse:
                fg, bg = bg, fg
            x, y = column * cell_w, row * cell_h
            if bg != BACKGROUND:
                draw.rectangle([x, y, x + cell_w, y + cell_h], fill=bg)
            if style.dim:
                fg = tuple(c * 6 // 10 for c in fg)  # type: ignore[assignment]
            draw.text((x, y), char, font=bold if style.bold else font, fill=fg)
    image.save(path)


if __name__ == "__main__":
    render_png(Path(sys.argv[1]).read_text(encoding="utf-8"), Path(sys.argv[2]))

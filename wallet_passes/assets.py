"""Pass images for the demo program.

The PNGs under wallet_passes/assets/ are committed; `python -m wallet_passes.assets`
redraws them (only needed when the design changes). A program with its own
brand puts its PNGs in a directory and points KOPILKA_PASS_ASSETS_DIR at it.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ASSETS_DIR = Path(__file__).parent / "assets"

# Apple's point sizes for a storeCard; @2x is the retina variant of each.
SIZES: dict[str, tuple[int, int]] = {
    "icon": (29, 29),
    "logo": (160, 50),
    "strip": (375, 123),
}
ASSET_NAMES = tuple(f"{stem}{suffix}.png" for stem in SIZES for suffix in ("", "@2x"))

BRAND = (196, 40, 71)  # the pass background colour, see pkpass.COLORS
GOLD = (247, 196, 64)
WHITE = (255, 255, 255)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow >= 10.1 ships a scalable default font, so no font files are needed.
    return ImageFont.load_default(size=size)


def _coin(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=GOLD, outline=(180, 130, 20), width=max(1, int(r / 8)))
    inner = r * 0.62
    draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), outline=(180, 130, 20), width=max(1, int(r / 12)))


def draw_icon(scale: int) -> Image.Image:
    w, h = (v * scale for v in SIZES["icon"])
    img = Image.new("RGBA", (w, h), BRAND + (255,))
    _coin(ImageDraw.Draw(img), w / 2, h / 2, w * 0.36)
    return img


def draw_logo(scale: int) -> Image.Image:
    w, h = (v * scale for v in SIZES["logo"])
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))  # transparent: Wallet draws it on the pass colour
    draw = ImageDraw.Draw(img)
    _coin(draw, h / 2, h / 2, h * 0.38)
    draw.text((h * 1.05, h / 2), "Kopilka", font=_font(int(h * 0.5)), fill=WHITE, anchor="lm")
    return img


def draw_strip(scale: int) -> Image.Image:
    w, h = (v * scale for v in SIZES["strip"])
    img = Image.new("RGBA", (w, h))
    draw = ImageDraw.Draw(img)
    for y in range(h):  # vertical gradient from the brand colour to a darker shade
        t = y / max(1, h - 1)
        draw.line([(0, y), (w, y)], fill=tuple(int(c * (1 - 0.45 * t)) for c in BRAND) + (255,))
    r = h * 0.16
    for i, x in enumerate(range(int(w * 0.55), w + int(r), int(r * 1.7))):
        _coin(draw, x, h * 0.7 - (i % 3) * r * 0.9, r)
    return img


_DRAWERS = {"icon": draw_icon, "logo": draw_logo, "strip": draw_strip}


def render_assets() -> dict[str, bytes]:
    """name -> PNG bytes for every image a storeCard uses."""
    out: dict[str, bytes] = {}
    for stem, drawer in _DRAWERS.items():
        for scale, suffix in ((1, ""), (2, "@2x")):
            buf = io.BytesIO()
            drawer(scale).save(buf, format="PNG", optimize=True)
            out[f"{stem}{suffix}.png"] = buf.getvalue()
    return out


def write_assets(directory: Path = ASSETS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in render_assets().items():
        path = directory / name
        path.write_bytes(data)
        written.append(path)
    return written


def load_assets(directory: Path = ASSETS_DIR) -> dict[str, bytes]:
    """The committed images, read once per pass build (they are a few KB)."""
    return {name: (directory / name).read_bytes() for name in ASSET_NAMES if (directory / name).exists()}


if __name__ == "__main__":
    for path in write_assets():
        print(path)

"""Style images drawn by code, so the bot can ship a gallery it has every right to.

What makes a good *style* for neural style transfer is a strong texture repeated all over the image and a
clear palette: the Gram matrices only see local statistics, so one big motif in the middle transfers as
noise, while the same stroke or tile everywhere transfers as a recognisable look. Every generator here is
deterministic (its own ``numpy`` generator, seeded from the slug) and torch-free (Pillow + numpy).

Usage::

    python -m stylebot.gallery.generate [--out DIR] [--size N]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["GENERATORS", "STYLES", "StyleSpec", "generate", "main", "write_gallery"]

#: Where the shipped images and manifest live.
DEFAULT_OUT = Path(__file__).parent / "styles"
DEFAULT_SIZE = 512
JPEG_QUALITY = 88
#: Size cap for one shipped 512 px image (the bot sends it as a photo; the repository keeps it).
MAX_BYTES = 150_000

Rng = np.random.Generator
Array = np.ndarray


# -- shared helpers ------------------------------------------------------------------------------------------


def _hex(colours: str) -> Array:
    """``"#aabbcc #..."`` -> (n, 3) float array in 0..255."""
    return np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colours.split()], dtype=np.float64)


def _noise(rng: Rng, w: int, h: int, cells: int, octaves: int = 3) -> Array:
    """Smooth value noise in 0..1 (h, w): random grids upsampled bicubically, octaves summed.

    Grid sizes are fixed fractions of the image, so a small test image has the same structure as a big one.
    """
    total = np.zeros((h, w))
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        n = cells * (2**o)
        gh, gw = max(2, round(n * h / max(w, h))), max(2, round(n * w / max(w, h)))
        grid = Image.fromarray(rng.random((gh, gw)).astype(np.float32), mode="F")
        total += amp * np.asarray(grid.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64)
        norm += amp
        amp *= 0.5
    total /= norm
    lo, hi = total.min(), total.max()
    return (total - lo) / (hi - lo + 1e-9)


def _voronoi(points: Array, w: int, h: int) -> tuple[Array, Array, Array]:
    """Nearest seed index, and distances to the nearest and second-nearest seeds, per pixel."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    d1 = np.full((h, w), np.inf)
    d2 = np.full((h, w), np.inf)
    label = np.zeros((h, w), dtype=np.int32)
    for i, (px, py) in enumerate(points):
        d = np.hypot(xx - px, yy - py)
        closer = d < d1
        d2 = np.where(closer, d1, np.minimum(d2, d))
        label = np.where(closer, i, label)
        d1 = np.where(closer, d, d1)
    return label, d1, d2


def _paper(rng: Rng, w: int, h: int, colour: tuple[int, int, int], grain: float = 10.0) -> Array:
    """A flat ground with fibre-like grain: (h, w, 3) float."""
    base = np.empty((h, w, 3))
    base[:] = colour
    fine = rng.normal(0, 1, (h, w))
    blotch = _noise(rng, w, h, 6, 3) - 0.5
    return base + (grain * 0.5 * fine + grain * 2 * blotch)[..., None]


def _to_image(a: Array) -> Image.Image:
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def _s(size: int, px: float) -> float:
    """A length given for a 512 px image, scaled to ``size`` (never below 1)."""
    return max(1.0, px * size / 512)


# -- generators ----------------------------------------------------------------------------------------------


def mosaic(rng: Rng, w: int, h: int) -> Image.Image:
    """Roman mosaic: small square-ish Voronoi tesserae in terracotta and ochre, light grout between them."""
    scale = max(w, h)
    step = _s(scale, 13)
    gx, gy = np.meshgrid(np.arange(step / 2, w, step), np.arange(step / 2, h, step))
    pts = np.stack([gx.ravel(), gy.ravel()], 1) + rng.uniform(-step * 0.3, step * 0.3, (gx.size, 2))
    label, d1, d2 = _voronoi(pts, w, h)
    palette = _hex("#b5472b #d9893b #e8c07a #6e2c1f #2f4858 #3b7a78 #efe3c8 #8c6239 #1d2b36")
    # Colour by a smooth field so bands and swirls of one colour appear, as in a real floor.
    field = _noise(rng, w, h, 3, 2)
    ci = (
        np.clip(
            (
                field[pts[:, 1].astype(int).clip(0, h - 1), pts[:, 0].astype(int).clip(0, w - 1)] * 1.3
                + rng.normal(0, 0.12, len(pts))
            )
            * (len(palette) - 1),
            0,
            len(palette) - 1,
        )
        .round()
        .astype(int)
    )
    cols = palette[ci] * rng.uniform(0.85, 1.1, (len(pts), 1))
    img = cols[label]
    img *= (1 - 0.18 * (d1 / step))[..., None]  # each tile a little domed
    grout = (d2 - d1) < _s(scale, 2.6)
    img[grout] = (205, 196, 178)
    img += rng.normal(0, 6, img.shape)
    return _to_image(img)


def brush_strokes(rng: Rng, w: int, h: int) -> Image.Image:
    """Impasto: thousands of short, thick strokes following a smooth flow field, warm and cool palette."""
    scale = max(w, h)
    angle = _noise(rng, w, h, 3, 2) * 2 * math.pi * 1.5
    tone = _noise(rng, w, h, 2, 3)
    palette = _hex("#1b3a5c #2e6f95 #6fa8c7 #d8c36a #e39b3d #b8462e #f2e6c9 #4d7c3a")
    img = Image.fromarray(np.full((h, w, 3), (60, 70, 80), np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    n = int(2600 * (w * h) / 512**2) + 200
    length, width = _s(scale, 22), _s(scale, 6)
    for _ in range(n):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        xi, yi = min(int(x), w - 1), min(int(y), h - 1)
        k = int(np.clip(tone[yi, xi] * len(palette) + rng.normal(0, 0.7), 0, len(palette) - 1))
        col = np.clip(palette[k] * rng.uniform(0.8, 1.15) + rng.normal(0, 10, 3), 0, 255)
        pts = [(x, y)]
        for _ in range(3):  # a short curved stroke: a few steps along the field
            a = angle[min(int(pts[-1][1]), h - 1) % h, min(int(pts[-1][0]), w - 1) % w]
            pts.append((pts[-1][0] + math.cos(a) * length / 3, pts[-1][1] + math.sin(a) * length / 3))
        wdt = max(1, round(width * rng.uniform(0.7, 1.3)))
        draw.line(pts, fill=tuple(int(c) for c in col), width=wdt, joint="curve")
        # a lighter ridge on one side of the stroke: the paint's thickness
        ridge = tuple(int(min(255, c * 1.25 + 20)) for c in col)
        draw.line([(px + 0.3 * wdt, py - 0.3 * wdt) for px, py in pts], fill=ridge, width=max(1, wdt // 3))
    return img


def stained_glass(rng: Rng, w: int, h: int) -> Image.Image:
    """Saturated jewel-coloured Voronoi panes with thick dark leading and light falling off inside each pane."""
    scale = max(w, h)
    n = max(12, int(150 * (w * h) / 512**2))
    pts = np.stack([rng.uniform(0, w, n), rng.uniform(0, h, n)], 1)
    label, d1, d2 = _voronoi(pts, w, h)
    palette = _hex("#b0102b #1641a8 #0d7a4a #e0a91b #6a1b9a #e65c00 #1a9fb0 #f2d64b #8b0f4d")
    cols = palette[rng.integers(0, len(palette), n)] * rng.uniform(0.75, 1.15, (n, 1))
    img = cols[label]
    glow = _noise(rng, w, h, 4, 3)  # uneven glass: brighter and darker streaks
    img = img * (0.65 + 0.7 * glow)[..., None]
    img *= (1.15 - 0.35 * np.clip(d1 / _s(scale, 60), 0, 1))[..., None]
    lead = (d2 - d1) < _s(scale, 5)
    img[lead] = (22, 18, 20)
    img += rng.normal(0, 5, img.shape)
    return _to_image(img)


def ink_wash(rng: Rng, w: int, h: int) -> Image.Image:
    """Sumi-e: grey wash blobs bleeding into warm paper, then dark calligraphic strokes and dry-brush marks."""
    scale = max(w, h)
    paper = _paper(rng, w, h, (236, 228, 208), grain=6)
    ink = np.zeros((h, w))
    wash = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(wash)
    for _ in range(int(26 * (w * h) / 512**2) + 6):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.05, 0.16) * scale, rng.uniform(0.03, 0.1) * scale
        d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=int(rng.uniform(60, 160)))
    wash_a = np.asarray(wash.filter(ImageFilter.GaussianBlur(_s(scale, 14))), dtype=np.float64) / 255
    ink += wash_a * (0.6 + 0.8 * _noise(rng, w, h, 8, 3))
    strokes = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(strokes)
    for _ in range(int(34 * (w * h) / 512**2) + 8):  # bamboo-like segmented stems and leaves
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a = rng.normal(-math.pi / 2, 0.5) if rng.random() < 0.5 else rng.uniform(0, 2 * math.pi)
        seg = rng.uniform(30, 80) * scale / 512
        wdt = rng.uniform(7, 18) * scale / 512
        for _ in range(int(rng.integers(3, 7))):
            x2, y2 = x + math.cos(a) * seg, y + math.sin(a) * seg
            d.line([(x, y), (x2, y2)], fill=int(rng.uniform(170, 250)), width=max(1, round(wdt)))
            x, y = x2 + math.cos(a) * wdt * 0.6, y2 + math.sin(a) * wdt * 0.6  # a gap: the node
            a += rng.normal(0, 0.15)
            wdt *= 0.85
    st = np.asarray(strokes.filter(ImageFilter.GaussianBlur(_s(scale, 0.8))), dtype=np.float64) / 255
    dry = _noise(rng, w, h, 48, 1) > 0.2  # dry brush: ink skips the paper's high spots in small patches
    ink = np.maximum(ink, st * np.where(dry, 1.0, 0.45))
    img = paper * (1 - 0.92 * np.clip(ink, 0, 1))[..., None] + np.array([18, 16, 20]) * np.clip(ink, 0, 1)[..., None]
    return _to_image(img)


def pointillism(rng: Rng, w: int, h: int) -> Image.Image:
    """Seurat-like: dense small dots of pure colours whose mix follows a calm landscape (sky, water, grass)."""
    scale = max(w, h)
    img = Image.fromarray(_paper(rng, w, h, (238, 232, 214), 4).clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    wobble = _noise(rng, w, h, 3, 2)
    bands = [  # (palette of the band): sky, distant trees, water, grass
        _hex("#f4d35e #9ad0ec #5b8fd6 #ffffff #f7a072"),
        _hex("#2f6b3a #6b9e3f #3a4f8a #c9d46a"),
        _hex("#2a6fb0 #7fb8e6 #e8e2a0 #1f3f7a #ffffff"),
        _hex("#4f8f2f #b9d25a #e0a030 #2d5a27 #d94f30"),
    ]
    n = int(16000 * (w * h) / 512**2) + 400
    r = _s(scale, 3.2)
    for _ in range(n):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        v = y / h + (wobble[min(int(y), h - 1), min(int(x), w - 1)] - 0.5) * 0.3
        band = bands[int(np.clip(v * len(bands), 0, len(bands) - 1))]
        col = band[rng.integers(0, len(band))] + rng.normal(0, 8, 3)
        rr = r * rng.uniform(0.7, 1.3)
        draw.ellipse([x - rr, y - rr, x + rr, y + rr], fill=tuple(int(c) for c in np.clip(col, 0, 255)))
    return img


def woodcut(rng: Rng, w: int, h: int) -> Image.Image:
    """Woodcut print: bold parallel carved lines that follow the contours of a few shapes, black on cream."""
    scale = max(w, h)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    field = np.zeros((h, w))
    for _ in range(5):  # hills and swells: sum of soft bumps, so its level lines are nested curves
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        s = rng.uniform(0.15, 0.35) * scale
        field += rng.choice([-1, 1]) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    field += 0.25 * (_noise(rng, w, h, 3, 2) - 0.5)
    spacing = 18.0  # level lines per unit of the field: about every 9-14 px at 512
    phase = field * spacing + yy / _s(scale, 80)
    # Line width varies with a slow field: a carver's gouge pressing harder in the shadows.
    press = 0.25 + 0.5 * _noise(rng, w, h, 2, 2)
    ink = (phase - np.floor(phase)) < press
    # Chisel nicks: short random white flecks cut into the black.
    nicks = _noise(rng, w, h, 40, 1) > 0.88
    ink &= ~nicks
    paper = _paper(rng, w, h, (238, 226, 198), 5)
    img = np.where(ink[..., None], np.array([24, 20, 18]) + rng.normal(0, 4, (h, w, 1)), paper)
    return _to_image(img)


def starry_swirl(rng: Rng, w: int, h: int) -> Image.Image:
    """Swirling night sky: curved strokes circling a few vortices, deep blues with yellow stars and halos."""
    scale = max(w, h)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    vx, vy = np.full((h, w), 1.0), np.full((h, w), 0.15)  # a gentle wind to the right
    stars = [(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.04, 0.09) * scale) for _ in range(6)]
    for cx, cy, r in stars:
        dx, dy = xx - cx, yy - cy
        d2 = dx * dx + dy * dy + (r * 0.5) ** 2
        k = 3.0 * r * r / d2 * rng.choice([-1, 1])
        vx += -dy / np.sqrt(d2) * k
        vy += dx / np.sqrt(d2) * k
    angle = np.arctan2(vy, vx)
    palette = _hex("#0b1e4a #16397a #2a5caa #4f86c6 #8fb8de #e8d97a #c9a227 #102a5c")
    img = Image.fromarray(np.full((h, w, 3), (14, 30, 74), np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    tone = _noise(rng, w, h, 3, 2)
    n = int(3200 * (w * h) / 512**2) + 200
    length, width = _s(scale, 30), _s(scale, 5)
    for _ in range(n):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        k = int(np.clip(tone[min(int(y), h - 1), min(int(x), w - 1)] * 6 + rng.normal(0, 0.8), 0, 5))
        col = np.clip(palette[k] + rng.normal(0, 12, 3), 0, 255)
        pts = [(x, y)]
        for _ in range(5):
            a = angle[int(np.clip(pts[-1][1], 0, h - 1)), int(np.clip(pts[-1][0], 0, w - 1))]
            pts.append((pts[-1][0] + math.cos(a) * length / 5, pts[-1][1] + math.sin(a) * length / 5))
        draw.line(
            pts, fill=tuple(int(c) for c in col), width=max(1, round(width * rng.uniform(0.7, 1.2))), joint="curve"
        )
    for cx, cy, r in stars:  # stars: concentric halos of short yellow dashes, then a bright core
        for ring in np.arange(r * 1.6, r * 0.3, -_s(scale, 6)):
            for t in np.arange(0, 2 * math.pi, max(0.15, _s(scale, 8) / ring)):
                col = palette[5 if rng.random() < 0.6 else 6] + rng.normal(0, 10, 3)
                draw.arc(
                    [cx - ring, cy - ring, cx + ring, cy + ring],
                    math.degrees(t),
                    math.degrees(t) + 12,
                    fill=tuple(int(c) for c in np.clip(col, 0, 255)),
                    width=max(1, round(_s(scale, 3))),
                )
        rc = r * 0.3
        draw.ellipse([cx - rc, cy - rc, cx + rc, cy + rc], fill=(250, 236, 150))
    return img


def cubist(rng: Rng, w: int, h: int) -> Image.Image:
    """Analytic cubism: the plane cut by random straight lines into facets, each shaded flat-to-dark in ochre,
    olive and slate, with dark edges."""
    scale = max(w, h)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    n_lines = 22
    code = np.zeros((h, w), dtype=np.int64)
    near = np.full((h, w), np.inf)
    shade = np.zeros((h, w))
    for _ in range(n_lines):
        a = rng.uniform(0, math.pi)
        nx, ny = math.cos(a), math.sin(a)
        c = rng.uniform(0, w) * nx + rng.uniform(0, h) * ny
        dist = xx * nx + yy * ny - c
        code = code * 3 + (dist > 0)
        near = np.minimum(near, np.abs(dist))
        shade += np.exp(-np.abs(dist) / _s(scale, 25)) * (dist > 0) * rng.uniform(0.1, 0.3)
    palette = _hex("#c89b5a #8a6b3e #5a4a36 #a8a07a #6b7a78 #d8c8a0 #3e3a34 #b5763c #7d8c8a")
    ids = np.unique(code, return_inverse=True)[1].reshape(h, w)
    cols = palette[rng.integers(0, len(palette), ids.max() + 1)]
    img = cols[ids] * (1.05 - np.clip(shade, 0, 0.6))[..., None]
    img[near < _s(scale, 1.8)] = (40, 34, 28)
    img += rng.normal(0, 7, img.shape)  # canvas
    return _to_image(img)


def halftone_pop(rng: Rng, w: int, h: int) -> Image.Image:
    """Pop-art halftone: bold flat colour blocks with black outlines, each covered by a rotated grid of dots
    whose size follows the light."""
    scale = max(w, h)
    n = max(6, int(14 * (w * h) / 512**2))
    pts = np.stack([rng.uniform(0, w, n), rng.uniform(0, h, n)], 1)
    label, d1, d2 = _voronoi(pts, w, h)
    bg = _hex("#ffd400 #ff3c8e #00a6ed #ff6b1a #7ae582 #f7f7f2")
    dots = _hex("#d7263d #1b1b3a #0047ab #ff006e #111111")
    bi, di = rng.integers(0, len(bg), n), rng.integers(0, len(dots), n)
    light = _noise(rng, w, h, 2, 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    a = math.radians(22)
    u, v = xx * math.cos(a) + yy * math.sin(a), -xx * math.sin(a) + yy * math.cos(a)
    period = _s(scale, 11)
    du = (u / period) % 1 - 0.5
    dv = (v / period) % 1 - 0.5
    r = np.hypot(du, dv)
    dot = r < (0.12 + 0.36 * light)
    img = np.where(dot[..., None], dots[di][label], bg[bi][label])
    img[(d2 - d1) < _s(scale, 4)] = (10, 10, 10)
    return _to_image(img)


def watercolour(rng: Rng, w: int, h: int) -> Image.Image:
    """Watercolour: layered translucent washes with soft, irregular outlines, darker dried edges and blooms,
    and paper grain showing through."""
    scale = max(w, h)
    img = _paper(rng, w, h, (246, 241, 230), 5)
    palette = _hex("#2e86ab #a23b72 #f18f01 #c73e1d #3b8b5a #6a4c93 #1b998b #e4b363")
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for _ in range(int(34 * (w * h) / 512**2) + 8):
        cx, cy = rng.uniform(-0.05, 1.05) * w, rng.uniform(-0.05, 1.05) * h
        r = rng.uniform(0.08, 0.22) * scale
        # An irregular blob: a radial falloff pushed around by noise, then cut at a level.
        wobble = _noise(rng, w, h, 5, 3) - 0.5
        m = np.clip((1 - np.hypot(xx - cx, yy - cy) / r + 0.9 * wobble) * 3, 0, 1)
        m = (
            np.asarray(
                Image.fromarray((m * 255).astype(np.uint8), "L").filter(ImageFilter.GaussianBlur(_s(scale, 1.5))),
                dtype=np.float64,
            )
            / 255
        )
        # Pigment gathers at the edge as a wash dries: more density where the mask falls off.
        edge = np.clip(m * (1 - m) * 4, 0, 1) ** 2
        granul = 0.8 + 0.4 * _noise(rng, w, h, 30, 1)
        alpha = np.clip((0.45 * m + 0.5 * edge) * granul, 0, 1) * rng.uniform(0.5, 0.95)
        col = palette[rng.integers(0, len(palette))]
        img = img * (1 - alpha[..., None]) + (img * col / 255) * alpha[..., None]  # multiply: glazes darken
    img += (3 * rng.normal(0, 1, (h, w)))[..., None]
    return _to_image(img)


GENERATORS: dict[str, Callable[[Rng, int, int], Image.Image]] = {
    "mosaic": mosaic,
    "brush_strokes": brush_strokes,
    "stained_glass": stained_glass,
    "ink_wash": ink_wash,
    "pointillism": pointillism,
    "woodcut": woodcut,
    "starry_swirl": starry_swirl,
    "cubist_facets": cubist,
    "halftone_pop": halftone_pop,
    "watercolour": watercolour,
}


@dataclass(frozen=True)
class StyleSpec:
    """What the manifest says about one generated style."""

    slug: str
    en: str
    ru: str
    generator_en: str
    generator_ru: str


STYLES: tuple[StyleSpec, ...] = (
    StyleSpec("mosaic", "Mosaic", "Мозаика", "mosaic", "мозаики"),
    StyleSpec("brush_strokes", "Brush strokes", "Мазки кистью", "brush strokes", "мазков кистью"),
    StyleSpec("stained_glass", "Stained glass", "Витраж", "stained glass", "витража"),
    StyleSpec("ink_wash", "Ink wash", "Тушь", "ink wash", "туши"),
    StyleSpec("pointillism", "Pointillism", "Пуантилизм", "pointillism", "пуантилизма"),
    StyleSpec("woodcut", "Woodcut", "Гравюра", "woodcut", "гравюры"),
    StyleSpec("starry_swirl", "Starry swirl", "Звёздный вихрь", "starry swirl", "звёздного вихря"),
    StyleSpec("cubist_facets", "Cubist facets", "Кубизм", "cubist facets", "кубизма"),
    StyleSpec("halftone_pop", "Pop-art halftone", "Поп-арт", "pop-art halftone", "поп-арта"),
    StyleSpec("watercolour", "Watercolour", "Акварель", "watercolour", "акварели"),
)


def _seed(slug: str) -> int:
    """A stable seed per style (``hash()`` is salted per process; crc32 is not)."""
    return zlib.crc32(slug.encode("utf-8"))


def generate(slug: str, size: int = DEFAULT_SIZE, height: int | None = None) -> Image.Image:
    """One style image, ``size`` wide and ``height`` (default: ``size``) tall; same arguments, same pixels."""
    return GENERATORS[slug](np.random.default_rng(_seed(slug)), size, height or size)


def write_gallery(out: Path = DEFAULT_OUT, size: int = DEFAULT_SIZE) -> list[dict[str, object]]:
    """Every style as ``<slug>.jpg`` in ``out``, plus ``manifest.json``; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, object]] = []
    for spec in STYLES:
        path = out / f"{spec.slug}.jpg"
        image = generate(spec.slug, size)
        for quality in range(JPEG_QUALITY, 60, -4):  # busy textures: step down until the file is small
            image.save(path, quality=quality, optimize=True)
            if path.stat().st_size <= MAX_BYTES * (size / DEFAULT_SIZE) ** 2:
                break
        manifest.append(
            {
                "slug": spec.slug,
                "file": path.name,
                "name": {"en": spec.en, "ru": spec.ru},
                "credit": {
                    "en": f"Generated by stylebot ({spec.generator_en} generator)",
                    "ru": f"Создано stylebot (генератор {spec.generator_ru})",
                },
            }
        )
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Regenerate the gallery's style images and manifest.")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder (default {DEFAULT_OUT})")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="side of the square images, px")
    args = p.parse_args(argv)
    for entry in write_gallery(args.out, args.size):
        path = args.out / str(entry["file"])
        print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

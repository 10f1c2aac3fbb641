"""bench.quality
~~~~~~~~~~~~~

Quality on a set of content/style pairs (issue 13.3), not one: for each pair, in one process and in turn,

(a) the original recipe (``bench/engine.py``'s ``_original_recipe``: the tutorial loop, square, 300 evals),
(b) ``StyleParams(preset="seed")`` and the default preset, all at ``--size``;

and for each output: wall time, the seed objective's pyramid style loss (full, 1/2, 1/4 size) and content
loss, plus two measures the optimiser does not minimise: SSIM of the luminance to the content (does the
picture survive?) and a chi-square distance between joint RGB colour histograms (8 bins a channel) to the
style (did the palette come across?). The content's own distance to the style is printed beside it.

Pictures (no download at run time): the shared sample pair, photos bundled inside the scikit-image wheel
(``requirements-bench.txt``; the files are read from the installed package, ``skimage.data``'s pooch
downloads are never used), crops of them for portrait orientation, and the gallery's generated styles.

(a) squares the content, as the original bot did; its output is measured as it came out, against the
content squared the same way (the objective it minimised), and shown squared on the sheet.

Usage::

    python bench/quality.py [--size 512] [--a-evals 300] [--pairs cat,rocket] [--threads 2] [--docs]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
SAMPLES = REPO.parent / "shared" / "samples"
GALLERY = REPO / "stylebot" / "gallery" / "styles"
OUT = BENCH / "out"

for _p in (str(REPO), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

#: The runs of one pair, in order: label, preset (None = the original recipe).
METHODS: tuple[tuple[str, str | None], ...] = (("a", None), ("b", "seed"), ("default", "default"))
#: Runs of ``--colors``: the default preset keeping the content's colours, by each method (issue 13.4).
COLOR_RUNS: dict[str, str] = {"keep-lum": "luminance", "keep-hist": "histogram"}


# -- pictures ------------------------------------------------------------------------------------------------


def _skimage_file(name: str) -> Path:
    """A picture inside the installed scikit-image wheel (no import of skimage, never a download)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-image is not installed: pip install -r requirements-bench.txt")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise SystemExit(f"{path} is not in the installed scikit-image wheel")
    return path


def _open(path: Path, crop: tuple[float, float, float, float] | None = None) -> Image.Image:
    """RGB (grey textures become grey RGB); ``crop`` is (left, top, right, bottom) as fractions."""
    img = Image.open(path).convert("RGB")
    if crop is not None:
        w, h = img.size
        img = img.crop((round(crop[0] * w), round(crop[1] * h), round(crop[2] * w), round(crop[3] * h)))
    return img


def skimage(name: str, crop: tuple[float, float, float, float] | None = None) -> Callable[[], Image.Image]:
    return lambda: _open(_skimage_file(name), crop)


def shared(name: str) -> Callable[[], Image.Image]:
    return lambda: _open(SAMPLES / name)


def gallery(slug: str) -> Callable[[], Image.Image]:
    return lambda: _open(GALLERY / f"{slug}.jpg")


@dataclass(frozen=True)
class Pair:
    """One content/style pair; ``kind`` says what it covers (subject, orientation, style family)."""

    name: str
    kind: str
    content: Callable[[], Image.Image]
    style: Callable[[], Image.Image]


PAIRS: tuple[Pair, ...] = (
    Pair(
        "ballerina",
        "portrait-ish, square / painting (shared cubist)",
        shared("content_ballerina.jpg"),
        shared("style_cubist.jpg"),
    ),
    Pair(
        "astronaut",
        "portrait, square / painting-like (starry swirl)",
        skimage("astronaut.png"),
        gallery("starry_swirl"),
    ),
    Pair(
        "astronaut_tall",
        "portrait, portrait orientation / painting-like (stained glass)",
        skimage("astronaut.png", (0.12, 0.0, 0.72, 1.0)),
        gallery("stained_glass"),
    ),
    Pair("cat", "animal, landscape / painting-like (brush strokes)", skimage("chelsea.png"), gallery("brush_strokes")),
    Pair("coffee", "still life, landscape / painting-like (mosaic)", skimage("coffee.png"), gallery("mosaic")),
    Pair(
        "rocket",
        "architecture (launch tower), landscape / print-like (woodcut)",
        skimage("rocket.jpg"),
        gallery("woodcut"),
    ),
    Pair(
        "rocket_tall",
        "architecture, portrait orientation / photo texture (brick)",
        skimage("rocket.jpg", (0.3, 0.0, 0.75, 1.0)),
        skimage("brick.png"),
    ),
    Pair(
        "motorcycle",
        "machine, landscape / photo texture (gravel)",
        skimage("motorcycle_left.png"),
        skimage("gravel.png"),
    ),
    Pair(
        "hubble",
        "space, near square / painting-like (watercolour)",
        skimage("hubble_deep_field.jpg"),
        gallery("watercolour"),
    ),
)


def _fit(img: Image.Image, size: int) -> Image.Image:
    """The content scaled (up or down) so its long side is ``size``, as bench/engine.py does."""
    f = size / max(img.size)
    wh = (max(1, round(img.width * f)), max(1, round(img.height * f)))
    return img if wh == img.size else img.resize(wh, Image.Resampling.LANCZOS)


# -- measures the optimiser does not see -----------------------------------------------------------------------


def luminance(img: Image.Image) -> np.ndarray:
    """ITU-R BT.601 luma, float64 in 0..255."""
    a = np.asarray(img.convert("RGB"), dtype=np.float64)
    return a @ np.array([0.299, 0.587, 0.114])


def _gaussian_filter(a: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    """Separable Gaussian blur with reflected borders (numpy only)."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(t * t) / (2 * sigma * sigma))
    k /= k.sum()
    p = np.pad(a, radius, mode="symmetric")  # scipy.ndimage's "reflect"
    p = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, p)
    return np.apply_along_axis(lambda c: np.convolve(c, k, mode="valid"), 0, p)


def ssim(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) of two grey images.

    Numpy only, so the benchmark's measure does not depend on scipy; it matches
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``
    (checked in tests/unit/test_gallery.py when scikit-image is installed).
    """
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = _gaussian_filter(x), _gaussian_filter(y)
    sxx = _gaussian_filter(x * x) - mx * mx
    syy = _gaussian_filter(y * y) - my * my
    sxy = _gaussian_filter(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    r = 5  # the window's radius: the border, where the window runs off the image, is left out (as skimage does)
    return float(s[r:-r, r:-r].mean())


def colour_hist(img: Image.Image, bins: int = 8) -> np.ndarray:
    """Normalised joint RGB histogram, ``bins`` a channel (the style at any size compares fairly)."""
    a = np.asarray(img.convert("RGB"), dtype=np.int64) * bins // 256
    idx = (a[..., 0] * bins + a[..., 1]) * bins + a[..., 2]
    h = np.bincount(idx.ravel(), minlength=bins**3).astype(np.float64)
    return h / h.sum()


def chi2(p: np.ndarray, q: np.ndarray) -> float:
    """Symmetric chi-square distance of two histograms: 0 same, 1 disjoint."""
    s = p + q
    m = s > 0
    return float(0.5 * ((p[m] - q[m]) ** 2 / s[m]).sum())


def colour_cast(image: Image.Image, ref: Image.Image) -> float:
    """How far the image's mean chroma (Cb, Cr; 0..255) is from the reference's: 0 = no cast."""
    a = np.asarray(image.convert("YCbCr"), dtype=np.float64)[..., 1:].reshape(-1, 2).mean(0)
    b = np.asarray(ref.convert("YCbCr"), dtype=np.float64)[..., 1:].reshape(-1, 2).mean(0)
    return float(np.hypot(*(a - b)))


# -- one pair -------------------------------------------------------------------------------------------------


def measure(engine, image: Image.Image, content: Image.Image, style: Image.Image) -> dict:
    """Seed objective at full, 1/2 and 1/4 size (bench/engine.py's pyramid), content loss at full size,
    SSIM of luminance to the content at the image's size, colour distance to the style."""
    from model import StyleParams

    seed = StyleParams(preset="seed")
    styles, content_loss = [], 0.0
    for f in (1, 2, 4):
        wh = (max(1, round(image.width / f)), max(1, round(image.height / f)))
        losses = engine.evaluate(image.resize(wh, Image.Resampling.LANCZOS), content, style, seed)
        styles.append(float(losses.style))
        if f == 1:
            content_loss = float(losses.content)
    ref = content.resize(image.size, Image.Resampling.LANCZOS)
    return {
        "style_pyramid": styles,
        "style": sum(styles),
        "content": content_loss,
        "ssim": ssim(luminance(image), luminance(ref)),
        "colour": chi2(colour_hist(image), colour_hist(style)),
    }


def run_pair(
    engine,
    pair: Pair,
    size: int,
    a_evals: int,
    out: Path,
    methods: tuple[str, ...] = ("a", "b", "default"),
    a_cache: bool = False,
) -> dict:
    from model import StyleParams

    content, style = _fit(pair.content(), size), pair.style()
    content.save(out / f"{pair.name}_content.jpg", quality=90)
    style.save(out / f"{pair.name}_style.jpg", quality=90)
    result: dict = {
        "kind": pair.kind,
        "content_size": list(content.size),
        "content_to_style_colour": chi2(colour_hist(content), colour_hist(style)),
    }
    for label in methods:
        preset = dict(METHODS).get(label, "default")
        t0 = time.perf_counter()
        extra: dict = {}
        if label == "a":
            image, evals, extra = _original(engine, pair.name, content, style, size, a_evals, a_cache)
        else:
            params = StyleParams(
                size=size,
                preset=preset or "default",
                keep_colors=label in COLOR_RUNS,
                color_method=COLOR_RUNS.get(label, "luminance"),
            )
            image, evals = engine.stylize(content, style, params), None
        wall = extra.pop("wall_s", None) or time.perf_counter() - t0
        path = out / f"{pair.name}_{label}.jpg"
        image.save(path, quality=90)
        r = {"wall_s": wall, "size": list(image.size), "image": str(path.relative_to(REPO)), **extra}
        if evals is not None:
            r["evals"] = evals
        r.update(measure(engine, image, content, style))
        if label in COLOR_RUNS:  # colours kept: how far they are from the content's, and any cast
            ref = content.resize(image.size, Image.Resampling.LANCZOS)
            r["colour_to_content"] = chi2(colour_hist(image), colour_hist(ref))
            r["cast"] = colour_cast(image, ref)
        result[label] = r
    return result


#: Evaluations of (a) timed in this run when its finished image comes from the cache (one torch LBFGS step).
A_TIMED_EVALS = 20


def _original(
    engine, name: str, content: Image.Image, style: Image.Image, size: int, a_evals: int, cache: bool
) -> tuple[Image.Image, int, dict]:
    """(a) for one pair. With ``cache`` its finished image is kept in bench/out/a_cache (it is deterministic
    up to float rounding: same pair, size and evaluations), and its time is projected to ``a_evals`` from
    :data:`A_TIMED_EVALS` evaluations run now, so time ratios stay side by side within one run."""
    from engine import _original_recipe  # bench/engine.py: (a) exactly as that benchmark runs it

    if not cache:
        image, evals, _ = _original_recipe(engine, content, style, size, a_evals)
        return image, evals, {}
    path = OUT / "a_cache" / f"{name}_{size}_{a_evals}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        image, _, _ = _original_recipe(engine, content, style, size, a_evals)
        image.save(path)
    t0 = time.perf_counter()
    _, timed, per_eval = _original_recipe(engine, content, style, size, min(a_evals, A_TIMED_EVALS))
    setup = time.perf_counter() - t0 - per_eval * timed
    return (
        Image.open(path).convert("RGB"),
        a_evals,
        {"wall_s": setup + per_eval * a_evals, "per_eval_s": per_eval, "projected": True},
    )


# -- report ---------------------------------------------------------------------------------------------------


def _geomean(xs: list[float]) -> float:
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def _labels(r: dict) -> list[str]:
    return [label for label in (*dict(METHODS), *COLOR_RUNS) if label in r]


def print_pair(name: str, r: dict) -> None:
    print(
        f"\n{name}  ({r['kind']}; content {r['content_size'][0]}x{r['content_size'][1]}; "
        f"content->style colour {r['content_to_style_colour']:.3f})"
    )
    print(
        f"  {'run':8s} {'size':>9s} {'time s':>7s} {'style@1':>9s} {'@1/2':>9s} {'@1/4':>9s} {'style sum':>10s} "
        f"{'content':>9s} {'SSIM':>6s} {'colour':>7s}"
    )
    for label in _labels(r):
        m = r[label]
        s1, s2, s4 = m["style_pyramid"]
        size = f"{m['size'][0]}x{m['size'][1]}"
        print(
            f"  {label:8s} {size:>9s} {m['wall_s']:7.1f} {s1:9.3g} {s2:9.3g} {s4:9.3g} {m['style']:10.4g} "
            f"{m['content']:9.3g} {m['ssim']:6.3f} {m['colour']:7.3f}"
            + (f"  colour to content {m['colour_to_content']:.3f}, cast {m['cast']:.1f}" if label in COLOR_RUNS else "")
        )


def totals(results: dict[str, dict]) -> dict:
    """Geometric means of ratios to (a) for time and losses; plain means of SSIM and colour distance."""
    out: dict = {}
    first = next(iter(results.values()))
    for label in _labels(first):
        rs = [r[label] for r in results.values()]
        if "a" not in first:
            out[label] = {
                "time_s": sum(m["wall_s"] for m in rs),
                "ssim_mean": sum(m["ssim"] for m in rs) / len(rs),
                "colour_mean": sum(m["colour"] for m in rs) / len(rs),
            }
        else:
            out[label] = {
                "time_vs_a": _geomean([m["wall_s"] / r["a"]["wall_s"] for m, r in zip(rs, results.values())]),
                "style_vs_a": _geomean([m["style"] / r["a"]["style"] for m, r in zip(rs, results.values())]),
                "content_vs_a": _geomean([m["content"] / r["a"]["content"] for m, r in zip(rs, results.values())]),
                # the bound, pair by pair: the worst ratio to (a)
                "style_vs_a_max": max(m["style"] / r["a"]["style"] for m, r in zip(rs, results.values())),
                "content_vs_a_max": max(m["content"] / r["a"]["content"] for m, r in zip(rs, results.values())),
                "time_s": sum(m["wall_s"] for m in rs),
                "ssim_mean": sum(m["ssim"] for m in rs) / len(rs),
                "colour_mean": sum(m["colour"] for m in rs) / len(rs),
            }
        if label in COLOR_RUNS:
            out[label]["colour_to_content_mean"] = sum(m["colour_to_content"] for m in rs) / len(rs)
            out[label]["cast_max"] = max(m["cast"] for m in rs)
    out["content_to_style_colour_mean"] = sum(r["content_to_style_colour"] for r in results.values()) / len(results)
    return out


def print_totals(t: dict, n: int) -> None:
    print(f"\nTOTALS over {n} pairs (ratios to (a): geometric mean over the pairs, and the worst pair)")
    print(
        f"  {'run':9s} {'time s':>8s} {'time/(a)':>9s} {'style/(a)':>10s} {'worst':>6s} {'content/(a)':>12s} "
        f"{'worst':>6s} {'mean SSIM':>10s} {'mean colour':>12s}"
    )
    nan = float("nan")
    for label in (lb for lb in (*dict(METHODS), *COLOR_RUNS) if lb in t):
        m = t[label]
        print(
            f"  {label:9s} {m['time_s']:8.1f} {m.get('time_vs_a', nan):9.3f} {m.get('style_vs_a', nan):10.3f} "
            f"{m.get('style_vs_a_max', nan):6.2f} {m.get('content_vs_a', nan):12.3f} "
            f"{m.get('content_vs_a_max', nan):6.2f} {m['ssim_mean']:10.3f} {m['colour_mean']:12.3f}"
            + (
                f"  colour to content {m['colour_to_content_mean']:.3f}, worst cast {m['cast_max']:.1f}"
                if label in COLOR_RUNS
                else ""
            )
        )
    print(
        f"  (content -> style colour distance, mean: {t['content_to_style_colour_mean']:.3f}; lower colour = "
        f"closer to the style's palette, higher SSIM = more of the content's structure kept)"
    )
    if "a" in t and "default" in t:
        d = t["default"]
        print(
            f"  default on every pair: pyramid style <= {d['style_vs_a_max']:.2f}x (a)'s (target < 1), content "
            f"<= {d['content_vs_a_max']:.2f}x (a)'s (target <= 3); time {1 / d['time_vs_a']:.0f}x faster (geomean)"
        )


def contact_sheet(results: dict[str, dict], out: Path, sheet_path: Path, docs: Path | None, cell: int = 160) -> None:
    """Rows = pairs; columns = content, style, (a), (b), default; each cell labelled."""
    cols = ["content", "style", *_labels(next(iter(results.values())))]
    pad, label_h, head_h = 4, 14, 16
    width = len(cols) * (cell + pad) + pad
    height = head_h + len(results) * (cell + label_h + pad) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    heads = {
        "content": "content",
        "style": "style",
        "a": "(a) original",
        "b": "(b) seed",
        "default": "default",
        "keep-lum": "keep colours: lum.",
        "keep-hist": "keep colours: hist.",
    }
    for j, c in enumerate(cols):
        draw.text((pad + j * (cell + pad) + 2, 3), heads.get(c, c), fill="black")
    for i, (name, r) in enumerate(results.items()):
        y = head_h + i * (cell + label_h + pad)
        for j, c in enumerate(cols):
            path = out / f"{name}_{c}.jpg"
            img = Image.open(path).convert("RGB")
            img.thumbnail((cell, cell), Image.Resampling.LANCZOS)
            x = pad + j * (cell + pad)
            sheet.paste(img, (x + (cell - img.width) // 2, y + (cell - img.height) // 2))
            if c in r:
                m = r[c]
                text = f"SSIM {m['ssim']:.2f} col {m['colour']:.2f} {m['wall_s']:.0f}s"
            elif c == "content":
                text = name
            else:
                text = f"col(content) {r['content_to_style_colour']:.2f}"
            draw.text((x + 2, y + cell + 1), text, fill="black")
    sheet.save(sheet_path, quality=88)
    if docs is not None:
        docs.parent.mkdir(parents=True, exist_ok=True)
        small = sheet.resize((sheet.width * 3 // 4, sheet.height * 3 // 4), Image.Resampling.LANCZOS)
        for img, quality in ((sheet, 80), (sheet, 65), (small, 80), (small, 65), (small, 50)):
            img.save(docs, quality=quality, optimize=True)
            if docs.stat().st_size < 200_000:  # the repository keeps every version of it
                break


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Quality on a set of content/style pairs: (a), (b) seed, default.")
    p.add_argument("--size", type=int, default=512, help="long side of every output, px (192-256 to develop)")
    p.add_argument("--a-evals", type=int, default=300, help="cap on the original recipe's evaluations")
    p.add_argument("--pairs", default="", help="comma-separated pair names (default: all); see --list")
    p.add_argument("--list", action="store_true", help="list the pairs and exit")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--docs", action="store_true", help="also write docs/quality_sheet.jpg")
    p.add_argument(
        "--a-cache",
        action="store_true",
        help="keep (a)'s finished images in bench/out/a_cache and reuse them; (a)'s time is then "
        f"projected from {A_TIMED_EVALS} evaluations timed in this run",
    )
    p.add_argument("--methods", default="a,b,default", help="which runs, from a, b, default, keep-lum, keep-hist")
    p.add_argument("--colors", action="store_true", help="the keep-colours runs: --methods default,keep-lum,keep-hist")
    args = p.parse_args(argv)
    methods = tuple(
        m.strip() for m in ("default,keep-lum,keep-hist" if args.colors else args.methods).split(",") if m.strip()
    )
    known = (*dict(METHODS), *COLOR_RUNS)
    if set(methods) - set(known):
        p.error(f"--methods: choose from {', '.join(known)}")

    pairs = PAIRS
    if args.list:
        for pair in pairs:
            print(f"{pair.name:16s} {pair.kind}")
        return 0
    if args.pairs:
        wanted = [n.strip() for n in args.pairs.split(",") if n.strip()]
        unknown = set(wanted) - {pair.name for pair in PAIRS}
        if unknown:
            p.error(f"unknown pair(s): {', '.join(sorted(unknown))}")
        pairs = tuple(pair for pair in PAIRS if pair.name in wanted)

    from model import Engine

    OUT.mkdir(parents=True, exist_ok=True)
    engine = Engine(device="cpu", threads=args.threads)
    print(
        f"size {args.size}, threads {args.threads}, {len(pairs)} pairs; (a) = the original recipe, "
        f"{args.a_evals} evaluations"
        + (
            f" (CAPPED: the original ran 300; its losses are those of an unfinished"
            f" run, its time is for {args.a_evals})"
            if args.a_evals < 300
            else ""
        )
    )
    results: dict[str, dict] = {}
    for pair in pairs:
        results[pair.name] = r = run_pair(engine, pair, args.size, args.a_evals, OUT, methods, args.a_cache)
        print_pair(pair.name, r)
        sys.stdout.flush()
    t = totals(results)
    print_totals(t, len(results))
    if "default" in methods:
        worst = min(results, key=lambda n: results[n]["default"]["ssim"] - results[n]["default"]["colour"])
        print(f"  lowest default SSIM minus colour distance: {worst}")
    report = {
        "size": args.size,
        "a_evals": args.a_evals,
        "threads": args.threads,
        "methods": methods,
        "pairs": results,
        "totals": t,
    }
    stem = "quality_colors" if args.colors else "quality"
    (OUT / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    docs = REPO / "docs" / f"{stem}_sheet.jpg" if args.docs else None
    contact_sheet(results, OUT, OUT / f"{stem}_sheet.jpg", docs)
    print(
        f"\nJSON: {OUT / f'{stem}.json'}; contact sheet: {OUT / f'{stem}_sheet.jpg'}" + (f" and {docs}" if docs else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

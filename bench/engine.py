"""bench.engine
~~~~~~~~~~~~

Side by side on one content/style pair (the samples in ../shared/samples), each run in its own subprocess
so that its peak RSS is its own:

(a) the original recipe: the PyTorch-tutorial loop (``torch.optim.LBFGS`` with its defaults, clamping in
    the closure) on the seed objective, single scale, 512² square, fp32, 300 evaluations;
(b) ``model.stylize(preset="seed")`` at 512 px: the same objective, coarse-to-fine;
then the default preset at 512 and 1024 px, and at 512 px with ``--more-memory`` (``Engine(low_memory=False)``).

For each: wall time, peak RSS above the baseline of the imports the CLI really makes (``torch``, ``PIL``,
``numpy``; not torchvision), and the seed objective evaluated on the output at its full size, 1/2 and 1/4
(the "pyramid": five VGG convs see 24 px, so the coarser scales measure the style's larger shapes), plus
the content loss at full size; then the issue's checks: (a)'s time over the default 512 px job's (target
>= 60x), the default's pyramid style below (a)'s and its content loss within 3x, and the default over
``--more-memory`` (target <= 1.15x). Images and a contact sheet (content, style, a, b, default) go to
bench/out/. ``--fp32`` runs the jobs as a CPU without native bf16 would.

(a)'s time is always its setup plus 300 evaluations at the time per evaluation measured in this run.
``--quick`` runs it for a few evaluations only (its losses are then those of an unfinished run: say so).

Usage::

    python bench/engine.py [--quick] [--threads 2] [--no-1024] [--docs] [--fp32]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"
OUT = REPO / "bench" / "out"

from memory import _PEAK  # noqa: E402 - one peak-RSS probe for both benchmarks


def _job(kind: str, size: int, evals: int, threads: int, out: str) -> dict:
    """Runs inside the subprocess: one job, timed; returns wall time and peak RSS."""
    import numpy  # noqa: F401  (the baseline imports these too)
    import torch  # noqa: F401
    from PIL import Image  # noqa: F401

    sys.path.insert(0, str(REPO))
    from model import Engine, StyleParams

    ns: dict = {}
    exec(_PEAK, ns)
    engine = Engine(device="cpu", threads=threads, low_memory=kind != "more-memory")
    content, style = _inputs(size)
    t0 = time.perf_counter()
    per_eval = None
    if kind == "original":
        image, done, per_eval = _original_recipe(engine, content, style, size, evals)
    else:
        preset = "default" if kind == "more-memory" else kind
        image = engine.stylize(content, style, StyleParams(size=size, preset=preset))
        done = 0
    wall = time.perf_counter() - t0
    image.save(out)
    return {"wall_s": wall, "peak_mb": ns["peak_mb"](), "evals": done, "per_eval_s": per_eval, "size": list(image.size)}


def _inputs(size: int):
    """The sample pair, the content upscaled (if needed) so that its long side is ``size``."""
    from PIL import Image

    content = Image.open(SAMPLES / "content_ballerina.jpg").convert("RGB")
    style = Image.open(SAMPLES / "style_cubist.jpg").convert("RGB")
    if max(content.size) != size:
        f = size / max(content.size)
        content = content.resize((round(content.width * f), round(content.height * f)), Image.Resampling.LANCZOS)
    return content, style


def _original_recipe(engine, content, style, size: int, evals: int):
    """The tutorial's loop, as the original bot ran it, on the engine's exact seed objective."""
    import torch

    from model import StyleParams
    from stylebot.engine.imaging import to_image as _to_image

    recipe = StyleParams(preset="seed").recipe
    square = (size, size)
    c_img, s_img = content.resize(square, 1), style.resize(square, 1)  # 1 = LANCZOS; the tutorial squares both
    objective, content_t = engine._objective(recipe, c_img, s_img, square, 1.0, 0.0, False, exact=True)
    objective.tile_px = None  # the original: one graph for the whole image
    x = content_t.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([x])  # lr=1, max_iter=20, history_size=100: the tutorial's defaults
    count = [0]
    first: list[float] = []

    def closure():
        if not first:
            first.append(time.perf_counter())
        with torch.no_grad():
            x.clamp_(0, 1)
        optimizer.zero_grad()
        loss, _ = objective(x)
        loss.backward()
        x.grad = x.grad.contiguous()  # torch's LBFGS flattens with view(-1)
        count[0] += 1
        return loss

    while count[0] < evals:
        optimizer.step(closure)
    with torch.no_grad():
        x.clamp_(0, 1)
    per_eval = (time.perf_counter() - first[0]) / count[0]
    return _to_image(x), count[0], per_eval


def _subprocess(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench job {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _baseline_mb() -> float:
    code = _PEAK + "\nimport numpy, torch\nfrom PIL import Image\nprint(peak_mb())\n"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def _pyramid(engine, image, size: int):
    """Seed objective of ``image`` at full, 1/2 and 1/4 size: ([style x3], content at full size)."""
    from PIL import Image

    from model import StyleParams

    content, style = _inputs(size)
    styles = []
    content_full = None
    for f in (1, 2, 4):
        wh = (max(1, round(image.width / f)), max(1, round(image.height / f)))
        losses = engine.evaluate(image.resize(wh, Image.Resampling.LANCZOS), content, style, StyleParams(preset="seed"))
        styles.append(losses.style)
        content_full = losses.content if content_full is None else content_full
    return styles, content_full


def _contact_sheet(tiles: list[tuple[str, Path]], out: Path, docs: Path | None) -> None:
    from PIL import Image, ImageDraw

    side, pad, label_h = 256, 6, 18
    sheet = Image.new("RGB", (len(tiles) * (side + pad) + pad, side + label_h + 2 * pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, path) in enumerate(tiles):
        img = Image.open(path).convert("RGB")
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
        x = pad + i * (side + pad)
        sheet.paste(img, (x + (side - img.width) // 2, pad + (side - img.height) // 2))
        draw.text((x + 2, side + pad + 3), label, fill="black")
    sheet.save(out, quality=90)
    if docs is not None:
        docs.parent.mkdir(parents=True, exist_ok=True)
        for quality in (85, 75, 65, 55):
            sheet.save(docs, quality=quality, optimize=True)
            if docs.stat().st_size < 150_000:
                break


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_job":  # inside a subprocess
        kind, size, evals, threads, out = argv[1], int(argv[2]), int(argv[3]), int(argv[4]), argv[5]
        print(json.dumps(_job(kind, size, evals, threads, out)))
        return 0
    p = argparse.ArgumentParser(description="Engine benchmark: original recipe vs coarse-to-fine; default preset.")
    p.add_argument("--quick", action="store_true", help="run (a) for --quick-evals evaluations and project to 300")
    p.add_argument("--quick-evals", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-1024", action="store_true", help="skip the default preset at 1024 px")
    p.add_argument("--docs", action="store_true", help="also write the small docs/contact_sheet.jpg")
    p.add_argument(
        "--fp32",
        action="store_true",
        help="run every job in fp32 (STYLEBOT_CPU_BF16=0): what a CPU "
        "without native bf16 (AVX2 only) runs, on this one",
    )
    args = p.parse_args(argv)
    if args.fp32:
        os.environ["STYLEBOT_CPU_BF16"] = "0"  # inherited by the job subprocesses
    OUT.mkdir(parents=True, exist_ok=True)

    sys.path.insert(0, str(REPO))
    from PIL import Image

    from model import Engine

    engine = Engine(device="cpu", threads=args.threads)
    base = _baseline_mb()
    print(
        f"baseline RSS (import torch, numpy, PIL): {base:.0f} MB; threads {args.threads}; CPU bf16 "
        + ("off (--fp32)" if args.fp32 else "where native")
    )
    a_evals = args.quick_evals if args.quick else 300
    runs = [
        ("a", "original", 512, a_evals),
        ("b", "seed", 512, 0),
        ("default512", "default", 512, 0),
        ("more-memory512", "more-memory", 512, 0),
    ]
    if not args.no_1024:
        runs.append(("default1024", "default", 1024, 0))
    results = {}
    for name, kind, size, evals in runs:
        image_path = OUT / f"{name}.jpg"
        r = _subprocess(["_job", kind, str(size), str(evals), str(args.threads), str(image_path)])
        r["image"] = image_path
        styles, content = _pyramid(engine, Image.open(image_path).convert("RGB"), size)
        r["styles"], r["content"] = styles, content
        if kind == "original":
            # (a)'s time: its setup once, then 300 evaluations at the time per evaluation measured now
            r["time_s"] = r["wall_s"] + r["per_eval_s"] * (300 - r["evals"])
        results[name] = r
        projected = f" (300 evals at {r['per_eval_s']:.2f} s: {r['time_s']:.0f} s)" if kind == "original" else ""
        print(
            f"{name:14s} {r['size'][0]}x{r['size'][1]}: wall {r['wall_s']:6.1f} s{projected}; peak RSS "
            f"{r['peak_mb']:.0f} MB (+{r['peak_mb'] - base:.0f}); seed style @1 {styles[0]:.3g} @1/2 {styles[1]:.3g} "
            f"@1/4 {styles[2]:.3g} (pyramid {sum(styles):.4g}); content {content:.3g}",
            flush=True,
        )
    a, b, d = results["a"], results["b"], results["default512"]
    unfinished = " (vs an UNFINISHED (a): --quick)" if args.quick else ""
    print(f"(a)/(b) time: {a['time_s'] / b['wall_s']:.1f}x")
    print(f"(a)/default 512 time: {a['time_s'] / d['wall_s']:.1f}x (target >= 60x)")
    for name, r in (("(b)", b), ("default", d)):
        below = "below" if sum(r["styles"]) < sum(a["styles"]) else "NOT below"
        print(
            f"{name} pyramid style {sum(r['styles']):.4g} vs (a) {sum(a['styles']):.4g}: {below}; content "
            f"{r['content'] / a['content']:.2f}x (a)'s (target <= 3x){unfinished}"
        )
    m = results["more-memory512"]
    print(
        f"default / --more-memory at 512: {d['wall_s'] / m['wall_s']:.2f}x (target <= 1.15x); "
        f"+{d['peak_mb'] - base:.0f} MB vs +{m['peak_mb'] - base:.0f} MB (default target <= 230 MB)"
    )
    if "default1024" in results:
        r = results["default1024"]
        print(f"default 1024: {r['wall_s']:.1f} s, +{r['peak_mb'] - base:.0f} MB")
    tiles = [
        ("content", None),
        ("style", None),
        (f"(a) original 512, {a['evals']} evals", a["image"]),
        ("(b) preset seed 512", b["image"]),
        ("default 512", results["default512"]["image"]),
    ]
    content, style = _inputs(512)
    content.save(OUT / "content.jpg"), style.save(OUT / "style.jpg")
    tiles[0], tiles[1] = ("content", OUT / "content.jpg"), ("style", OUT / "style.jpg")
    _contact_sheet(tiles, OUT / "contact_sheet.jpg", REPO / "docs" / "contact_sheet.jpg" if args.docs else None)
    print(f"images and contact sheet in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

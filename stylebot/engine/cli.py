"""``python model.py CONTENT STYLE -o OUT``: one job from the command line, with a progress bar; Ctrl-C
saves the image as far as it got. ``--quick`` writes the draft network's picture instead (:mod:`.draft`);
``--init draft`` paints starting from it."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from ..errors import WeightsError
from .draft import DraftUnavailable
from .engine import DEFAULT_WEIGHTS, Engine
from .params import COLOR_METHODS, PRESETS, Progress, StyleParams, output_size

__all__ = ["main"]


class _Bar:
    """A one-line text progress bar on stderr, driven by :class:`Progress`."""

    def __init__(self, width: int = 30) -> None:
        self.width = width
        self.last: Progress | None = None

    def __call__(self, p: Progress) -> None:
        self.last = p
        filled = int(p.fraction * self.width)
        eta = "?" if math.isnan(p.eta) else f"{p.eta:4.0f}s"
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {p.fraction:4.0%} "
            f"step {p.step}/{p.total} @{p.scale}px loss {p.loss:.4g} eta {eta} "
        )
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def _parser() -> argparse.ArgumentParser:
    defaults = {f.name: f.default for f in dataclasses.fields(StyleParams)}
    p = argparse.ArgumentParser(
        description="Render CONTENT in the style of STYLE (Gatys et al., coarse-to-fine, VGG-19 convs 1-5)."
    )
    p.add_argument("content", type=Path, help="content image (any format Pillow reads)")
    p.add_argument("style", type=Path, help="style image")
    p.add_argument("-o", "--output", type=Path, required=True, help="output image path (.jpg, .png ...)")
    p.add_argument(
        "--size",
        type=int,
        default=defaults["size"],
        help="long side of the output in px, capped at the content's own (default %(default)s)",
    )
    p.add_argument(
        "--strength",
        type=float,
        default=defaults["strength"],
        help="style strength, a multiplier on the style weight (default %(default)s)",
    )
    p.add_argument("--keep-colors", action="store_true", help="keep the content's colours (see --color-method)")
    p.add_argument(
        "--color-method",
        choices=COLOR_METHODS,
        default=defaults["color_method"],
        help="with --keep-colors: 'luminance' transfers the style on the luminance only; 'histogram' "
        "recolours the style to the content's colours first (default %(default)s)",
    )
    p.add_argument(
        "--tv-weight",
        type=float,
        default=defaults["tv_weight"],
        help="total-variation weight, smooths noise (default %(default)s; the seed preset has none)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=defaults["seed"],
        help="0: start from the content exactly; another number: a seeded variation (default %(default)s)",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=defaults["preset"],
        help="'default': best result per second; 'seed': the original bot's objective exactly",
    )
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu' or 'cuda'")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="VGG-19 cache (default %(default)s)")
    p.add_argument(
        "--more-memory",
        action="store_true",
        help="CPU: no strips and no memory give-back; about "
        "1.1-1.2x faster per 512 px evaluation for about +380 MB peak",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="write the draft network's picture (about a second; --size, --strength apply) instead of painting",
    )
    p.add_argument(
        "--init",
        choices=INIT_CHOICES,
        default="content",
        help="the painting's start image at the coarsest level: the content, or the draft network's "
        "picture (default %(default)s)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


#: ``--init`` values: what the coarsest level starts from.
INIT_CHOICES = ("content", "draft")


def _draft(content: Image.Image, style: Image.Image, strength: float, size: tuple[int, int] | None = None):
    """The draft network's picture; raises DraftUnavailable when it cannot run here."""
    from .draft import DraftModel

    return DraftModel(threads=os.cpu_count() or 1).stylize(content, style, strength, size=size)


def _quick(args: argparse.Namespace) -> int:
    """``--quick``: the draft at the painting's size (``output_size``), no VGG weights needed."""
    try:
        content, style = Image.open(args.content), Image.open(args.style)
        content.load(), style.load()
        t0 = time.perf_counter()
        out = _draft(content, style, args.strength, output_size(content.size, args.size))
    except (DraftUnavailable, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - t0
    out.save(args.output)
    print(f"{args.output}: {out.width}x{out.height} draft in {elapsed:.2f}s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point. Ctrl-C saves the image as far as it got. Returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.quick:
        return _quick(args)
    params = StyleParams(
        size=args.size,
        strength=args.strength,
        keep_colors=args.keep_colors,
        color_method=args.color_method,
        tv_weight=args.tv_weight,
        preset=args.preset,
        seed=args.seed,
    )
    try:
        engine = Engine(args.weights, args.device, args.threads, low_memory=not args.more_memory)
        content, style = Image.open(args.content), Image.open(args.style)
        content.load(), style.load()
        init = _draft(content, style, args.strength) if args.init == "draft" else None
    except (WeightsError, DraftUnavailable, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    bar = _Bar()
    last_render: list[Callable[[], Image.Image]] = []

    def on_progress(p: Progress) -> None:
        if not args.quiet:
            bar(p)
        # Rendering every step would cost time; keep the renderer of the last evaluated image instead (the
        # optimiser never overwrites an image it has evaluated), and call it after Ctrl-C.
        last_render[:] = [p.render]

    t0 = time.perf_counter()
    status = 0
    try:
        out = engine.stylize(content, style, params, on_progress, init=init)
    except KeyboardInterrupt:
        if not last_render:
            print("\ninterrupted before the first step; nothing saved", file=sys.stderr)
            return 130
        out, status = last_render[0](), 130
    finally:
        if not args.quiet:
            bar.close()
    elapsed = time.perf_counter() - t0
    out.save(args.output)
    losses = engine.evaluate(out, content, style, params)
    print(
        f"{args.output}: {out.width}x{out.height} in {elapsed:.1f}s on {engine.device}; "
        f"style {losses.style:.4g} content {losses.content:.4g} tv {losses.tv:.4g} total {losses.total:.4g}"
    )
    return status

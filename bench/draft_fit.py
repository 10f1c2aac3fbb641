"""bench.draft_fit
~~~~~~~~~~~~~~~~~

How the draft network's fixed 384² square should meet a non-square photo (issue 20.1): "stretch" (squash
to 384², stylise, un-squash) or "pad" (fit inside, reflect-pad, crop). For each non-square pair of
``bench/quality.py``, both drafts at 384 px on the long side are measured the way that benchmark measures
paintings (``quality.measure``: the seed objective's pyramid style loss, content loss, SSIM of the
luminance to the content, colour distance to the style); lower style/content/colour and higher SSIM are
better. Geometric means of stretch/pad ratios are printed at the end.

Usage::

    python bench/draft_fit.py [--pairs cat,rocket] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)


def main() -> int:
    import quality  # bench/quality.py: the pairs and the measures

    from model import Engine
    from stylebot.engine.draft import DraftModel

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--pairs", default="", help="comma-separated pair names (default: every non-square pair)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    engine = Engine(threads=args.threads)
    draft = DraftModel(threads=args.threads or 1)
    wanted = set(filter(None, args.pairs.split(",")))
    ratios: dict[str, list[float]] = {"style": [], "content": [], "ssim": [], "colour": []}
    out = quality.OUT / "draft_fit"
    out.mkdir(parents=True, exist_ok=True)
    print(f"{'pair':15} {'fit':8} {'style':>10} {'content':>10} {'ssim':>6} {'colour':>7}")
    for pair in quality.PAIRS:
        content, style = pair.content(), pair.style()
        if (wanted and pair.name not in wanted) or (not wanted and abs(content.width / content.height - 1) < 0.1):
            continue
        found = {}
        for fit in ("stretch", "pad"):
            img = draft.stylize(content, style, fit=fit)
            img.save(out / f"{pair.name}_{fit}.jpg", quality=90)
            m = quality.measure(engine, img, content, style)
            found[fit] = m
            print(f"{pair.name:15} {fit:8} {m['style']:10.4g} {m['content']:10.4g} {m['ssim']:6.3f} {m['colour']:7.3f}")
        for key in ratios:
            ratios[key].append(found["stretch"][key] / found["pad"][key])
    print("\nstretch / pad, geometric mean over pairs (style, content, colour: lower is better; ssim: higher):")
    for key, values in ratios.items():
        print(f"  {key:8} {math.exp(sum(map(math.log, values)) / len(values)):.3f}  ({len(values)} pairs)")
    print(f"images: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

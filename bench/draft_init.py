"""bench.draft_init
~~~~~~~~~~~~~~~~~~

Painting from the draft (issue 20.2): the default preset started from the content, as today, beside the same
preset started from the draft network's picture (``Engine.stylize(init=...)``, the coarsest level), and a
leaner count of evaluations from the draft. Per pair of ``bench/quality.py``, in one process, side by side:
wall time (the draft's own time counted), the seed objective's pyramid style loss and content loss
(``quality.measure``). Ratios against today's default are geometric means over the pairs.

Usage::

    python bench/draft_init.py [--size 512] [--pairs cat,rocket] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

#: The lean counts tried from the draft: a quarter of the coarse evaluations, about half of each finer level's.
LEAN = {"coarse_evals": 10, "refine_evals": ((320, 8), (640, 4), (1 << 30, 2))}


def main() -> int:
    import quality  # bench/quality.py: the pairs and the measures

    from model import PRESETS, Engine, StyleParams
    from stylebot.engine.draft import DraftModel

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--pairs", default="", help="comma-separated pair names (default: all)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    engine = Engine(threads=args.threads)
    draft = DraftModel(threads=args.threads or 1)
    PRESETS["draft-lean"] = replace(PRESETS["default"], **LEAN)  # type: ignore[arg-type]
    runs = (("default", "default", False), ("draft-start", "default", True), ("draft-lean", "draft-lean", True))
    wanted = set(filter(None, args.pairs.split(",")))
    ratios: dict[str, dict[str, list[float]]] = {name: {"time": [], "style": [], "content": []} for name, *_ in runs}
    print(f"{'pair':15} {'run':12} {'time s':>7} {'style':>10} {'content':>9}")
    for pair in quality.PAIRS:
        if wanted and pair.name not in wanted:
            continue
        content, style = pair.content(), pair.style()
        found = {}
        for name, preset, from_draft in runs:
            t0 = time.perf_counter()
            init = draft.stylize(content, style) if from_draft else None
            out = engine.stylize(content, style, StyleParams(size=args.size, preset=preset), init=init)
            elapsed = time.perf_counter() - t0
            m = quality.measure(engine, out, content, style)
            found[name] = {"time": elapsed, "style": m["style"], "content": m["content"]}
            print(f"{pair.name:15} {name:12} {elapsed:7.1f} {m['style']:10.4g} {m['content']:9.4g}", flush=True)
        for name, *_ in runs:
            for key in ("time", "style", "content"):
                ratios[name][key].append(found[name][key] / found["default"][key])
    print("\nagainst today's default (geometric means; time: lower is faster; style, content: lower is better):")
    for name, by_key in ratios.items():
        gm = {k: math.exp(sum(map(math.log, v)) / len(v)) for k, v in by_key.items()}
        worst = {k: max(v) for k, v in by_key.items()}
        print(
            f"  {name:12} time {gm['time']:.3f}  style {gm['style']:.3f} (worst {worst['style']:.2f})"
            f"  content {gm['content']:.3f} (worst {worst['content']:.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

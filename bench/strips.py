"""bench.strips
~~~~~~~~~~~~

What strip tiling and glibc's mmap threshold cost and save, per objective evaluation of one level.

Each variant runs in a fresh subprocess (so allocator state and peak RSS are its own) on the sample pair at
``--size`` (default 512²), the default preset's objective, started from the content:

* ``whole``: one autograd graph for the whole image (``Engine(low_memory=False)``'s path);
* ``strips``: stage-wise strips with the mmap threshold the engine picks for the level (the default job);
* ``strips-1mb``: the same strips with a 1 MB threshold (every feature map is mmap-served);
* ``strips-heap``: the same strips with a 32 MB threshold (everything from the heap).

For each: seconds per evaluation, peak RSS above the RSS just before the timed evaluations (one warm-up
evaluation first), user and system CPU seconds, and the time ratio to ``whole``. The losses must agree
(the strips are exact); they are printed so that a difference would show.

Usage::

    python bench/strips.py [--size 512] [--evals 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"

from memory import _PEAK  # noqa: E402 - one RSS probe for all the benchmarks

VARIANTS = ("whole", "strips", "strips-1mb", "strips-heap")

JOB = """
import sys, time
sys.path.insert(0, {repo!r})
from PIL import Image
from model import Engine, StyleParams
from stylebot.engine import platform, strips

variant, size = {variant!r}, {size}
engine = Engine(device="cpu", threads={threads}, low_memory=variant != "whole")
content = Image.open({content!r}).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
style = Image.open({style!r}).convert("RGB")
recipe = StyleParams().recipe
if engine.low_memory:
    threshold = {{"strips": strips.mmap_threshold((size, size), engine.tile_px),
                 "strips-1mb": 1 << 20, "strips-heap": 32 << 20}}[variant]
    platform.malloc_for(threshold)
objective, x = engine._objective(recipe, content, style, (size, size), 1.0, StyleParams().tv_weight, False)
objective.value_and_grad(x)  # warm-up: oneDNN primitives, allocator
before = status_mb('VmRSS')
open('/proc/self/clear_refs', 'w').write('5')  # reset VmHWM to the current RSS
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range({evals}):
    losses, _ = objective.value_and_grad(x)
wall = (time.perf_counter() - t0) / {evals}
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"s_per_eval": wall, "peak_mb": peak_mb() - before, "loss": losses.total,
                  "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
                  "tiled": objective._tiled(x)}}))
"""


def run(variant: str, args: argparse.Namespace) -> dict:
    code = _PEAK + JOB.format(
        repo=str(REPO),
        variant=variant,
        size=args.size,
        threads=args.threads,
        evals=args.evals,
        content=str(args.content),
        style=str(args.style),
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=int, default=512, help="side of the square level (default %(default)s)")
    p.add_argument("--evals", type=int, default=4, help="timed evaluations per variant (default %(default)s)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--content", type=Path, default=SAMPLES / "content_ballerina.jpg")
    p.add_argument("--style", type=Path, default=SAMPLES / "style_cubist.jpg")
    args = p.parse_args(argv)
    results = {}
    for variant in VARIANTS:
        r = results[variant] = run(variant, args)
        ratio = r["s_per_eval"] / results["whole"]["s_per_eval"]
        print(
            f"{variant:12s} {args.size}²: {r['s_per_eval']:.3f} s/eval ({ratio:.2f}x whole), peak "
            f"+{r['peak_mb']:.0f} MB, CPU user {r['user_s']:.1f} s sys {r['sys_s']:.1f} s, loss {r['loss']:.6g}"
            + ("" if r["tiled"] or variant == "whole" else "  (level not tiled at this size)"),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

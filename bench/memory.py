"""bench.memory
~~~~~~~~~~~~

Peak RSS of a whole CLI-equivalent style-transfer job, above the baseline of the imports the CLI really makes
(``torch``, ``PIL``, ``numpy``; not torchvision), for the default engine and ``--more-memory`` side by side.

Each measurement runs in a fresh subprocess and reads its own peak RSS (``VmHWM`` from /proc/self/status,
falling back to ``ru_maxrss``) at the end, so the figures are the job's true high-water marks:

* baseline: ``import torch, numpy, PIL`` and nothing else;
* job: the same imports, then what ``python model.py CONTENT STYLE -o OUT --size N`` does: load the
  engine, open the images, stylise, save the result; once as the default (strips, memory given back) and
  once as ``--more-memory`` (``Engine(low_memory=False)``), alternating for ``--rounds`` rounds.

The engine's share is job minus baseline; the targets for the default 512 px job are <= 230 MB, so that the
whole process fits a 512 MB dyno with the CPU wheels, and a wall time <= 1.15x ``--more-memory``'s
(medians of the rounds).

Usage::

    python bench/memory.py [--size 512] [--preset default] [--threads 2] [--rounds 1] [--no-more-memory]
                           [--torchvision]

``--torchvision`` adds ``import torchvision`` to both processes (the old baseline; the engine itself never
imports it). ``--torch-only`` is accepted for old command lines and is now the default.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"

_PEAK = """
import json, resource
def status_mb(field):
    try:
        for line in open('/proc/self/status'):
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
def peak_mb():
    peak = status_mb('VmHWM')
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

BASELINE = (
    _PEAK
    + """
import numpy, torch{vision}
from PIL import Image
print(json.dumps({{"peak_mb": peak_mb(), "torch": torch.__version__}}))
"""
)

JOB = (
    _PEAK
    + """
import sys, time, numpy, torch{vision}
sys.path.insert(0, {repo!r})
from PIL import Image
from model import Engine, StyleParams
engine = Engine(device="cpu", threads={threads}, low_memory={low_memory})
content, style = Image.open({content!r}).convert("RGB"), Image.open({style!r})
if max(content.size) < {size}:  # the sample is 444 px: upscale it so the job really is {size} px
    f = {size} / max(content.size)
    content = content.resize((round(content.width * f), round(content.height * f)), Image.Resampling.LANCZOS)
t = time.perf_counter()
out = engine.stylize(content, style, StyleParams(size={size}, preset={preset!r}))
wall = time.perf_counter() - t
out.save({out!r})
print(json.dumps({{"peak_mb": peak_mb(), "wall_s": wall, "size": out.size}}))
"""
)


def run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--preset", default="default")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--content", type=Path, default=SAMPLES / "content_ballerina.jpg")
    p.add_argument("--style", type=Path, default=SAMPLES / "style_cubist.jpg")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds of (default, --more-memory)")
    p.add_argument("--no-more-memory", action="store_true", help="run the default engine only")
    p.add_argument("--torchvision", action="store_true", help="also import torchvision in baseline and job")
    p.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)  # now the default
    args = p.parse_args(argv)
    vision = ", torchvision" if args.torchvision else ""
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    base = run(BASELINE.format(vision=vision))
    print(f"torch {base['torch']}: baseline (import torch, numpy, PIL{vision}): peak RSS {base['peak_mb']:.0f} MB")
    kinds = [("default", True)] + ([] if args.no_more_memory else [("--more-memory", False)])
    walls: dict[str, list[float]] = {k: [] for k, _ in kinds}
    shares: dict[str, list[float]] = {k: [] for k, _ in kinds}
    for r in range(args.rounds):
        for kind, low_memory in kinds:
            job = run(
                JOB.format(
                    vision=vision,
                    repo=str(REPO),
                    threads=args.threads,
                    low_memory=low_memory,
                    content=str(args.content),
                    style=str(args.style),
                    size=args.size,
                    preset=args.preset,
                    out=str(out_dir / f"memory_{args.preset}_{args.size}.jpg"),
                )
            )
            share = job["peak_mb"] - base["peak_mb"]
            walls[kind].append(job["wall_s"])
            shares[kind].append(share)
            print(
                f"round {r + 1} {kind:13s} ({args.preset}, {job['size'][0]}x{job['size'][1]}, "
                f"{args.threads} threads): wall {job['wall_s']:.1f} s, peak RSS {job['peak_mb']:.0f} MB "
                f"(+{share:.0f})",
                flush=True,
            )
    share = max(shares["default"])
    print(f"engine's share (default): {share:.0f} MB (target <= 230 MB) -> {'OK' if share <= 230 else 'OVER'}")
    if not args.no_more_memory:
        ratio = statistics.median(walls["default"]) / statistics.median(walls["--more-memory"])
        print(
            f"default / --more-memory wall time: {ratio:.2f}x (target <= 1.15x) -> "
            f"{'OK' if ratio <= 1.15 else 'OVER'}; --more-memory's share {max(shares['--more-memory']):.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

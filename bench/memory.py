"""bench.memory
~~~~~~~~~~~~

Peak RSS of a whole CLI-equivalent style-transfer job, above the baseline of ``import torch, torchvision``.

Each measurement runs in a fresh subprocess and reads its own peak RSS (``VmHWM`` from /proc/self/status,
falling back to ``ru_maxrss``) at the end, so the figures are the job's true high-water marks:

* baseline: ``import torch, torchvision`` and nothing else (~650 MB with the CUDA build, ~220 MB with
  the CPU wheels);
* job: the same imports, then what ``python model.py CONTENT STYLE -o OUT --size N`` does: load the
  engine, open the images, stylise, save the result.

The engine's share is job minus baseline; the target for the default 512 px job is <= 230 MB, so that the
whole process fits a 512 MB dyno with the CPU wheels.

Usage::

    python bench/memory.py [--size 512] [--preset default] [--threads 2] [--torch-only]

``--torch-only`` leaves torchvision out of both processes, for a venv with the CPU wheels (torch
2.13.0+cpu), beside which PyPI's torchvision does not import; the engine itself never imports it.
"""

from __future__ import annotations

import argparse
import json
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

BASELINE = _PEAK + """
import torch{vision}
print(json.dumps({{"peak_mb": peak_mb(), "torch": torch.__version__}}))
"""

JOB = _PEAK + """
import sys, time, torch{vision}
sys.path.insert(0, {repo!r})
from PIL import Image
from model import Engine, StyleParams
engine = Engine(device="cpu", threads={threads})
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


def run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--preset", default="default")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--content", type=Path, default=SAMPLES / "content_ballerina.jpg")
    p.add_argument("--style", type=Path, default=SAMPLES / "style_cubist.jpg")
    p.add_argument("--torch-only", action="store_true", help="baseline and job import torch but not torchvision")
    args = p.parse_args(argv)
    vision = "" if args.torch_only else ", torchvision"
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    base = run(BASELINE.format(vision=vision))
    job = run(JOB.format(vision=vision, repo=str(REPO), threads=args.threads, content=str(args.content), style=str(args.style),
                         size=args.size, preset=args.preset, out=str(out_dir / f"memory_{args.preset}_{args.size}.jpg")))
    share = job["peak_mb"] - base["peak_mb"]
    print(f"torch {base['torch']}: baseline (import torch{vision}): peak RSS {base['peak_mb']:.0f} MB")
    print(f"job ({args.preset}, {job['size'][0]}x{job['size'][1]}, {args.threads} threads): peak RSS "
          f"{job['peak_mb']:.0f} MB, wall {job['wall_s']:.1f} s")
    print(f"engine's share: {share:.0f} MB (target <= 230 MB) -> {'OK' if share <= 230 else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

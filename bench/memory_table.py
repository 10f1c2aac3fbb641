"""bench.memory_table
~~~~~~~~~~~~~~~~~~

The peak RSS of one job per output size, bf16 and fp32, as the bot's memory model
(``stylebot/hostmem.py``) uses it: the table of DESIGN.md "Memory that fits the host".

Each cell runs in a fresh subprocess that does what a bot worker does: import the bot's modules
(``stylebot.app``: telebot, Pillow, the store) and load the engine with the VGG weights, then read its
resident set (``VmRSS``: the bot's *base*); then paint one job at ``--size`` on a square content (the
sample upscaled to N×N: a square has the most pixels for a long side of N, so it is the worst case) and
read its high-water mark (``VmHWM``). The job's *share* is HWM minus base. The first job of a process is
measured, so torch's one-time costs (the optimiser, oneDNN's caches) are in the share.

fp32 is forced with ``STYLEBOT_CPU_BF16=0``; bf16 is what a CPU with native bf16 (AVX512-BF16 or AMX)
runs by default, and is skipped (said so) on a CPU without it. Run it with the interpreter whose torch you
want to measure, e.g. the CPU wheels::

    python3 -m venv /tmp/cpuvenv && /tmp/cpuvenv/bin/pip install torch==2.13.0 pillow numpy \
        pyTelegramBotAPI requests python-dotenv pillow-heif
    /tmp/cpuvenv/bin/python bench/memory_table.py [--sizes 256,512,768,1024] [--threads 2] [--preset default]

Output: a markdown table on stdout and ``bench/out/memory_table.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"
OUT = REPO / "bench" / "out"

CELL = """
import json, sys, time
sys.path.insert(0, {repo!r})
def status_mb(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1]) / 1024
import stylebot.app  # what the bot process imports (telebot, Pillow, the store, the chat flow)
import torch
from PIL import Image
from stylebot.engine import Engine, StyleParams
from stylebot.engine import platform as plat
engine = Engine({weights!r}, device="cpu", threads={threads})
content = Image.open({content!r}).convert("RGB").resize(({size}, {size}), Image.Resampling.LANCZOS)
style = Image.open({style!r}).convert("RGB")
base = status_mb("VmRSS")
t = time.perf_counter()
out = engine.stylize(content, style, StyleParams(size={size}, preset={preset!r}))
wall = time.perf_counter() - t
print(json.dumps({{"base_mb": base, "peak_mb": status_mb("VmHWM"), "wall_s": wall,
                  "bf16": bool(engine._bf16_ok), "torch": torch.__version__, "out": list(out.size)}}))
"""


def cell(size: int, fp32: bool, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    env.pop("STYLEBOT_CPU_BF16", None)
    if fp32:
        env["STYLEBOT_CPU_BF16"] = "0"
    code = CELL.format(
        repo=str(REPO),
        weights=str(REPO / "vgg19_cache.pth"),
        threads=args.threads,
        content=str(SAMPLES / "content_ballerina.jpg"),
        style=str(SAMPLES / "style_cubist.jpg"),
        size=size,
        preset=args.preset,
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    p.add_argument("--sizes", default="256,512,768,1024")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--preset", default="default")
    p.add_argument("--only", choices=("bf16", "fp32"), help="one column only")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = [k for k in ("bf16", "fp32") if args.only in (None, k)]
    rows: list[dict] = []
    for size in sizes:
        for kind in kinds:
            r = cell(size, kind == "fp32", args)
            if kind == "bf16" and not r["bf16"]:
                print(f"{size} px bf16: this CPU has no native bf16 (ran fp32); not a bf16 figure", flush=True)
                continue
            r.update(size=size, dtype=kind, share_mb=r["peak_mb"] - r["base_mb"])
            rows.append(r)
            print(
                f"{size:5d} px {kind}: base {r['base_mb']:.0f} MiB, peak {r['peak_mb']:.0f} MiB, "
                f"share +{r['share_mb']:.0f} MiB, {r['wall_s']:.1f} s",
                flush=True,
            )
    torch_version = rows[0]["torch"] if rows else "?"
    print(f"\ntorch {torch_version}, Python {platform.python_version()}, {args.threads} threads, preset {args.preset}")
    print("| size | dtype | bot base (MiB) | peak (MiB) | job's share (MiB) | wall (s) |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']} | {r['dtype']} | {r['base_mb']:.0f} | {r['peak_mb']:.0f} | "
            f"+{r['share_mb']:.0f} | {r['wall_s']:.1f} |"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "memory_table.json").write_text(
        json.dumps({"torch": torch_version, "threads": args.threads, "preset": args.preset, "rows": rows}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

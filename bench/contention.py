"""bench.contention
~~~~~~~~~~~~~~~~~~

The default job clean and beside one busy neighbour, for the adaptive engine and for a fixed-threads
baseline, side by side in one invocation (issue 13: one busy single-threaded process made the 512 px job
2.4x slower on a 2-core host; the target is at most 1.5x).

Each job runs in a fresh subprocess, like ``python model.py`` (imports torch, PIL, numpy; not torchvision),
on the shared sample pair (the content upscaled so the job really is ``--size`` px). The neighbour is
another process running a single-threaded torch matmul loop, started before a "busy" job and killed after
it. Runs alternate (per round: adaptive clean, adaptive busy, fixed clean, fixed busy) so that slow drift on
a shared machine hits every column alike; each wall time is printed as it comes, then busy/clean ratios
from the medians. The adaptive engine logs its per-level choice; ``--log`` prints those lines.

Usage::

    python bench/contention.py [--size 512] [--rounds 2] [--threads 2] [--log]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"

#: The neighbour: one thread of torch work, forever (killed by the benchmark).
BUSY = "import torch\ntorch.set_num_threads(1)\na = torch.randn(384, 384)\nwhile True:\n    a @ a\n"

JOB = """
import json, logging, resource, sys, time
import numpy, torch
from PIL import Image
sys.path.insert(0, {repo!r})
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
from model import Engine, StyleParams
engine = Engine(device="cpu", threads={threads}, adaptive={adaptive})
content = Image.open({content!r}).convert("RGB")
style = Image.open({style!r}).convert("RGB")
if max(content.size) < {size}:
    f = {size} / max(content.size)
    content = content.resize((round(content.width * f), round(content.height * f)), Image.Resampling.LANCZOS)
t = time.perf_counter()
out = engine.stylize(content, style, StyleParams(size={size}))
wall = time.perf_counter() - t
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"wall_s": wall, "size": out.size, "peak_mb": peak_mb}}))
"""


def run_job(size: int, threads: int, adaptive: bool, busy: bool, show_log: bool) -> dict:
    """One job in a fresh process, with the neighbour running beside it when ``busy``."""
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        if neighbour is not None:
            time.sleep(2.0)  # the neighbour has imported torch and is spinning before the job starts
        code = JOB.format(
            repo=str(REPO),
            threads=threads,
            adaptive=adaptive,
            size=size,
            content=str(SAMPLES / "content_ballerina.jpg"),
            style=str(SAMPLES / "style_cubist.jpg"),
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"job failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["log"] = [line for line in proc.stderr.splitlines() if "tuning: level" in line]
    if show_log:
        for line in result["log"]:
            print("    " + line)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Default job clean vs beside one busy thread: adaptive vs fixed threads.")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--rounds", type=int, default=2, help="rounds of (clean, busy) per engine")
    p.add_argument("--threads", type=int, default=2, help="the engine's full thread count")
    p.add_argument("--only", choices=["adaptive", "fixed"], help="run one engine only")
    p.add_argument("--log", action="store_true", help="print the adaptive engine's per-level choices")
    args = p.parse_args(argv)
    modes = [m for m in ("adaptive", "fixed") if args.only in (None, m)]
    walls: dict[tuple[str, str], list[float]] = {(m, c): [] for m in modes for c in ("clean", "busy")}
    print(f"default preset at {args.size} px, {args.threads} threads, neighbour: one single-threaded torch loop")
    for r in range(args.rounds):
        for mode in modes:
            for cond in ("clean", "busy"):
                adaptive = mode == "adaptive"
                res = run_job(args.size, args.threads, adaptive, cond == "busy", args.log and adaptive)
                walls[(mode, cond)].append(res["wall_s"])
                print(
                    f"round {r + 1} {mode:8s} {cond:5s}: {res['wall_s']:6.1f} s  (peak RSS {res['peak_mb']:.0f} MB)",
                    flush=True,
                )
    print("--- busy/clean (medians)")
    for mode in modes:
        clean, busy = statistics.median(walls[(mode, "clean")]), statistics.median(walls[(mode, "busy")])
        ratio = busy / clean
        print(
            f"{mode:8s}: clean {clean:6.1f} s, busy {busy:6.1f} s -> {ratio:.2f}x "
            f"({'OK' if ratio <= 1.5 else 'OVER'} the 1.5x target)"
        )
    if len(modes) == 2:
        for cond in ("clean", "busy"):
            a, f = statistics.median(walls[("adaptive", cond)]), statistics.median(walls[("fixed", cond)])
            print(f"{cond}: adaptive / fixed = {a / f:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

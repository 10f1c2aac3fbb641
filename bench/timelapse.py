"""What the timelapse costs the engine: painting time with frame capture versus without.

    python bench/timelapse.py [--size 512] [--pairs 2] [--frames 30]

Runs alternate (without, with, without, with, ...) on the same content/style,
so a machine that speeds up or slows down over the runs hurts both sides
alike. Both sides pass a progress callback (the bot always has one), so only
the capture differs. Prints each run, the ratio of the medians (the issue's
budget: at most 1.05), the capture's own time on the painting thread as a
share of the run (a noise-free view of the same cost), and what encoding the
GIF afterwards takes (off the engine's clock: it runs after painting).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from botkit import decode, picture, weights_path  # noqa: E402
from PIL import Image  # noqa: E402

SAMPLES = ROOT.parent / "shared" / "samples"
BUDGET = 1.05


def load(name: str, fallback: bytes) -> Image.Image:
    path = SAMPLES / name
    return Image.open(path).convert("RGB") if path.is_file() else decode(fallback).convert("RGB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="long side of the output (px)")
    parser.add_argument("--pairs", type=int, default=2, help="alternating pairs of runs (median kept)")
    parser.add_argument("--frames", type=int, default=30, help="frames the recorder captures")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if weights_path() is None:
        print("VGG weights not found: set STYLEBOT_WEIGHTS", file=sys.stderr)
        return 2

    import model
    from stylebot.jobs.timelapse import FrameRecorder, encode_gif

    engine = model.Engine(weights_path(), args.device)
    content = load("content_ballerina.jpg", picture((640, 480)))
    style = load("style_cubist.jpg", picture((480, 480), (30, 30, 200)))
    params = model.StyleParams(size=args.size)
    engine.stylize(content, style, model.StyleParams(size=64))  # warm-up: first-call costs in neither column

    seen: list[float] = []

    def progress_only(progress: Any) -> None:
        """What the bot's status reporter does per evaluation at the least: keep the numbers."""
        seen[:] = [progress.fraction]

    plain: list[float] = []
    captured: list[float] = []
    spent: list[float] = []
    recorder = FrameRecorder(args.frames)
    result: Image.Image | None = None
    for pair in range(args.pairs):
        start = time.perf_counter()
        engine.stylize(content, style, params, on_progress=progress_only)
        plain.append(time.perf_counter() - start)

        recorder = FrameRecorder(args.frames)
        start = time.perf_counter()
        result = engine.stylize(content, style, params, on_progress=recorder.along(progress_only))
        captured.append(time.perf_counter() - start)
        spent.append(recorder.spent)
        print(
            f"pair {pair + 1}: without {plain[-1]:7.2f} s   with {captured[-1]:7.2f} s   "
            f"({len(recorder.frames)} frames, capture {recorder.spent * 1000:.0f} ms)",
            flush=True,
        )

    assert result is not None
    start = time.perf_counter()
    gif = encode_gif(recorder.frames, result)
    encode_s = time.perf_counter() - start
    ratio = statistics.median(captured) / statistics.median(plain)
    share = statistics.median(s / c for s, c in zip(spent, captured))
    verdict = "within" if ratio <= BUDGET else "OVER"
    print(
        f"size {args.size}px on {engine.device}: timelapse overhead {ratio:5.3f}x "
        f"({(ratio - 1) * 100:+.1f} %; {verdict} the {(BUDGET - 1) * 100:.0f} % budget)"
    )
    print(f"capture time on the painting thread: {share * 100:.2f} % of the run")
    print(
        f"GIF: {len(gif or b'') / 1024:.0f} KB, encoded in {encode_s:.2f} s after painting"
        f"{'' if gif else ' (did not fit: no timelapse)'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast the bot answers /start while the worker paints a 512 px job, versus idle.

    python bench/bot_latency.py [--size 512] [--n 40]

The whole bot runs in this process (handlers, SQLite, worker thread, real
engine) against the local Bot API emulator. Latency is measured from the
moment the user's message is queued at the emulator to the moment the bot's
sendMessage reply reaches it: long polling, dispatch, the handler, SQLite and
the HTTP call, everything a user would wait for. Figures are printed side by
side from one run, with their ratio; the machine is shared, so compare ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


from botkit import User, picture, weights_path  # noqa: E402

from stylebot.playground.emulator import BotAPIEmulator  # noqa: E402
from stylebot.playground.emulator.models import Call  # noqa: E402

SAMPLES = ROOT.parent / "shared" / "samples"


def sample(name: str, fallback: bytes) -> bytes:
    path = SAMPLES / name
    return path.read_bytes() if path.is_file() else fallback


def measure(api: BotAPIEmulator, user: User, n: int) -> list[float]:
    """Seconds from each /start to the bot's answer."""

    def answer_after(before: int) -> Callable[[], Call | None]:
        """The bot's first answer to ``user`` among the calls past ``before`` (bound per message)."""
        return lambda: next(
            (c for c in api.calls("sendMessage")[before:] if c.params.get("chat_id") == str(user.id)), None
        )

    latencies = []
    for _ in range(n):
        before = len(api.calls("sendMessage"))
        sent = time.time()
        user.say("/start")
        call = api.wait_for(answer_after(before), 30)
        latencies.append(call.time - sent)
        time.sleep(0.05)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="output size of the background job (px)")
    parser.add_argument("--n", type=int, default=40, help="/start messages per condition")
    args = parser.parse_args()
    if weights_path() is None:
        print("VGG weights not found: set STYLEBOT_WEIGHTS", file=sys.stderr)
        return 2

    from stylebot import app as bot_main
    from stylebot.config import Config

    with BotAPIEmulator() as api, tempfile.TemporaryDirectory() as data:
        config = Config(
            token=api.token, api_url=api.base_url, data_dir=Path(data), weights=weights_path(), image_size=args.size
        )
        app = bot_main.App(config).start()
        try:
            probe, painter = User(api, 1), User(api, 2)
            measure(api, probe, 3)  # warm up connections and SQLite
            idle = measure(api, probe, args.n)

            painter.say("/start")
            painter.photo(sample("content_ballerina.jpg", picture((640, 480))))
            painter.wait_seen("Now send")
            painter.photo(sample("style_cubist.jpg", picture((480, 480), (30, 30, 200))))
            painter.wait_seen("Painting", timeout=60)
            busy = measure(api, probe, args.n)
            still_running = not painter.results()
        finally:
            app.stop()

    def row(name: str, values: list[float]) -> str:
        return (
            f"{name:<22} p50 {percentile(values, 0.5) * 1000:7.1f} ms   p99 {percentile(values, 0.99) * 1000:7.1f} ms"
            f"   mean {statistics.mean(values) * 1000:7.1f} ms   n={len(values)}"
        )

    print(f"/start reply latency, bot in-process, emulator on 127.0.0.1 (background job: {args.size} px)")
    print(row("worker idle", idle))
    print(row("worker painting", busy))
    print(
        f"ratio busy/idle        p50 {percentile(busy, 0.5) / percentile(idle, 0.5):5.2f}x   "
        f"p99 {percentile(busy, 0.99) / percentile(idle, 0.99):5.2f}x"
    )
    print(
        f"target: p99 < 200 ms while painting -> {'met' if percentile(busy, 0.99) < 0.2 else 'NOT met'}"
        + ("" if still_running else "  (warning: the job finished before all samples were taken)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

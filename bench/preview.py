"""What the live preview costs the engine: painting time with previews on versus off.

    python bench/preview.py [--size 512] [--repeat 1]

Three runs side by side on the same content/style: no progress callback at
all, the real ``runner.StatusReporter`` with previews off (text progress
only), and with previews at the bot's settings (every 10 s or 20 % of the
work). The reporter posts to the local Bot API emulator from its own thread,
exactly as in production; only the engine's wall time is compared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import telebot  # noqa: E402
from botkit import decode, picture, weights_path  # noqa: E402
from PIL import Image  # noqa: E402

from stylebot.playground.emulator import BotAPIEmulator  # noqa: E402

SAMPLES = ROOT.parent / "shared" / "samples"


def load(name: str, fallback: bytes) -> Image.Image:
    path = SAMPLES / name
    return Image.open(path).convert("RGB") if path.is_file() else decode(fallback).convert("RGB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=1, help="runs per condition (best is kept)")
    args = parser.parse_args()
    if weights_path() is None:
        print("VGG weights not found: set STYLEBOT_WEIGHTS", file=sys.stderr)
        return 2

    import model
    from stylebot.chat.delivery import ChatDelivery
    from stylebot.jobs.job import Job
    from stylebot.jobs.run import Context
    from stylebot.jobs.status import StatusReporter
    from stylebot.store.sqlite_store import Store
    from stylebot.tg import Telegram, use_api_url

    engine = model.Engine(weights_path())
    content = load("content_ballerina.jpg", picture((640, 480)))
    style = load("style_cubist.jpg", picture((480, 480), (30, 30, 200)))
    params = model.StyleParams(size=args.size)

    with BotAPIEmulator() as api, tempfile.TemporaryDirectory() as data:
        use_api_url(api.base_url)
        api.send_text(1, "hi")  # the chat exists, as it would in production
        tg = Telegram(telebot.TeleBot(api.token, threaded=False))
        store = Store(Path(data) / "db.sqlite3")

        def run(preview: bool | None) -> tuple[float, int]:
            if preview is None:
                start = time.perf_counter()
                engine.stylize(content, style, params)
                return time.perf_counter() - start, 0
            ctx = Context(
                store,
                tg,
                engine,
                params=lambda job: params,
                results_dir=Path(data),
                delivery=ChatDelivery(tg, store),
                preview_every=10.0 if preview else float("inf"),
                preview_step=0.2 if preview else 2.0,
            )
            job = Job(user_id=1, chat_id=1, content_file_id="-", style_file_id="-", size=args.size)
            store.create_job(job)
            reporter = StatusReporter(ctx, job)
            reporter.start()
            before = len(api.calls("editMessageMedia")) + len(api.calls("sendPhoto"))
            start = time.perf_counter()
            engine.stylize(content, style, params, on_progress=reporter.on_progress)
            elapsed = time.perf_counter() - start
            reporter.close()
            return elapsed, len(api.calls("editMessageMedia")) + len(api.calls("sendPhoto")) - before

        results = {}
        for name, preview in (("no callback", None), ("progress, no preview", False), ("progress + preview", True)):
            runs = [run(preview) for _ in range(args.repeat)]
            results[name] = min(runs)
            print(f"{name:<22} {results[name][0]:7.1f} s   previews sent: {results[name][1]}", flush=True)

    base = results["progress, no preview"][0]
    with_preview = results["progress + preview"][0]
    print(
        f"preview overhead: {with_preview / base:5.3f}x  ({(with_preview / base - 1) * 100:+.1f} %; target < 5 %)"
        f"   callback overhead vs none: {base / results['no callback'][0]:5.3f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

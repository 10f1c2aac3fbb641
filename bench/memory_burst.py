"""bench.memory_burst
~~~~~~~~~~~~~~~~~~

The bot's peak RSS during a burst of users at default settings under a memory limit: the target of
issue 18 part 2 (``STYLEBOT_MEMORY_LIMIT=512M``, CPU wheels: 512 px stays the default, and the bot's
peak RSS during a burst of 50 users stays under 480 MB).

The bot runs as an operator runs it (``python main.py``, its own process, default settings, the
limit in its environment) against the Bot API emulator of the playground. ``--users`` users each send
/start, a 1280×960 photo (Telegram's usual photo size) and a 512² style, all at once; each waits for the
bot's answer to the previous step, as a person would. The bench then waits until ``--results`` results
have been delivered (jobs run one at a time on the limit's one worker, so all 50 would take 50 jobs'
time; the peak is set by the arrivals, decoded in the handlers, beside the running job) and reads the
bot's ``VmHWM`` from /proc: the kernel's own high-water mark of its resident set.

Usage (with the interpreter whose torch is measured, e.g. the CPU wheels of bench/memory_table.py)::

    /tmp/cpuvenv/bin/python bench/memory_burst.py [--users 50] [--limit 512M] [--results 3]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from botkit import User, weights_path  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from stylebot.playground.emulator import BotAPIEmulator  # noqa: E402

TARGET_MB = 480


def photo(seed: int, size: tuple[int, int]) -> bytes:
    """A JPEG with shapes and noise, so that it compresses and decodes like a photo."""
    rng = random.Random(seed)
    image = Image.effect_noise(size, 40).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        r = rng.randrange(20, 200)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=87)
    return out.getvalue()


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--limit", default="512M", help="STYLEBOT_MEMORY_LIMIT for the bot")
    p.add_argument("--results", type=int, default=3, help="results to wait for before reading the peak")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the bot's environment (to compare)")
    args = p.parse_args(argv)
    weights = weights_path()
    if weights is None:
        print("VGG weights not found (see README)")
        return 2
    with tempfile.TemporaryDirectory() as tmp, BotAPIEmulator() as api:
        log_path = Path(tmp) / "bot.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STYLEBOT_", "TELEGRAM_"))}
        env.update(
            TELEGRAM_BOT_TOKEN=api.token,
            TELEGRAM_API_URL=api.base_url,
            STYLEBOT_DATA_DIR=str(Path(tmp) / "data"),
            STYLEBOT_WEIGHTS=str(weights),
            STYLEBOT_MEMORY_LIMIT=args.limit,
            PYTHONUNBUFFERED="1",
        )
        env.update(item.split("=", 1) for item in args.env)
        with open(log_path, "wb") as log:
            bot = subprocess.Popen(
                [sys.executable, str(REPO / "main.py")], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            api.wait_for(lambda: api.calls("getUpdates"), 120, what="the bot to poll")
            idle_kb = status_kb(bot.pid, "VmRSS")
            users = [User(api, 5000 + n) for n in range(args.users)]
            contents = [photo(n, (1280, 960)) for n in range(args.users)]
            style = photo(999, (512, 512))
            answered: list[int] = []
            errors: list[str] = []

            def chat(n: int, user: User) -> None:
                try:
                    user.say("/start")
                    user.wait_text("Send me the photo", timeout=args.timeout)
                    user.photo(contents[n])
                    user.wait_seen("Now send", timeout=args.timeout)
                    user.photo(style)
                    user.wait_seen("queue", timeout=args.timeout)
                    answered.append(user.id)
                except Exception as exc:  # reported below: a user without an answer fails the target
                    errors.append(f"user {user.id}: {str(exc).splitlines()[0]}")

            t0 = time.monotonic()
            threads = [threading.Thread(target=chat, args=(n, u)) for n, u in enumerate(users)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            burst_s = time.monotonic() - t0
            burst_kb = status_kb(bot.pid, "VmHWM")
            api.wait_for(
                lambda: sum(len(u.results()) for u in users) >= args.results,
                args.timeout,
                what=f"{args.results} results",
            )
            wall = time.monotonic() - t0
            peak_kb = status_kb(bot.pid, "VmHWM")
        finally:
            bot.send_signal(signal.SIGTERM)
            try:
                bot.wait(30)
            except subprocess.TimeoutExpired:
                bot.kill()
        lines = log_path.read_text(errors="replace").splitlines()
    memory_line = next((line for line in lines if "memory limit" in line), "(no memory line in the log)")
    peak_mib, peak_mb = peak_kb / 1024, peak_kb * 1024 / 1e6
    print(memory_line)
    print(
        f"{args.users} users, limit {args.limit}: {len(answered)} answered (queued) in {burst_s:.1f} s, "
        f"{args.results} results after {wall:.1f} s; bot idle RSS {idle_kb / 1024:.0f} MiB, "
        f"peak when all were answered {burst_kb / 1024:.0f} MiB{' ' + ' '.join(args.env) if args.env else ''}"
    )
    for error in errors[:5]:
        print("  not answered:", error)
    print(
        f"bot's peak RSS (VmHWM): {peak_mib:.0f} MiB = {peak_mb:.0f} MB (target < {TARGET_MB} MB) -> "
        f"{'OK' if peak_mb < TARGET_MB and not errors else 'OVER' if peak_mb >= TARGET_MB else 'UNANSWERED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What decoding a big image costs in memory: before bounded decoding, now, and pyvips, side by side.

    python bench/decode_memory.py [--senders 32] [--no-bot]

Part 1, one process per row (a fresh ``python -c``, so each peak is its own): the RSS a
decode adds over the process's imports (VmHWM after a reset, minus VmRSS then), and its
wall time, for

* ``before``: the decoding this bot did before (``load_image`` of commit 56c473e, copied
  below): full-size decode, full-size RGBA/RGBa/RGB copies to flatten and resize;
* ``now``: :func:`stylebot.images.verify` (the check on arrival) and
  :func:`stylebot.images.load_image` (the worker, ``max_side=1024``: 512 px jobs), inside
  the default decode budget;
* ``pyvips``: ``thumbnail_buffer`` (shrinks PNG while reading, in sequential strips), only
  where pyvips is installed (``pip install -r requirements-bench.txt``): the alternative we
  measured and did not adopt.

on a 16 MP RGBA PNG and the 7000×7000 RGBA PNG of issue 18, once alone and once as
``--senders`` threads decoding at once (the arrival check of that many users).

Part 2 (``--no-bot`` skips it): the bot itself (``main.py``, default settings: 512 px, one
worker, the default budget) against the local Bot API emulator: ``--senders`` users send
the 7000×7000 PNG as a file at the same moment and one more user sends /start. Printed:
the bot's RSS growth over its state after start-up, how long /start took, how many
senders got an answer and what it was, and how long the last one waited.

The machine may be shared: figures in one run are comparable with each other.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

MB = 1024 * 1024

#: The decode of commit 56c473e (stylebot/images.py, load_image and to_rgb), for the "before" rows.
_BEFORE = """
from PIL import Image, ImageOps
def to_rgb(image):
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB") if image.mode != "RGB" else image
def fit(size, side):
    s = side / max(size)
    return max(1, round(size[0] * s)), max(1, round(size[1] * s))
def decode(data, max_side):
    image = Image.open(io.BytesIO(data))
    if max_side and image.format == "JPEG":
        image.draft("RGB", fit(image.size, max_side * 2))
    image.load()
    image = to_rgb(ImageOps.exif_transpose(image))
    if max(image.size) > max_side:
        image = image.resize(fit(image.size, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image
def arrival(data):
    decode(data, 256)
def worker(data):
    return decode(data, 1024)
"""

_NOW = """
from stylebot import images
def arrival(data):
    images.verify(data)
def worker(data):
    return images.load_image(data, max_side=1024, wait=images.WORKER_WAIT)
"""

_PYVIPS = """
import pyvips
pyvips.cache_set_max(0)
def arrival(data):
    pyvips.Image.thumbnail_buffer(data, 256, fail_on="truncated").write_to_memory()
def worker(data):
    return pyvips.Image.thumbnail_buffer(data, 1024, fail_on="truncated").write_to_memory()
"""

#: One row: decode ``path`` (alone: arrival then worker; or ``senders`` threads of arrival at once).
_RUN = """
import io, json, sys, threading, time
sys.path.insert(0, {root!r})
{code}
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
data = open({path!r}, "rb").read()
open("/proc/self/clear_refs", "w").write("5")
base = status("VmRSS")
started = time.perf_counter()
done = []
if {senders} == 1:
    arrival(data)
    worker(data)
    done.append(time.perf_counter() - started)
else:
    def one():
        arrival(data)
        done.append(time.perf_counter() - started)
    threads = [threading.Thread(target=one) for _ in range({senders})]
    for t in threads: t.start()
    for t in threads: t.join()
print(json.dumps({{"added": status("VmHWM") - base, "first": min(done), "all": max(done)}}))
"""


def make_png(path: Path, size: tuple[int, int]) -> int:
    """A mostly transparent RGBA poster: big in pixels, a few hundred KB on the wire."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", size, (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    for i in range(0, size[0], size[0] // 14):
        draw.ellipse((i, i, i + size[0] // 5, i + size[1] // 7), fill=(200, 40, 40, 180))
    image.save(path, "PNG")
    return path.stat().st_size


def have_pyvips() -> bool:
    try:
        import pyvips  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def row(code: str, path: Path, senders: int) -> dict:
    script = _RUN.format(root=str(ROOT), code=code, path=str(path), senders=senders)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"rc {out.returncode}"}
    return json.loads(out.stdout)


def part_one(folder: Path, senders: int) -> None:
    files = {"16 MP RGBA PNG (4000×4000)": (4000, 4000), "49 MP RGBA PNG (7000×7000)": (7000, 7000)}
    variants = {"before": "import io\n" + _BEFORE, "now": _NOW}
    if have_pyvips():
        variants["pyvips"] = _PYVIPS
    print("Part 1: RSS added over the imports (MB) and wall time (s); fresh process per cell")
    print(f"{'image':30} {'what':34} " + " ".join(f"{name:>22}" for name in variants))
    for label, size in files.items():
        path = folder / f"{size[0]}x{size[1]}.png"
        wire = make_png(path, size)
        alone: dict[str, float] = {}
        for what, n in (("arrival + worker, 1 user", 1), (f"arrival, {senders} users at once", senders)):
            cells = []
            for name, code in variants.items():
                if name == "before" and n > 1:
                    # Not run: unbounded, it takes n × the one-user figure (7.8 GB for 16 MP, 32 users, measured
                    # once), which would endanger everything else on a shared machine.
                    cells.append(f"{f'≈ {n} × {alone[name]:.0f} MB':>22}")
                    continue
                got = row(code, path, n)
                if n == 1 and "added" in got:
                    alone[name] = got["added"] / MB
                if "error" in got:
                    cells.append(f"{'failed':>22}")
                elif n == 1:
                    cells.append(f"{got['added'] / MB:7.0f} MB {got['all']:8.2f} s  ")
                else:
                    cells.append(f"{got['added'] / MB:5.0f} MB {got['first']:4.1f}/{got['all']:5.1f} s")
            print(f"{label + f' {wire // 1024} KB':30} {what:34} " + " ".join(cells))
    print(f"({senders} users: time to the first / the last check done; 'before' with {senders} users is not run)\n")


def vm(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def part_two(folder: Path, senders: int) -> None:
    from botkit import User, spawn_bot

    from stylebot import texts
    from stylebot.playground.emulator import BotAPIEmulator

    path = folder / "7000x7000.png"
    if not path.exists():
        make_png(path, (7000, 7000))
    data = path.read_bytes()
    got_it, busy = "Got the photo", texts.t(texts.EN, "bad_busy", seconds=0).split(",")[0]
    with BotAPIEmulator() as api:
        bot = spawn_bot(api, folder / "data", folder / "bot.log", STYLEBOT_IMAGE_SIZE="512")
        try:
            first = User(api, 500)
            first.say("/start")
            first.wait_text("Hi!", timeout=180)
            with open(f"/proc/{bot.pid}/clear_refs", "w") as clear:
                clear.write("5")
            base = vm(bot.pid, "VmRSS")
            users = [User(api, 1000 + n) for n in range(senders)]
            started = time.monotonic()
            for user in users:
                user.file(data, "poster.png", "image/png")
            other = User(api, 501)
            sent = time.time()
            other.say("/start")
            other.wait_text("Hi!", timeout=300)
            # From the update queued at the emulator to the bot's sendMessage reaching it (bench/bot_latency.py).
            reply = next(c for c in api.calls("sendMessage") if c.params.get("chat_id") == str(other.id))
            start_latency = reply.time - sent
            answers: list[str] = []

            def answer_of(user: User) -> str | None:
                return next((t for t in user.seen() if got_it in t or busy in t), None)

            for user in users:
                answer = api.wait_for(functools.partial(answer_of, user), 600, what=f"an answer to {user.id}")
                answers.append(got_it if got_it in answer else "busy")
            last = time.monotonic() - started
            added = vm(bot.pid, "VmHWM") - base
        finally:
            bot.terminate()
            bot.wait(30)
    print(f"Part 2: the bot (main.py, default settings), {senders} users send the 7000×7000 RGBA PNG at once")
    print(f"  RSS added over the bot after start-up : {added / MB:.0f} MB   (target ≤ 300 MB)")
    print(f"  another user's /start answered in      : {start_latency:.2f} s   (target ≤ 2 s)")
    print(
        f"  answered                               : {len(answers)}/{senders} "
        f"({answers.count(got_it)} 'Got the photo', {answers.count('busy')} 'busy'), the last after {last:.1f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--no-bot", action="store_true", help="skip part 2 (the whole bot)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start\n")
    with tempfile.TemporaryDirectory() as tmp:
        part_one(Path(tmp), args.senders)
        if not args.no_bot:
            part_two(Path(tmp), args.senders)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

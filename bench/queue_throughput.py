"""Per-job time alone vs with N queued (issue 11: 20 queued 128 px jobs took 7.3 s each vs 3.1 s alone).

    python bench/queue_throughput.py                 # 128 px, 3 single jobs, 20 queued
    python bench/queue_throughput.py --size 48 --queued 10 --singles 2

The real bot (``stylebot.app.App``) against the emulator, the real engine on the CPU.
"single": one job at a time, submit to result. "queued": N users' jobs are all
queued behind a held first job, then released; per job = (last result - release) / N.
Prints both means and their ratio side by side (target: ratio <= 1.25).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from botkit import User, picture, weights_path  # noqa: E402

from stylebot import app as main  # noqa: E402
from stylebot.config import Config  # noqa: E402
from stylebot.playground.emulator import BotAPIEmulator  # noqa: E402


class Held:
    """The real engine; its first call waits for ``release`` (so every job is queued first)."""

    def __init__(self, engine) -> None:
        self.engine, self.device = engine, engine.device
        self.release = threading.Event()

    def stylize(self, *args, **kwargs):
        self.release.wait()
        return self.engine.stylize(*args, **kwargs)


def submit(user: User) -> None:
    user.photo(picture((160, 120)))
    user.wait_seen("Now send", timeout=120)
    user.photo(picture((96, 96), (20, 20, 220)))


def run(size: int, queued: int, singles: int) -> tuple[float, float]:
    import model

    engine = model.Engine(weights_path(), device="cpu")
    with BotAPIEmulator() as api, tempfile.TemporaryDirectory() as tmp:
        config = Config(
            token=api.token,
            api_url=api.base_url,
            data_dir=Path(tmp),
            weights=weights_path(),
            device="cpu",
            image_size=size,
            rate_limit=0,
        )
        held = Held(engine)
        held.release.set()
        app = main.App(config, engine=held).start()
        try:
            times = []
            for n in range(singles + 1):  # the first is a warm-up
                user = User(api, 100 + n)
                user.photo(picture((160, 120)))
                user.wait_seen("Now send", timeout=120)
                t0 = time.monotonic()  # from the style picture to the result
                user.photo(picture((96, 96), (20, 20, 220)))
                user.wait_result(timeout=600)
                if n:
                    times.append(time.monotonic() - t0)
            single = sum(times) / len(times)

            held.release.clear()
            users = [User(api, 1000 + n) for n in range(queued)]
            for user in users:
                submit(user)
            for user in users:
                user.wait_seen("queue", timeout=120)
            t0 = time.monotonic()
            held.release.set()
            for user in users:
                user.wait_result(timeout=1200)
            per_job = (time.monotonic() - t0) / queued
            edits = len(api.calls("editMessageText"))
        finally:
            app.stop(timeout=5)
    print(
        f"size {size} px | single job {single:.2f} s (mean of {singles}) | with {queued} queued "
        f"{per_job:.2f} s per job | ratio {per_job / single:.2f} | editMessageText calls {edits}"
    )
    return single, per_job


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--queued", type=int, default=20)
    parser.add_argument("--singles", type=int, default=3)
    args = parser.parse_args()
    run(args.size, args.queued, args.singles)


if __name__ == "__main__":
    main_()

"""Helpers for bot tests: images made with Pillow, a running bot, a chatting user, waits.

The bot under test is the real one (``stylebot.app.App``: handlers, SQLite, worker
threads, the real engine at a tiny size) talking HTTP to the emulator.

Waiting (every test uses these; tests/unit/test_test_waits.py checks the e2e tier does):

- ``wait_until(condition, timeout=60, what="", api=None)`` polls ``condition`` until it
  returns something truthy and returns that; after ``deadline(timeout)`` seconds it fails
  with "timed out after N s waiting for <what>" (plus the emulator's recent calls when
  ``api`` is given). Never ``time.sleep(n)`` to let something happen: wait for its sign.
- ``deadline(seconds)`` is ``seconds`` × ``STYLEBOT_TEST_SLOWDOWN`` (a float, default 1),
  read here and nowhere else. Pass every other time limit through it too: a subprocess's
  ``timeout=``, ``process.wait(...)``, ``event.wait(...)``, a socket's timeout, and the
  window of a "nothing happens" check that cannot be proven by order.
- A deadline is a hang detector, not a performance test: size it for a busy 2-core machine
  painting (``bin/test --busy``), so that it only fires when something is stuck.
- "Nothing else happens": prove it by order where possible (send a marker message after,
  wait for its answer; whatever would have come first has come), else wait a window of
  ``deadline(seconds)`` with ``quiet(seconds)``.
- ``REPLY_S`` (60) and ``RESULT_S`` (180) are the usual timeouts: an answer to one message, a
  painted result at the tests' sizes. ``User.wait_text``/``wait_seen``/``wait_result`` use them.
- ``wait_idle(store, user_id)`` before pressing a button that makes a job on a result just
  shown (a race fixed in the handlers, pinned by tests/e2e/test_result_buttons_race.py; kept as a guard).
"""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
TEST_SIZE = 48

#: The one knob for a slow machine: every deadline in the tests is multiplied by it.
SLOWDOWN_ENV = "STYLEBOT_TEST_SLOWDOWN"
#: Seconds to wait for a reply to one message (a text, a button press), painting aside.
REPLY_S = 60.0
#: Seconds to wait for a painted result at the tests' small sizes, on a busy machine.
RESULT_S = 180.0

T = TypeVar("T")


def slowdown() -> float:
    """``STYLEBOT_TEST_SLOWDOWN`` as a float (default 1); read on each call, so a test may set it."""
    raw = os.environ.get(SLOWDOWN_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{SLOWDOWN_ENV}={raw!r} is not a number (e.g. 2 or 1.5)") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{SLOWDOWN_ENV}={raw!r} must be a positive, finite number")
    return value


def deadline(seconds: float) -> float:
    """``seconds`` scaled by ``STYLEBOT_TEST_SLOWDOWN``: how long to allow for something that must happen."""
    return seconds * slowdown()


def wait_until(condition: Callable[[], T | None], timeout: float = REPLY_S, what: str = "", api: Any = None) -> T:
    """Poll ``condition`` until it is truthy and return its value; fail after ``deadline(timeout)`` s.

    The failure names ``what`` was awaited and, with ``api`` (the emulator), its recent calls.
    The value returned is never None or false: a condition may answer None while it waits.
    """
    limit = deadline(timeout)
    end = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            scale = f" ({timeout:g} s x {SLOWDOWN_ENV}={slowdown():g})" if slowdown() != 1 else ""
            detail = f"\n{api.summary()}" if api is not None else ""
            raise AssertionError(f"timed out after {limit:g} s{scale} waiting for {what or condition}{detail}")
        time.sleep(0.02)  # the helper's poll interval, not a wait for something to happen


def wait_idle(store: Any, user_id: int, timeout: float = REPLY_S) -> None:
    """Wait until ``user_id`` has no job queued or running in ``store``.

    Before pressing a button that makes a job on a result just shown, or counting messages: the result
    shows a moment before its status message is deleted and its job recorded done. (A press in between
    is no longer refused: tests/e2e/test_result_buttons_race.py.)
    """
    wait_until(lambda: store.active_job(user_id) is None, timeout, f"user {user_id}'s job to be recorded done")


def quiet(seconds: float) -> None:
    """Let ``deadline(seconds)`` pass: the window of a "nothing else happens" check.

    Only where the absence cannot be proven by order (a marker message answered after it)
    or by state (every job finished); a longer window only makes such a check stricter.
    """
    time.sleep(deadline(seconds))


def weights_path() -> Path | None:
    for candidate in (
        os.environ.get("STYLEBOT_WEIGHTS"),
        ROOT / "vgg19_cache.pth",
        ROOT.parent / "shared" / "weights" / "vgg19_cache.pth",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def picture(
    size: tuple[int, int] = (120, 80),
    color=(200, 40, 40),
    fmt: str = "JPEG",
    mode: str = "RGB",
    stripes: bool = True,
    **save: Any,
) -> bytes:
    """A small test image; stripes give the engine some structure to work on."""
    image = Image.new("RGB", size, color)
    if stripes:
        for x in range(0, size[0], 8):
            for y in range(size[1]):
                image.putpixel((x, y), (255 - color[0], 255 - color[1], 255 - color[2]))
    if mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def make_content(size: tuple[int, int]) -> Image.Image:
    """A smooth two-colour scene with a disc: some structure for the content loss, no noise."""
    w, h = size
    img = Image.new("RGB", size)
    px = img.load()
    assert px is not None
    for y in range(h):
        for x in range(w):
            px[x, y] = (40 + 180 * x // max(1, w - 1), 90, 200 - 150 * y // max(1, h - 1))
    ImageDraw.Draw(img).ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=(230, 200, 60))
    return img


def make_style(size: tuple[int, int] = (48, 48)) -> Image.Image:
    """Bold diagonal stripes in saturated colours: a style that is easy to see in the losses."""
    w, h = size
    img = Image.new("RGB", size)
    px = img.load()
    assert px is not None
    for y in range(h):
        for x in range(w):
            band = ((x + y) // 4) % 3
            px[x, y] = [(220, 30, 30), (20, 20, 20), (30, 60, 220)][band]
    return img


def quick_recipe(base: str = "default", coarse_evals: int = 12) -> Any:
    """``model.PRESETS[base]``'s objective at a handful of evaluations per level: engine tests in seconds on CPU."""
    import model

    return replace(model.PRESETS[base], min_side=32, coarse_evals=coarse_evals, refine_evals=((1 << 30, 4),))


def engine_fixtures(weights: Path, presets: Mapping[str, Any], missing: str) -> tuple[Any, Any]:
    """An engine test module's two fixtures: ``quick_presets, engine = engine_fixtures(...)``.

    ``quick_presets`` (module, autouse) puts ``presets`` in ``model.PRESETS`` so that
    ``StyleParams(preset=name)`` finds them. ``engine`` (module) is a CPU ``model.Engine``
    on one intra-op thread, or a skip saying ``missing`` when ``weights`` is not there:
    one thread gives the same results, and on a shared 2-core machine OpenMP's second
    thread mostly waits for a busy core (measured 3-10x slower per evaluation under load).
    torch's thread count is restored afterwards.
    """
    import pytest
    import torch

    import model

    @pytest.fixture(scope="module", autouse=True)
    def quick_presets() -> Iterator[None]:
        with pytest.MonkeyPatch.context() as mp:
            for name, recipe in presets.items():
                mp.setitem(model.PRESETS, name, recipe)
            yield

    @pytest.fixture(scope="module")
    def engine() -> Iterator[Any]:
        if not weights.is_file():
            pytest.skip(missing)
        threads = torch.get_num_threads()
        try:
            yield model.Engine(weights, device="cpu", threads=1)
        finally:
            torch.set_num_threads(threads)

    return quick_presets, engine


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@dataclass
class User:
    """One Telegram user chatting with the bot through the emulator."""

    api: Any
    id: int
    lang: str = "en"

    def say(self, text: str) -> dict:
        return self.api.send_text(self.id, text, language_code=self.lang)

    def photo(self, data: bytes) -> dict:
        return self.api.send_photo(self.id, data, language_code=self.lang)

    def file(self, data: bytes, name: str, mime: str) -> dict:
        return self.api.send_document(self.id, data, name, mime, language_code=self.lang)

    def press(self, message: dict, data: str) -> dict:
        return self.api.press_button(self.id, message["message_id"], data, language_code=self.lang)

    def messages(self) -> list[dict]:
        return self.api.bot_messages(self.id)

    def texts(self) -> list[str]:
        return [m.get("text") or m.get("caption") or "" for m in self.messages()]

    def wait_text(self, fragment: str, timeout: float = REPLY_S, after: int = 0) -> dict:
        """The first bot message (from index ``after``) whose text/caption contains ``fragment``."""

        def find():
            for m in self.messages()[after:]:
                if fragment in (m.get("text") or m.get("caption") or ""):
                    return m
            return None

        return wait_until(find, timeout, f"a message containing {fragment!r} to {self.id}", self.api)

    def seen(self) -> list[str]:
        """Every text or caption the bot ever showed this user, including ones later edited or deleted."""
        shown = []
        for call in self.api.calls():
            if call.status == 200 and str(call.params.get("chat_id")) == str(self.id):
                text = call.params.get("text") or call.params.get("caption")
                if call.method == "editMessageMedia":
                    text = call.params.get("media", "")
                if text:
                    shown.append(text)
        return shown

    def wait_seen(self, fragment: str, timeout: float = REPLY_S) -> str:
        """Wait until the bot showed ``fragment`` at some point (transient status texts included)."""
        return wait_until(
            lambda: next((t for t in self.seen() if fragment in t), None),
            timeout,
            f"the bot to show {fragment!r} to {self.id}",
            self.api,
        )

    def results(self) -> list[dict]:
        """Delivered results: photos or documents carrying the result buttons."""

        def is_result(m: dict) -> bool:
            rows = (m.get("reply_markup") or {}).get("inline_keyboard", [])
            return bool(m.get("photo") or m.get("document")) and any(
                (b.get("callback_data") or "").startswith("rerun:") for row in rows for b in row
            )

        return [m for m in self.messages() if is_result(m)]

    def wait_result(self, count: int = 1, timeout: float = RESULT_S) -> dict:
        found = wait_until(
            lambda: len(self.results()) >= count and self.results(),
            timeout,
            f"result #{count} for user {self.id}",
            self.api,
        )
        return found[count - 1]

    def result_image(self, message: dict) -> Image.Image:
        file_id = message["photo"][-1]["file_id"] if message.get("photo") else message["document"]["file_id"]
        return decode(self.api.file_bytes(file_id))

    def button(self, message: dict, prefix: str) -> str:
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
            for b in row:
                if (b.get("callback_data") or "").startswith(prefix):
                    return b["callback_data"]
        raise AssertionError(f"no button {prefix!r} on {message}")


def bot_env(api, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STYLEBOT_", "TELEGRAM_"))}
    env.update(
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_URL=api.base_url,
        STYLEBOT_DATA_DIR=str(data_dir),
        STYLEBOT_IMAGE_SIZE=str(TEST_SIZE),
        PYTHONUNBUFFERED="1",
    )
    weights = weights_path()
    if weights:
        env["STYLEBOT_WEIGHTS"] = str(weights)
    env.update(extra)
    return env


def spawn_bot(api, data_dir: Path, log_path: Path, *args: str, **extra: str) -> subprocess.Popen:
    """The bot as its own process, as an operator runs it (for kill/restart tests)."""
    with open(log_path, "ab") as log:  # the child has its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), *args],
            cwd=ROOT,
            env=bot_env(api, data_dir, **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

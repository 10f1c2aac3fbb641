"""No live preview after "Job cancelled": the status reporter and ``Stop.cancel`` share a gate.

Seen once in the field: a new preview photo arrived 20 ms after the cancel reply, then became the
"Cancelled" message. The timing is driven by events here (no sleeps): the real StatusReporter sends
through the real telebot client to the emulator, and a test double of the Telegram wrapper holds a
preview upload in flight until the test lets it go.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import telebot
from PIL import Image
from telebot import apihelper

from stylebot.jobs.job import Job, Stop
from stylebot.jobs.status import StatusReporter
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.store.sqlite_store import Store
from stylebot.tg import Telegram, use_api_url

CHAT = 5151


@dataclass
class Progress:
    """What the engine hands ``on_progress``: a fraction, an ETA, and the image so far."""

    fraction: float
    eta: float | None = 1.0

    def render(self) -> Image.Image:
        return Image.new("RGB", (32, 24), (200, 40, 40))


class HeldTelegram(Telegram):
    """The real wrapper, but a preview upload waits for ``release`` (after saying it ``entered``)."""

    def __init__(self, bot: telebot.TeleBot, order: list[str]) -> None:
        super().__init__(bot, attempts=1)
        self.entered, self.release, self.order = threading.Event(), threading.Event(), order

    def send_photo(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.release.wait(30), "the test never released the preview"
        message = super().send_photo(*args, **kwargs)
        self.order.append("preview sent")
        return message


@pytest.fixture
def bot(emulator: BotAPIEmulator) -> Iterator[telebot.TeleBot]:
    saved = apihelper.API_URL, apihelper.FILE_URL
    use_api_url(emulator.base_url)
    emulator.send_text(CHAT, "hi")  # a bot may only write to a user who wrote first
    try:
        yield telebot.TeleBot(emulator.token, threaded=False)
    finally:
        apihelper.API_URL, apihelper.FILE_URL = saved


def reporter_for(tg: Telegram, tmp_path: Path, stop: Stop, ticked: threading.Event | None = None) -> StatusReporter:
    """A reporter that edits and previews on every tick (no rate limits), with a real SQLite store."""
    ctx = SimpleNamespace(
        store=Store(tmp_path / "db.sqlite"), tg=tg, edit_every=0.0, preview_every=0.0, preview_step=0.0
    )
    job = Job(user_id=CHAT, chat_id=CHAT, content_file_id="c", style_file_id="s", size=48)

    class Reporter(StatusReporter):
        def _tick(self) -> None:
            super()._tick()
            if ticked is not None:
                ticked.set()

    return Reporter(ctx, job, stop)


def previews(emulator: BotAPIEmulator) -> list[Any]:
    return [c for c in emulator.calls() if c.method in ("sendPhoto", "editMessageMedia") and c.status == 200]


def test_cancel_waits_for_the_preview_in_flight_so_the_reply_comes_after_it(
    emulator: BotAPIEmulator, bot: telebot.TeleBot, tmp_path: Path
) -> None:
    order: list[str] = []
    tg = HeldTelegram(bot, order)
    stop = Stop()
    reporter = reporter_for(tg, tmp_path, stop)
    reporter.start()
    reporter.on_progress(Progress(0.5))  # a preview is due: the reporter's thread starts uploading it
    assert tg.entered.wait(30), "the preview upload never started"
    acked = threading.Event()

    def cancel() -> None:  # what /cancel does before it replies "Job cancelled"
        stop.cancel()
        order.append("cancel acknowledged")
        acked.set()

    threading.Thread(target=cancel, daemon=True).start()
    # Without the gate the acknowledgement comes at once, while the preview is still on its way.
    acked.wait(0.5)
    tg.release.set()
    assert acked.wait(30)
    reporter.on_progress(Progress(0.8))  # the engine's last progress before it notices the cancel
    reporter.close()
    assert order == ["preview sent", "cancel acknowledged"]
    assert len(previews(emulator)) == 1  # and nothing after the acknowledgement


def test_a_preview_due_after_the_cancel_is_never_sent(
    emulator: BotAPIEmulator, bot: telebot.TeleBot, tmp_path: Path
) -> None:
    order: list[str] = []
    tg = HeldTelegram(bot, order)
    tg.release.set()
    stop = Stop()
    ticked = threading.Event()
    reporter = reporter_for(tg, tmp_path, stop, ticked)
    reporter.start()
    stop.cancel()  # acknowledged: the user is told "Job cancelled" now
    reporter.on_progress(Progress(0.5))  # the painting thread had one more step in it: a preview is due
    assert ticked.wait(30), "the reporter never ticked"
    reporter.close()
    assert not tg.entered.is_set() and not previews(emulator)
    # The status message is left as it was ("Painting…"): no edit after the acknowledgement either.
    edits = [c for c in emulator.calls("editMessageText") if c.status == 200]
    assert not edits
    # Its final word is still said (run_job's finish), as text.
    reporter.finish("Cancelled.")
    assert emulator.calls("editMessageText")[-1].params["text"] == "Cancelled."

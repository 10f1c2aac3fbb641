"""The chat handlers in-process: real telebot client against the emulator, real SQLite, no engine.

Updates are fed with ``bot.process_new_updates`` (no polling thread); replies travel over HTTP to the
emulator and are read back from it. The queue only records what it is given (nothing paints here).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import telebot
from botkit import picture
from telebot import types

from stylebot import texts
from stylebot.chat.handlers import Handlers
from stylebot.chat.routing import register
from stylebot.jobs.job import Job, store_and_announce
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.store.base import STEP_STYLE
from stylebot.store.sqlite_store import Store
from stylebot.tg import Telegram, use_api_url

USER = 501
SIZES = [48, 96]


@dataclass
class RecordingQueue:
    """A JobQueue that stores and announces like the real back-ends, and runs nothing."""

    store: Store
    submitted: list[Job] = field(default_factory=list)

    def submit(self, job: Job, announce: Callable[[int], int | None] | None = None) -> int:
        self.submitted.append(job)
        return store_and_announce(self.store, job, announce)

    def cancel(self, job_id: str) -> bool:
        return self.store.cancel_if_queued(job_id)

    def position(self, job_id: str) -> int | None:
        return self.store.position(job_id)

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


@dataclass
class Chat:
    emulator: BotAPIEmulator
    bot: telebot.TeleBot
    store: Store
    queue: RecordingQueue
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def feed(self, message: dict[str, Any]) -> None:
        """Hand one user message to the bot, as polling would (synchronously here)."""
        self.bot.process_new_updates([types.Update.de_json({"update_id": next(self._ids), "message": message})])

    def press(self, update: dict[str, Any]) -> None:
        self.bot.process_new_updates([types.Update.de_json(update)])

    def texts(self) -> list[str]:
        return [m.get("text") or m.get("caption") or "" for m in self.emulator.bot_messages(USER)]

    def answers(self) -> list[str | None]:
        return [c.params.get("text") for c in self.emulator.calls("answerCallbackQuery")]


@pytest.fixture
def chat(emulator: BotAPIEmulator, tmp_path: Path) -> Iterator[Chat]:
    use_api_url(emulator.base_url)
    store = Store(tmp_path / "db.sqlite3")
    bot = telebot.TeleBot(emulator.token, threaded=False)
    queue = RecordingQueue(store)
    handlers = Handlers(
        bot,
        store,
        queue,
        Telegram(bot),
        results_dir=tmp_path / "results",
        default_size=SIZES[0],
        size_choices=SIZES,
        rate_limit=0,
    )
    register(bot, handlers)
    try:
        yield Chat(emulator, bot, store, queue)
    finally:
        store.close()
        use_api_url(None)


def test_start_replies_and_resets_the_dialog(chat: Chat) -> None:
    chat.feed(chat.emulator.send_text(USER, "/start"))
    assert chat.texts() == [texts.t("en", "start")]


def test_photo_asks_for_a_style_and_moves_the_dialog(chat: Chat) -> None:
    sent = chat.emulator.send_photo(USER, picture((120, 80)))
    chat.feed(sent)
    assert chat.texts()[-1] == texts.t("en", "ask_style")
    assert "Now send" in chat.texts()[-1]
    dialog = chat.store.get_dialog(USER, USER)
    largest = max(sent["photo"], key=lambda p: p["width"] * p["height"])
    assert dialog.step == STEP_STYLE and dialog.content_file_id == largest["file_id"]


def test_style_stores_a_job_with_the_right_ids(chat: Chat) -> None:
    photo = chat.emulator.send_photo(USER, picture((120, 80)))
    chat.feed(photo)
    style = chat.emulator.send_photo(USER, picture((64, 64), (20, 20, 220)))
    chat.feed(style)
    [job] = chat.queue.submitted
    stored = chat.store.get_job(job.id)
    assert stored is not None

    def largest(message: dict[str, Any]) -> str:
        return str(max(message["photo"], key=lambda p: p["width"] * p["height"])["file_id"])

    assert (stored.user_id, stored.chat_id) == (USER, USER)
    assert stored.content_file_id == largest(photo) and stored.style_file_id == largest(style)
    assert stored.size == SIZES[0] and stored.status_message_id is not None
    assert chat.texts()[-1] == texts.t("en", "queued_next")
    assert chat.store.get_dialog(USER, USER).step != STEP_STYLE  # the dialog starts over


def test_malformed_button_gets_the_stale_answer(chat: Chat) -> None:
    chat.feed(chat.emulator.send_text(USER, "/settings"))
    message_id = chat.emulator.bot_messages(USER)[-1]["message_id"]
    stale = texts.t("en", "stale_button")
    for n, data in enumerate(
        [
            "set:size",
            "set:size:999",
            "rerun:nope",
            "rerun:nope:sideways",
            "full:",
            "style:x",
            "style:1",
            "unknown:thing",
        ],
        1,
    ):
        chat.press(chat.emulator.send_callback_query(USER, message_id, data))
        assert chat.answers()[-1] == stale, f"{data!r} -> {chat.answers()[-1]!r}"
        assert len(chat.answers()) == n
    assert chat.queue.submitted == []
    assert chat.store.get_settings(USER).size is None  # nothing was saved


def test_settings_button_saves_and_redraws(chat: Chat) -> None:
    chat.feed(chat.emulator.send_text(USER, "/settings"))
    message = chat.emulator.bot_messages(USER)[-1]
    chat.press(chat.emulator.press_button(USER, message["message_id"], "set:size:96"))
    chat.press(chat.emulator.press_button(USER, message["message_id"], "set:strength:strong"))
    chat.press(chat.emulator.press_button(USER, message["message_id"], "set:colors:1"))
    settings = chat.store.get_settings(USER)
    assert (settings.size, settings.strength, settings.keep_colors) == (96, 2.0, True)
    assert chat.answers() == [texts.t("en", "settings_saved")] * 3
    rows = chat.emulator.bot_messages(USER)[-1]["reply_markup"]["inline_keyboard"]
    ticked = [b["callback_data"] for row in rows for b in row if b["text"].startswith("✓")]
    assert ticked == ["set:size:96", "set:strength:strong"]
    assert rows[-1][0]["callback_data"] == "set:colors:0"  # the toggle now offers to turn it off

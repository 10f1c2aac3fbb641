"""Telegram.call's answer to each kind of Bot API failure, with the real telebot client against the emulator.

One rule per test (see stylebot/tg.py): 429 waits retry_after, 5xx is retried with
backoff, 403 is UserGone, "message is not modified" is no error, any other 400
is a TelegramError at once. The emulator records every call, so each test also
checks how many requests were made.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import telebot
from telebot import apihelper

from stylebot.errors import TelegramError, UserGone
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.tg import Telegram, use_api_url

CHAT = 4242


@pytest.fixture
def bot(emulator: BotAPIEmulator) -> Iterator[telebot.TeleBot]:
    """A telebot client pointed at the emulator (telebot keeps the URL in module globals: restored after)."""
    saved = apihelper.API_URL, apihelper.FILE_URL
    use_api_url(emulator.base_url)
    emulator.send_text(CHAT, "hi")  # a bot may only write to a user who wrote first
    try:
        yield telebot.TeleBot(emulator.token, threaded=False)
    finally:
        apihelper.API_URL, apihelper.FILE_URL = saved


def statuses(emulator: BotAPIEmulator, method: str) -> list[int]:
    return [c.status for c in emulator.calls(method)]


def test_429_waits_the_retry_after_telegram_asked_for(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    tg = Telegram(bot, backoff=0.01)  # a backoff far shorter than retry_after: only honouring it waits 1 s
    emulator.fail_next("sendMessage", 429, retry_after=1)
    sent = tg.send_text(CHAT, "hello")
    assert sent is not None and sent.text == "hello"
    first, second = emulator.calls("sendMessage")
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 0.9


def test_5xx_is_retried_then_succeeds(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    tg = Telegram(bot, attempts=4, backoff=0.01)
    emulator.fail_next("sendMessage", 502, description="Bad Gateway", times=2)
    sent = tg.send_text(CHAT, "after two 502s")
    assert sent is not None and sent.text == "after two 502s"
    assert statuses(emulator, "sendMessage") == [502, 502, 200]
    assert [m["text"] for m in emulator.bot_messages(CHAT)] == ["after two 502s"]


def test_5xx_that_never_ends_gives_up_after_the_attempts(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    tg = Telegram(bot, attempts=3, backoff=0.01)
    emulator.fail_next("sendMessage", 500, description="Internal Server Error", times=5)
    with pytest.raises(TelegramError, match="after 3 attempts") as failed:
        tg.send_text(CHAT, "never")
    assert not isinstance(failed.value, UserGone)
    assert statuses(emulator, "sendMessage") == [500, 500, 500]


def test_stop_ends_the_retries_at_once(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    """A stopping worker does not sit out a backoff: one attempt, then TelegramError."""
    stop = threading.Event()
    stop.set()
    tg = Telegram(bot, attempts=5, backoff=30, stop=stop)
    emulator.fail_next("sendMessage", 502, times=5)
    with pytest.raises(TelegramError):
        tg.send_text(CHAT, "never")
    assert statuses(emulator, "sendMessage") == [502]


def test_403_from_a_user_who_blocked_the_bot_is_user_gone(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    tg = Telegram(bot, backoff=0.01)
    emulator.block_user(CHAT)
    with pytest.raises(UserGone) as gone:
        tg.send_text(CHAT, "anyone there?")
    assert gone.value.code == 403 and "blocked" in gone.value.description
    assert statuses(emulator, "sendMessage") == [403]  # not retried


def test_message_is_not_modified_is_no_error(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    tg = Telegram(bot, backoff=0.01)
    sent = tg.send_text(CHAT, "Painting… 40%")
    assert sent is not None
    assert tg.call(bot.edit_message_text, "Painting… 40%", CHAT, sent.message_id) is None  # the same text again
    (edit,) = emulator.calls("editMessageText")
    assert edit.status == 400 and "message is not modified" in edit.response.get("description", "")


def test_a_send_never_answers_none(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    """ "Not modified" is None only for edits: a send that somehow met it is an error, never a None message."""
    tg = Telegram(bot, backoff=0.01)
    emulator.fail_next("sendMessage", 400, "Bad Request: message is not modified")
    with pytest.raises(TelegramError, match="returned no result"):
        tg.send_text(CHAT, "hello")
    assert statuses(emulator, "sendMessage") == [400]  # not retried


def test_other_400_is_a_telegram_error_at_once(emulator: BotAPIEmulator, bot: telebot.TeleBot) -> None:
    tg = Telegram(bot, backoff=0.01)
    with pytest.raises(TelegramError) as failed:
        tg.edit_text(CHAT, 999999, "no such message")
    assert not isinstance(failed.value, UserGone)
    assert failed.value.code == 400 and "message to edit not found" in failed.value.description
    assert statuses(emulator, "editMessageText") == [400]  # not retried

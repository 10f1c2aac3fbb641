"""A local Telegram Bot API server: the tests and the playground talk to it instead of Telegram.

Why it exists: the bot is only trustworthy if it is exercised over real HTTP by the real client
(pyTelegramBotAPI), including Telegram's awkward parts (every parameter in the query string, files as
multipart, 429 with ``retry_after``, "message is not modified", blocked users, webhooks). This module
speaks the subset of the Bot API the bot uses, with Telegram's JSON shapes, error codes and
descriptions, and lets a test (or the playground's chat page) play the user's side.

Usage::

    with BotAPIEmulator() as api:             # serves http://127.0.0.1:<free port>
        env = {"TELEGRAM_API_URL": api.base_url, "TELEGRAM_BOT_TOKEN": api.token}
        ... start the bot ...
        api.send_text(1000, "/start")
        api.wait_for(lambda: api.bot_messages(1000), what="a reply to /start")

Routes: ``{base_url}/bot{token}/{method}`` (GET or POST; parameters from the query string, a
form-urlencoded or JSON body, or multipart fields and files) and ``{base_url}/file/bot{token}/{path}``
for downloads. Known deviations from Telegram, on purpose: webhooks may use plain ``http://`` URLs
(tests serve them locally); long polls are cut to ``max_poll_timeout`` seconds so a bot under test
stops quickly; a photo the bot sends keeps its uploaded bytes as the largest size, so a test can
inspect exactly what the bot produced.

The package, by job: ``models`` (limits, error texts, ``ApiError``, ``Call``, stored records),
``state`` (the shared state and its bookkeeping), ``chats`` (the user's side), ``methods`` (the Bot API
methods), ``faults`` (fault injection), ``webhook`` (webhook delivery), ``http_server`` (routing and
request parsing) and ``core`` (``BotAPIEmulator``, which puts them together).
"""

from __future__ import annotations

from stylebot.playground.emulator.core import BotAPIEmulator
from stylebot.playground.emulator.models import (
    BLOCKED,
    CALLBACK_DATA_MAX,
    CAPTION_MAX,
    DEFAULT_DESCRIPTIONS,
    GETFILE_MAX_BYTES,
    NOT_MODIFIED,
    PHOTO_LONG_SIDE_MAX,
    PHOTO_MAX_BYTES,
    PHOTO_MAX_SIDES,
    PHOTO_SIZES,
    TEXT_MAX,
    WEBHOOK_CONFLICT,
    ApiError,
    Call,
    bad_request,
)

__all__ = [
    "BLOCKED",
    "CALLBACK_DATA_MAX",
    "CAPTION_MAX",
    "DEFAULT_DESCRIPTIONS",
    "GETFILE_MAX_BYTES",
    "NOT_MODIFIED",
    "PHOTO_LONG_SIDE_MAX",
    "PHOTO_MAX_BYTES",
    "PHOTO_MAX_SIDES",
    "PHOTO_SIZES",
    "TEXT_MAX",
    "WEBHOOK_CONFLICT",
    "ApiError",
    "BotAPIEmulator",
    "Call",
    "bad_request",
]

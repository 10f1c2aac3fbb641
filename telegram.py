"""telegram: Bot API calls that survive Telegram's bad days.

Every outgoing call from the worker goes through :meth:`Telegram.call`:

* 429 Too Many Requests: wait ``retry_after`` seconds, then retry;
* 5xx, timeouts and dropped connections: retry with exponential backoff;
* 403 (the user blocked the bot, or left): :class:`UserGone`, so the job
  ends quietly instead of failing loudly;
* 400 "message is not modified": not an error at all, returns ``None``;
* anything else: :class:`TelegramError` with Telegram's description.

It also installs the logging filter that keeps the token out of every log
line: telebot and requests put request URLs (which contain it) into errors.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Callable, TypeVar

import requests
import telebot
from telebot import apihelper, types

log = logging.getLogger(__name__)
T = TypeVar("T")


class TelegramError(Exception):
    """A Bot API call failed for good; ``description`` is Telegram's text."""

    def __init__(self, description: str, code: int | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.code = code


class UserGone(TelegramError):
    """403: the user blocked the bot or deleted their account."""


def use_api_url(base: str | None) -> None:
    """Point telebot at another Bot API server (a local ``telegram-bot-api``, the emulator).

    telebot keeps these as module globals, so one process talks to one server.
    """
    if base:
        apihelper.API_URL = base.rstrip("/") + "/bot{0}/{1}"
        apihelper.FILE_URL = base.rstrip("/") + "/file/bot{0}/{1}"
    else:
        apihelper.API_URL = None
        apihelper.FILE_URL = None


class RedactToken(logging.Filter):
    """Replaces the bot token (and anything shaped like one) in every log record."""

    _shape = re.compile(r"\d{4,}:[A-Za-z0-9_-]{20,}")

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def _clean(self, text: str) -> str:
        if self.token:
            text = text.replace(self.token, "<token>")
        return self._shape.sub("<token>", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._clean(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, redacted, and drop the live exception.
            formatter = logging.Formatter()
            record.exc_text = self._clean(formatter.formatException(record.exc_info))
            record.exc_info = None
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(token: str, level: int = logging.INFO) -> None:
    """Root logging to stderr with the token filtered out of every line."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactToken(token))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # telebot logs every polling hiccup at ERROR with a traceback; ours are enough.
    logging.getLogger("TeleBot").setLevel(logging.CRITICAL)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


class Telegram:
    """The worker's view of the Bot API: a few intent-named calls, all retried."""

    def __init__(
        self,
        bot: telebot.TeleBot,
        attempts: int = 6,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.bot = bot
        self.attempts = attempts
        self.backoff = backoff
        self.max_wait = max_wait
        self.stop = stop or threading.Event()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                return fn(*args, **kwargs)
            except apihelper.ApiTelegramException as exc:
                code, text = exc.error_code, exc.description or str(exc)
                if code == 400 and "message is not modified" in text:
                    return None
                if code == 403:
                    raise UserGone(text, code) from None
                if code == 429:
                    wait = (exc.result_json or {}).get("parameters", {}).get("retry_after", delay)
                    wait = min(float(wait), self.max_wait)
                    log.warning("%s: 429, retrying in %.0f s", _name(fn), wait)
                elif code is not None and code >= 500:
                    wait = delay
                    log.warning("%s: %s %s, retry %d", _name(fn), code, text, attempt)
                else:
                    raise TelegramError(text, code) from None
            except (requests.ConnectionError, requests.Timeout, apihelper.ApiHTTPException) as exc:
                status = getattr(getattr(exc, "result", None), "status_code", None)
                if status is not None and status < 500 and status != 429:
                    raise TelegramError(f"HTTP {status}", status) from None
                wait = delay
                log.warning("%s: %s, retry %d", _name(fn), type(exc).__name__, attempt)
            if attempt == self.attempts:
                break
            if self.stop.wait(wait):
                break
            delay = min(delay * 2, self.max_wait)
        raise TelegramError(f"{_name(fn)} failed after {self.attempts} attempts")

    # --- intent-named helpers -------------------------------------------
    def send_text(self, chat_id: int, text: str, markup: types.InlineKeyboardMarkup | None = None) -> types.Message:
        return self.call(self.bot.send_message, chat_id, text, reply_markup=markup)

    def edit_text(self, chat_id: int, message_id: int, text: str, markup=None) -> None:
        self.call(self.bot.edit_message_text, text, chat_id, message_id, reply_markup=markup)

    def edit_caption(self, chat_id: int, message_id: int, caption: str, markup=None) -> None:
        self.call(self.bot.edit_message_caption, caption, chat_id, message_id, reply_markup=markup)

    def edit_photo(self, chat_id: int, message_id: int, jpeg: bytes, caption: str) -> None:
        media = types.InputMediaPhoto(jpeg, caption=caption)
        self.call(self.bot.edit_message_media, media, chat_id, message_id)

    def send_photo(self, chat_id: int, jpeg: bytes, caption: str | None = None, markup=None) -> types.Message:
        return self.call(self.bot.send_photo, chat_id, jpeg, caption=caption, reply_markup=markup)

    def send_document(
        self, chat_id: int, data: bytes, file_name: str, caption: str | None = None, markup=None
    ) -> types.Message:
        return self.call(
            self.bot.send_document, chat_id, data, caption=caption, reply_markup=markup, visible_file_name=file_name
        )

    def delete(self, chat_id: int, message_id: int) -> None:
        try:
            self.call(self.bot.delete_message, chat_id, message_id)
        except TelegramError as exc:  # already gone, or too old to delete: harmless
            log.info("delete_message: %s", exc.description)

    def chat_action(self, chat_id: int, action: str = "upload_photo") -> None:
        try:
            self.call(self.bot.send_chat_action, chat_id, action)
        except UserGone:
            raise
        except TelegramError:
            pass  # cosmetic; never worth failing a job over

    def download(self, file_id: str) -> bytes:
        info = self.call(self.bot.get_file, file_id)
        return self.call(self.bot.download_file, info.file_path)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", "call")

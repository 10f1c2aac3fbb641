"""telegram: Bot API calls that survive Telegram's bad days.

Every outgoing call from the worker goes through :meth:`Telegram.call`:

* 429 Too Many Requests: wait ``retry_after`` seconds, then retry;
* 5xx, timeouts and dropped connections (a body cut short included): retry
  with exponential backoff;
* 403 (the user blocked the bot, or left): :class:`UserGone`, so the job
  ends quietly instead of failing loudly;
* 400 "message is not modified": not an error at all, returns ``None``;
* anything else: :class:`TelegramError` with Telegram's description.

Every request has connect and read timeouts: method calls get telebot's
``apihelper.CONNECT_TIMEOUT``/``READ_TIMEOUT``; file downloads, which telebot
sends with no timeout at all, are done here (:meth:`Telegram.download`) with
their own timeouts, a wall-clock deadline and a size cap, so a stalled or
dropped transfer ends in a retry or a :class:`TelegramError`, never a hang.

The server is not trusted (issue 18): a ``file_path`` from getFile is checked
(:func:`check_file_path`) before any URL is built from it, and neither downloads
nor method calls follow a redirect (the token is in the URL: it goes to the
configured API host and nowhere else). ``logs.safe_url`` is how a server URL is logged.
"""

from __future__ import annotations

import http.client
import io
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import requests
import telebot
import urllib3
from telebot import apihelper, types

from stylebot.errors import TelegramError, UnsafeFile, Upstream, UserGone

log = logging.getLogger(__name__)
T = TypeVar("T")


#: A transfer that broke or stalled on the way: worth another try.
TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.HTTPError,
    http.client.IncompleteRead,
)

#: Telegram's getFile limit for bots; a larger answer is not a file we asked for.
DOWNLOAD_MAX_BYTES = 20 * 1024 * 1024


#: Telegram's file paths are short and plain ("photos/file_12.jpg"); anything else is not a file we asked for.
FILE_PATH_MAX = 256
_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]+")


def check_file_path(path: object) -> str:
    """``path`` if it is a plain relative file path under the server's file root; :class:`UnsafeFile` if not.

    A hostile or broken server answered getFile with ``../logOut`` and the bot fetched
    ``/bot<token>/logOut`` (requests folds dot segments): so no ``..`` or ``.`` segment,
    no scheme, no query or fragment, no percent-escapes (``%2e%2e`` is ``..`` to the
    server), no control characters, no leading ``/``, and a bounded length.
    """
    if not isinstance(path, str) or not path:
        raise UnsafeFile("getFile: empty file_path")
    if len(path) > FILE_PATH_MAX:
        raise UnsafeFile(f"getFile: file_path of {len(path)} characters (at most {FILE_PATH_MAX})")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise UnsafeFile("getFile: control character in file_path")
    if urllib.parse.urlsplit(path).scheme or "//" in path or path.split("/", 1)[0].find(":") >= 0:
        raise UnsafeFile("getFile: file_path has a scheme or a host")
    if "?" in path or "#" in path:
        raise UnsafeFile("getFile: file_path has a query or a fragment")
    if path.startswith("/") or "\\" in path:
        raise UnsafeFile("getFile: file_path is absolute")
    segments = path.split("/")
    if any(s in (".", "..") for s in segments):
        raise UnsafeFile("getFile: file_path has a '.' or '..' segment")
    if not all(_SEGMENT.fullmatch(s) for s in segments):
        raise UnsafeFile("getFile: file_path has an unexpected character or an empty segment")
    return path


def _no_redirects(method: str, url: str, **kwargs: Any) -> requests.Response:
    """telebot's request sender, minus redirects: a 3xx is an answer (an HTTP error), never a hop elsewhere."""
    return apihelper._get_req_session().request(method, url, allow_redirects=False, **kwargs)


class _Dropped(Exception):
    """A download that ended early, stalled past its deadline, or got a 5xx/429: retry it."""


class _Stalled(_Dropped):
    """A download still trickling at its deadline: a timeout, as the user is told."""


def use_api_url(base: str | None) -> None:
    """Point telebot at another Bot API server (a local ``telegram-bot-api``, the emulator).

    telebot keeps these as module globals, so one process talks to one server. Method
    calls never follow a redirect (the sender below): the token goes to this host only.
    """
    apihelper.CUSTOM_REQUEST_SENDER = _no_redirects  # type: ignore[assignment]  # telebot declares it a bare None
    if base:
        # telebot declares both as a bare `= None`, so its inferred type is None; strings are what it reads.
        apihelper.API_URL = base.rstrip("/") + "/bot{0}/{1}"  # type: ignore[assignment]
        apihelper.FILE_URL = base.rstrip("/") + "/file/bot{0}/{1}"  # type: ignore[assignment]
    else:
        apihelper.API_URL = None
        apihelper.FILE_URL = None


class Telegram:
    """The worker's view of the Bot API: a few intent-named calls, all retried."""

    def __init__(
        self,
        bot: telebot.TeleBot,
        attempts: int = 6,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        stop: threading.Event | None = None,
        connect_timeout: float = 15.0,
        read_timeout: float = 30.0,
        download_total: float = 120.0,
        download_attempts: int = 4,
        download_max_bytes: int = DOWNLOAD_MAX_BYTES,
    ) -> None:
        self.bot = bot
        self.attempts = attempts
        self.backoff = backoff
        self.max_wait = max_wait
        self.stop = stop or threading.Event()
        # Downloads only (method calls use telebot's globals); plain attributes, so a
        # test can shorten them on a running bot's ``tg``.
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.download_total = download_total
        self.download_attempts = download_attempts
        self.download_max_bytes = download_max_bytes
        self._sessions = threading.local()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        delay = self.backoff
        last = Upstream.SERVER  # what the last retried failure was, for the user's message
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
            except apihelper.ApiInvalidJSONException:
                # A 200 whose JSON ended early: the connection dropped mid-answer.
                wait = delay
                log.warning("%s: answer cut short, retry %d", _name(fn), attempt)
            except (*TRANSIENT, apihelper.ApiHTTPException) as exc:
                status = getattr(getattr(exc, "result", None), "status_code", None)
                if status is not None and status < 500 and status != 429:
                    raise TelegramError(f"HTTP {status}", status) from None
                last = Upstream.TIMEOUT if isinstance(exc, requests.Timeout) else Upstream.SERVER
                wait = delay
                log.warning("%s: %s, retry %d", _name(fn), type(exc).__name__, attempt)
            if attempt == self.attempts:
                break
            if self.stop.wait(wait):
                break
            delay = min(delay * 2, self.max_wait)
        raise TelegramError(f"{_name(fn)} failed after {self.attempts} attempts", upstream=last)

    def _result(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`call` where the answer is needed (a sent message, a file's info).

        Only an edit can be "not modified" (:meth:`call`'s None), so None here is a broken
        answer: a :class:`TelegramError` says so, instead of an AttributeError in the caller.
        """
        result = self.call(fn, *args, **kwargs)
        if result is None:
            raise TelegramError(f"{_name(fn)} returned no result")
        return result

    # --- intent-named helpers -------------------------------------------
    def send_text(
        self,
        chat_id: int,
        text: str,
        markup: types.InlineKeyboardMarkup | types.ForceReply | None = None,
        reply_to: int | None = None,
    ) -> types.Message:
        return self._result(self.bot.send_message, chat_id, text, reply_markup=markup, **_replying(reply_to))

    def edit_text(self, chat_id: int, message_id: int, text: str, markup=None) -> None:
        self.call(self.bot.edit_message_text, text, chat_id, message_id, reply_markup=markup)

    def edit_caption(self, chat_id: int, message_id: int, caption: str, markup=None) -> None:
        self.call(self.bot.edit_message_caption, caption, chat_id, message_id, reply_markup=markup)

    def edit_photo(self, chat_id: int, message_id: int, jpeg: bytes, caption: str) -> None:
        # telebot annotates media as str | InputFile, yet uploads raw bytes (attach://) too; bytes,
        # unlike a stream, can be sent again on a retry.
        media = types.InputMediaPhoto(jpeg, caption=caption)  # type: ignore[arg-type]
        self.call(self.bot.edit_message_media, media, chat_id, message_id)

    def send_photo(
        self, chat_id: int, jpeg: bytes | str, caption: str | None = None, markup=None, reply_to: int | None = None
    ) -> types.Message:
        return self._result(
            self.bot.send_photo, chat_id, jpeg, caption=caption, reply_markup=markup, **_replying(reply_to)
        )

    def send_document(
        self,
        chat_id: int,
        data: bytes,
        file_name: str,
        caption: str | None = None,
        markup=None,
        reply_to: int | None = None,
    ) -> types.Message:
        return self._result(
            self.bot.send_document,
            chat_id,
            data,
            caption=caption,
            reply_markup=markup,
            visible_file_name=file_name,
            **_replying(reply_to),
        )

    def send_animation(
        self,
        chat_id: int,
        data: bytes,
        file_name: str,
        size: tuple[int, int] | None = None,
        caption: str | None = None,
        reply_to: int | None = None,
    ) -> types.Message:
        """An animation Telegram plays inline (GIF or MP4), e.g. the "How it was painted" timelapse.

        The upload is named (Telegram tells a GIF by its name too) and rebuilt on
        each attempt: a retry must not send a stream already read to its end.
        """
        width, height = size if size is not None else (None, None)

        def send_animation() -> types.Message:
            upload = types.InputFile(io.BytesIO(data), file_name=file_name)
            return self.bot.send_animation(
                chat_id, upload, caption=caption, width=width, height=height, **_replying(reply_to)
            )

        return self._result(send_animation)

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
        """The file's bytes, or :class:`TelegramError` within about ``download_total`` seconds.

        telebot's ``download_file`` has no timeout (a stalled server hung a
        worker for good) and lets a body cut short escape as
        ``ChunkedEncodingError``. Here every attempt has (connect, read)
        timeouts, the whole download a wall-clock deadline (overrun by at most
        one read timeout) and a size cap; a dropped, short or stalled transfer
        is retried with backoff up to ``download_attempts`` times. A file over
        the cap fails at once with "file is too big".
        """
        deadline = time.monotonic() + self.download_total
        info = self._result(self.bot.get_file, file_id)
        if info.file_size and info.file_size > self.download_max_bytes:
            raise TelegramError("Bad Request: file is too big", 400)
        if info.file_path is None:  # Telegram may omit it; a URL ending in "None" would only 404
            raise TelegramError("getFile returned no file_path")
        url = _file_url(self.bot.token, check_file_path(info.file_path))
        delay = self.backoff
        attempt = 0
        last = Upstream.TIMEOUT  # a deadline passed before any attempt ended is a timeout
        while attempt < self.download_attempts:
            attempt += 1
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                return self._download_once(url, min(self.read_timeout, left), deadline)
            except (*TRANSIENT, _Dropped) as exc:
                last = Upstream.TIMEOUT if isinstance(exc, (requests.Timeout, _Stalled)) else Upstream.SERVER
                # The type only: requests' messages carry the URL, and the URL the token.
                log.warning("download: %s, attempt %d of %d", type(exc).__name__, attempt, self.download_attempts)
            if attempt == self.download_attempts:
                break
            if self.stop.wait(min(delay, max(0.0, deadline - time.monotonic()))):
                break
            delay = min(delay * 2, self.max_wait)
        raise TelegramError(f"download failed after {attempt} attempts", upstream=last)

    def _download_once(self, url: str, read_timeout: float, deadline: float) -> bytes:
        session = getattr(self._sessions, "session", None)
        if session is None:
            session = self._sessions.session = requests.Session()
        # identity: Content-Length must be the length of what we count.
        with session.get(
            url,
            stream=True,
            timeout=(self.connect_timeout, read_timeout),
            headers={"Accept-Encoding": "identity"},
            proxies=apihelper.proxy,
            allow_redirects=False,  # the URL carries the token: it goes to the API host and nowhere else
        ) as response:
            status = response.status_code
            if response.is_redirect or 300 <= status < 400:
                raise TelegramError(f"HTTP {status}: the file server redirected the download; not followed", status)
            if status == 429 or status >= 500:
                raise _Dropped(f"HTTP {status}")
            if status != 200:
                raise TelegramError(f"HTTP {status}", status)
            expected = _content_length(response)
            if expected is not None and expected > self.download_max_bytes:
                raise TelegramError("Bad Request: file is too big", 400)
            data = bytearray()
            for chunk in response.iter_content(64 * 1024):
                data += chunk
                if len(data) > self.download_max_bytes:
                    raise TelegramError("Bad Request: file is too big", 400)
                if time.monotonic() > deadline:
                    raise _Stalled("download deadline passed")
            if expected is not None and len(data) != expected:
                raise _Dropped(f"short body: {len(data)} of {expected} bytes")
            return bytes(data)


def _replying(reply_to: int | None) -> dict[str, Any]:
    """``reply_parameters`` for a reply (groups: the answer sits under the user's message), or nothing.

    Sent even when the user has deleted that message since: a lost reply must not lose the answer.
    """
    if reply_to is None:
        return {}
    return {"reply_parameters": types.ReplyParameters(reply_to, allow_sending_without_reply=True)}


def _file_url(token: str, file_path: str) -> str:
    template = apihelper.FILE_URL or "https://api.telegram.org/file/bot{0}/{1}"
    return template.format(token, file_path)


def _content_length(response: requests.Response) -> int | None:
    try:
        value = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", "call")

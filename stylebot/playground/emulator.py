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
"""

from __future__ import annotations

import email.parser
import email.policy
import html
import io
import itertools
import json
import logging
import mimetypes
import queue
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from PIL import Image, ImageOps

__all__ = ["ApiError", "BotAPIEmulator", "Call"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Telegram's limits (https://core.telegram.org/bots/api#sending-files).
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES = 10_000            # width + height
GETFILE_MAX_BYTES = 20 * 1024 * 1024
TEXT_MAX = 4096
CAPTION_MAX = 1024
CALLBACK_DATA_MAX = 64
PHOTO_SIZES = (90, 320, 800, 1280)  # the thumbnails Telegram makes; the largest size is capped at 2560
PHOTO_LONG_SIDE_MAX = 2560

NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message")
BLOCKED = "Forbidden: bot was blocked by the user"
WEBHOOK_CONFLICT = ("Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first")
DEFAULT_DESCRIPTIONS = {
    400: "Bad Request", 401: "Unauthorized", 403: BLOCKED, 404: "Not Found", 409: "Conflict",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


class ApiError(Exception):
    """An error answer of the Bot API: ``{"ok": false, "error_code", "description", "parameters"?}``."""

    def __init__(self, code: int, description: str, parameters: dict | None = None):
        super().__init__(f"{code} {description}")
        self.code, self.description, self.parameters = code, description, parameters

    def payload(self) -> dict:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


@dataclass
class Call:
    """One request the bot made: decoded parameters (strings as sent), uploaded files and the answer."""

    method: str
    params: dict[str, Any]
    files: dict[str, bytes]
    time: float
    status: int = 200
    response: dict = field(default_factory=dict, repr=False)


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str


@dataclass
class _StoredMessage:
    message: dict          # exactly what Telegram would return for it
    from_bot: bool
    edits: int = 0


@dataclass
class _Fault:
    error: ApiError
    times: int


@dataclass
class _TransferFault:
    """A broken transfer: ``stall`` waits ``seconds`` (after ``after`` body bytes, if set) before
    answering; ``drop`` sends the headers with the full Content-Length, part of the body, and hangs up."""

    kind: str
    times: int
    seconds: float = 0.0
    after: int | None = None
    file_id: str | None = None


class BotAPIEmulator:
    """A Bot API server on 127.0.0.1 in a daemon thread, plus the user's side of the chats.

    Thread-safe: the HTTP handler threads, the webhook sender and the test thread share one lock.
    """

    def __init__(self, token: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 max_poll_timeout: float = 1.0, bot_name: str = "Style Bot",
                 bot_username: str = "style_test_bot", max_calls: int = 100_000):
        # A fresh token per emulator by default: telebot's server URL is a process-wide global, so a bot
        # still polling from an earlier test follows it to the next emulator, and with a shared token it
        # took that emulator's updates (a playground test lost its /start that way in CI).
        token = token or f"123456:TEST-{secrets.token_hex(8)}"
        self.token = token
        self.host, self.port = host, port
        self.max_poll_timeout = max_poll_timeout
        self.bot_user = {"id": int(token.split(":")[0]) if token.split(":")[0].isdigit() else 1,
                         "is_bot": True, "first_name": bot_name, "username": bot_username,
                         "can_join_groups": True, "can_read_all_group_messages": False,
                         "supports_inline_queries": False}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)   # new update, webhook change or close
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._calls: deque[Call] = deque(maxlen=max_calls)
        self._unknown: list[Call] = []
        self._files: dict[str, _StoredFile] = {}
        self._paths: dict[str, str] = {}                  # file_path -> file_id
        self._photo_sets: dict[str, list[dict]] = {}      # any size's file_id -> the whole PhotoSize list
        self._messages: dict[int, dict[int, _StoredMessage]] = {}   # chat_id -> message_id -> message
        self._next_message_id: dict[int, int] = {}
        self._users: dict[int, dict] = {}
        self._blocked: set[int] = set()
        self._groups: dict[int, dict] = {}                # group chat_id -> its Chat object
        self._faults: dict[str, deque[_Fault]] = {}
        self._transfer_faults: dict[str, deque[_TransferFault]] = {}   # "file" or a method, lowercase
        self._unstall = threading.Event()                # set on close: stalled answers end at once
        self._downloads: list[tuple[str, str]] = []       # (file_id, "ok" | "stall" | "drop"), in order
        self._updates: list[dict] = []                    # pending (unconfirmed) updates, oldest first
        self._allowed_updates: list[str] | None = None
        self._last_update: dict | None = None
        self._callback_queries: dict[str, dict] = {}
        self._commands: dict[str, list[dict]] = {}        # scope/language key -> commands
        self._webhook: dict | None = None
        self._webhook_error: tuple[int, str] | None = None
        self._subscribers: list[tuple[int | None, queue.Queue]] = []
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._closing = False
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> BotAPIEmulator:
        """Bind the port, serve in a daemon thread and start the webhook sender; returns self."""
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = _QuietServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://{self.host}:{self.port}"
        for target, args, name in ((self._server.serve_forever, (0.05,), "bot-api-emulator"),
                                   (self._webhook_loop, (), "bot-api-webhook")):
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop serving, wake pending long polls and the webhook sender, and free the port."""
        with self._lock:
            self._closing = True
            self._changed.notify_all()
        self._unstall.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> BotAPIEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the user's side

    # ``chat_id``: by default the user's private chat (its id is the user's); a negative id is a group
    # the user writes in (``"type": "group"`` with a title), the bot a member of it.

    def send_text(self, user_id: int, text: str, language_code: str = "en", first_name: str = "Ann",
                  chat_id: int | None = None) -> dict:
        """The user types ``text``; a leading ``/command`` gets a ``bot_command`` entity like in Telegram."""
        content: dict[str, Any] = {"text": text}
        command = re.match(r"/\w+(@\w+)?", text)
        if command:
            content["entities"] = [{"offset": 0, "length": command.end(), "type": "bot_command"}]
        return self._user_message(user_id, content, language_code, first_name, chat_id=chat_id)

    def send_photo(self, user_id: int, image_bytes: bytes, caption: str | None = None,
                   language_code: str = "en", media_group_id: str | None = None, chat_id: int | None = None) -> dict:
        """The user sends a picture as a photo: Telegram re-encodes it to JPEGs of several sizes."""
        content: dict[str, Any] = {"photo": self._store_photo(image_bytes, keep_original=False)}
        if caption:
            content["caption"] = caption
        if media_group_id:
            content["media_group_id"] = media_group_id
        return self._user_message(user_id, content, language_code, chat_id=chat_id)

    def send_document(self, user_id: int, data: bytes, file_name: str, mime_type: str,
                      language_code: str = "en", media_group_id: str | None = None,
                      chat_id: int | None = None) -> dict:
        """The user sends a file as is (e.g. an image "as file", uncompressed)."""
        content: dict[str, Any] = {"document": self._store_document(data, file_name, mime_type)}
        if media_group_id:
            content["media_group_id"] = media_group_id
        return self._user_message(user_id, content, language_code, chat_id=chat_id)

    def send_album(self, user_id: int, images: list[bytes], language_code: str = "en",
                   chat_id: int | None = None) -> list[dict]:
        """The user sends several photos at once: one update per photo, sharing a ``media_group_id``."""
        group = f"album{next(self._ids)}"
        return [self.send_photo(user_id, image, language_code=language_code, media_group_id=group, chat_id=chat_id)
                for image in images]

    def press_button(self, user_id: int, message_id: int, callback_data: str, language_code: str = "en",
                     chat_id: int | None = None) -> dict:
        """The user presses an inline button of a bot message; returns the ``callback_query`` update."""
        chat = user_id if chat_id is None else chat_id
        with self._lock:
            stored = self._messages.get(chat, {}).get(message_id)
            if stored is None or not stored.from_bot:
                raise ValueError(f"no bot message {message_id} in chat {chat}")
            rows = stored.message.get("reply_markup", {}).get("inline_keyboard", [])
            if not any(b.get("callback_data") == callback_data for row in rows for b in row):
                raise ValueError(f"message {message_id} has no button with callback_data {callback_data!r}")
            return self._callback_update(user_id, stored, callback_data, language_code, chat)

    def send_callback_query(self, user_id: int, message_id: int, data: str, language_code: str = "en",
                            chat_id: int | None = None) -> dict:
        """A ``callback_query`` with any ``data`` on a bot message, whether or not it has that button:
        what an old client, a since-edited keyboard or a forged request delivers."""
        chat = user_id if chat_id is None else chat_id
        with self._lock:
            stored = self._messages.get(chat, {}).get(message_id)
            if stored is None or not stored.from_bot:
                raise ValueError(f"no bot message {message_id} in chat {chat}")
            return self._callback_update(user_id, stored, data, language_code, chat)

    def _callback_update(self, user_id: int, stored: _StoredMessage, data: str, language_code: str,
                         chat: int) -> dict:
        query = {"id": str(next(self._ids) * 7919), "from": self._user(user_id, language_code),
                 "message": dict(stored.message), "chat_instance": str(chat * 31), "data": data}
        self._callback_queries[query["id"]] = query
        return self._add_update({"callback_query": query})

    # ------------------------------------------------------------------ what the bot did

    def bot_messages(self, chat_id: int) -> list[dict]:
        """The bot's messages in a chat as they are now (edits applied, deleted ones gone), oldest first."""
        with self._lock:
            return [dict(s.message, edits=s.edits) for s in self._messages.get(chat_id, {}).values()
                    if s.from_bot]

    def chat_history(self, chat_id: int) -> list[dict]:
        """Every message in the chat, the user's and the bot's, each with ``from_bot`` and ``edits``."""
        with self._lock:
            return [dict(s.message, edits=s.edits, from_bot=s.from_bot)
                    for s in self._messages.get(chat_id, {}).values()]

    def calls(self, method: str | None = None) -> list[Call]:
        """Every API call recorded so far (failed ones too), optionally only those of ``method``."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method.lower() == method.lower()]

    def unknown_calls(self) -> list[Call]:
        """Calls of methods this server does not know (answered 404): a correct bot makes none."""
        with self._lock:
            return list(self._unknown)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 30.0, what: str = "") -> T:
        """Poll ``predicate`` until it is truthy and return its value; on timeout fail with recent calls."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}\n{self.summary()}")
            time.sleep(0.02)

    def summary(self, last: int = 15) -> str:
        """A short, readable list of the last calls (for failure messages)."""
        lines = []
        for call in self.calls()[-last:]:
            params = {k: (v if len(str(v)) < 80 else str(v)[:77] + "...") for k, v in call.params.items()}
            lines.append(f"  {call.method} {call.status} {params} files={list(call.files)}")
        return "recent calls:\n" + ("\n".join(lines) or "  (none)")

    def file_bytes(self, file_id: str) -> bytes:
        """The bytes of any stored file, sent by the user or by the bot."""
        with self._lock:
            return self._files[file_id].data

    # ------------------------------------------------------------------ fault injection

    def fail_next(self, method: str, error_code: int = 429, description: str | None = None,
                  retry_after: int | None = None, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with an error instead of doing them."""
        if method.lower() not in _CANONICAL:
            raise ValueError(f"{method!r} is not a method this emulator serves")   # a typo would never fire
        parameters = None
        if error_code == 429:
            retry_after = 1 if retry_after is None else retry_after
            description = description or f"Too Many Requests: retry after {retry_after}"
        if retry_after is not None:
            parameters = {"retry_after": retry_after}
        error = ApiError(error_code, description or DEFAULT_DESCRIPTIONS.get(error_code, "Error"), parameters)
        with self._lock:
            self._faults.setdefault(method.lower(), deque()).append(_Fault(error, times))

    def stall_next(self, target: str, seconds: float, times: int = 1, after: int | None = None,
                   file_id: str | None = None) -> None:
        """The next ``times`` requests to ``target`` wait ``seconds`` before answering.

        ``target`` is ``"file"`` (a download) or a method name. With ``after``, the headers and that many
        body bytes go out first and the stall is mid-body. ``file_id`` limits a ``"file"`` fault to that
        file's downloads (others pass untouched). A stall ends early when the emulator closes. A stalled
        method call still takes effect; only its answer is late, as when Telegram's reply is lost.
        """
        self._add_transfer_fault(target, _TransferFault("stall", times, seconds, after, file_id))

    def drop_next(self, target: str, times: int = 1, after: int | None = None, file_id: str | None = None) -> None:
        """The next ``times`` requests to ``target`` get the headers (with the full Content-Length) and
        ``after`` bytes of the body (half by default), then the connection is closed: a transfer cut short."""
        self._add_transfer_fault(target, _TransferFault("drop", times, 0.0, after, file_id))

    def _add_transfer_fault(self, target: str, fault: _TransferFault) -> None:
        key = target.lower()
        if key != "file" and key not in _CANONICAL:
            raise ValueError(f"{target!r} is neither 'file' nor a method this emulator serves")
        if fault.file_id is not None and key != "file":
            raise ValueError("file_id only applies to the 'file' target")
        with self._lock:
            self._transfer_faults.setdefault(key, deque()).append(fault)

    def downloads(self, file_id: str | None = None) -> list[str]:
        """How each file download went, in order: ``"ok"``, ``"stall"`` or ``"drop"`` (the fault it met)."""
        with self._lock:
            return [outcome for fid, outcome in self._downloads if file_id is None or fid == file_id]

    def _take_transfer_fault(self, target: str, file_path: str | None = None) -> _TransferFault | None:
        """The first pending fault for this request (matching its file, if the fault names one), used up."""
        with self._lock:
            file_id = self._paths.get(file_path or "")
            taken = None
            for fault in self._transfer_faults.get(target.lower(), ()):
                if fault.file_id is None or fault.file_id == file_id:
                    taken = fault
                    fault.times -= 1
                    if fault.times <= 0:
                        self._transfer_faults[target.lower()].remove(fault)
                    break
            if file_path is not None and file_id is not None:
                self._downloads.append((file_id, taken.kind if taken else "ok"))
            return taken

    def block_user(self, chat_id: int) -> None:
        """The user blocks the bot: any send or edit to the chat gets 403 from now on."""
        with self._lock:
            self._blocked.add(chat_id)

    def unblock_user(self, chat_id: int) -> None:
        with self._lock:
            self._blocked.discard(chat_id)

    def redeliver_last_update(self) -> int:
        """Deliver the last delivered update once more, as Telegram may; returns the HTTP status.

        With a webhook it is POSTed again. Without one it goes back in front of the pending updates,
        as when the bot died before its next ``getUpdates`` confirmed it: a bot that polls with a
        larger offset never gets it (that is the offset's job), one that lost its offset does.
        Returns 200 in that case.
        """
        with self._lock:
            webhook, update = self._webhook, self._last_update
            if update is None:
                raise RuntimeError("nothing delivered yet")
            if webhook is None:
                if all(u["update_id"] != update["update_id"] for u in self._updates):
                    self._updates.insert(0, update)
                self._changed.notify_all()
                return 200
        return self._post_update(webhook, update)

    # ------------------------------------------------------------------ live events (the playground)

    def subscribe(self, chat_id: int | None = None) -> queue.Queue:
        """A queue of events for one chat (or all): ``{"type": "message" | "edit" | "delete" | "action" |
        "callback_answer", "chat_id", ...}``; message events carry the message with ``from_bot``."""
        events: queue.Queue = queue.Queue()
        with self._lock:
            self._subscribers.append((chat_id, events))
        return events

    def unsubscribe(self, events: queue.Queue) -> None:
        with self._lock:
            self._subscribers = [(c, q) for c, q in self._subscribers if q is not events]

    def _emit(self, chat_id: int, kind: str, **data: Any) -> None:
        event = {"type": kind, "chat_id": chat_id, **data}
        for wanted, events in self._subscribers:
            if wanted is None or wanted == chat_id:
                events.put(event)

    def _emit_message(self, kind: str, chat_id: int, stored: _StoredMessage) -> None:
        self._emit(chat_id, kind, message=dict(stored.message, edits=stored.edits, from_bot=stored.from_bot))

    # ------------------------------------------------------------------ storage helpers

    def _new_file(self, data: bytes, folder: str, extension: str) -> _StoredFile:
        n = next(self._ids)
        stored = _StoredFile(f"{folder[:3].upper()}-{n:06d}-{hash((n, folder)) & 0xFFFFFF:06x}",
                             f"U{n:08d}", data, f"{folder}/file_{n}{extension}")
        self._files[stored.file_id] = stored
        self._paths[stored.file_path] = stored.file_id
        return stored

    def _store_photo(self, data: bytes, keep_original: bool) -> list[dict]:
        """Make Telegram's PhotoSize list, smallest first. A picture Pillow cannot decode is kept as
        one size of raw bytes (so the bot under test meets the broken file it would get)."""
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
            image = ImageOps.exif_transpose(image).convert("RGB")
        except Exception:  # noqa: BLE001 - any undecodable input is stored raw on purpose
            size = _header_size(data)
            stored = self._new_file(data, "photos", ".jpg")
            return [self._photo_size(stored, *size)]
        sizes: list[dict] = []
        for side in PHOTO_SIZES:
            if max(image.size) > side:
                small = image.copy()
                small.thumbnail((side, side))
                sizes.append(self._photo_size(self._new_file(_jpeg(small), "photos", ".jpg"), *small.size))
        if keep_original and max(image.size) <= PHOTO_LONG_SIDE_MAX:
            largest, dims = data, image.size
        else:
            image.thumbnail((PHOTO_LONG_SIDE_MAX, PHOTO_LONG_SIDE_MAX))
            largest, dims = _jpeg(image, quality=92), image.size
        sizes.append(self._photo_size(self._new_file(largest, "photos", ".jpg"), *dims))
        for size in sizes:
            self._photo_sets[size["file_id"]] = sizes
        return sizes

    def _photo_size(self, stored: _StoredFile, width: int, height: int) -> dict:
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "width": width, "height": height, "file_size": len(stored.data)}

    def _store_document(self, data: bytes, file_name: str, mime_type: str | None) -> dict:
        extension = "." + file_name.rsplit(".", 1)[-1] if "." in file_name else ""
        stored = self._new_file(data, "documents", extension[:8])
        return {"file_name": file_name,
                "mime_type": mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream",
                "file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_size": len(data)}

    def _user(self, user_id: int, language_code: str = "en", first_name: str = "Ann") -> dict:
        user = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": language_code}
        self._users[user_id] = user
        return user

    def _chat(self, chat_id: int) -> dict:
        if chat_id in self._groups:
            return dict(self._groups[chat_id])
        user = self._users.get(chat_id, {"first_name": "Ann"})
        return {"id": chat_id, "first_name": user["first_name"], "type": "private"}

    def _new_message(self, chat_id: int, sender: dict, content: dict, from_bot: bool) -> _StoredMessage:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        message = {"message_id": message_id, "from": sender, "chat": self._chat(chat_id),
                   "date": int(time.time()), **content}
        stored = _StoredMessage(message, from_bot)
        self._messages.setdefault(chat_id, {})[message_id] = stored
        self._emit_message("message", chat_id, stored)
        return stored

    def _user_message(self, user_id: int, content: dict, language_code: str, first_name: str = "Ann",
                      chat_id: int | None = None) -> dict:
        chat = user_id if chat_id is None else chat_id
        if chat != user_id and chat >= 0:
            raise ValueError("a group chat id is negative (a positive one is a user's private chat)")
        with self._lock:
            if chat < 0:
                self._groups.setdefault(chat, {"id": chat, "title": f"Group {-chat}", "type": "group"})
            stored = self._new_message(chat, self._user(user_id, language_code, first_name), content, False)
            self._add_update({"message": stored.message})
            return dict(stored.message)

    def _add_update(self, body: dict) -> dict:
        update = {"update_id": next(self._update_ids), **body}
        self._updates.append(update)
        self._changed.notify_all()
        return update

    # ------------------------------------------------------------------ HTTP entry point

    def handle(self, method: str, params: dict[str, Any], files: dict[str, tuple[str, bytes]]) -> tuple[int, dict]:
        """Run one API call and record it; returns (HTTP status, JSON body). Called by the HTTP handler."""
        name = _CANONICAL.get(method.lower())
        call = Call(name or method, params, {k: v[1] for k, v in files.items()}, time.time())
        try:
            if name is None:
                raise ApiError(404, "Not Found")
            with self._lock:
                self._maybe_fail(name)
            result = getattr(self, "_api_" + name)(_Params(params), files)
            status, body = 200, {"ok": True, "result": result}
        except ApiError as error:
            status, body = error.code, error.payload()
        call.status, call.response = status, body
        with self._lock:
            self._calls.append(call)
            if name is None:
                self._unknown.append(call)
        return status, body

    def download(self, file_path: str) -> bytes | None:
        with self._lock:
            file_id = self._paths.get(file_path)
            return self._files[file_id].data if file_id else None

    def _maybe_fail(self, name: str) -> None:
        faults = self._faults.get(name.lower())
        if faults:
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.popleft()
            raise fault.error

    # ------------------------------------------------------------------ API methods

    def _api_getMe(self, p: _Params, files: dict) -> dict:
        return dict(self.bot_user)

    def _api_getUpdates(self, p: _Params, files: dict) -> list[dict]:
        offset, limit = p.int("offset", 0), max(1, min(p.int("limit", 100), 100))
        deadline = time.monotonic() + min(p.float("timeout", 0.0), self.max_poll_timeout)
        with self._lock:
            if self._webhook is not None:
                raise ApiError(409, WEBHOOK_CONFLICT)
            if "allowed_updates" in p:
                self._allowed_updates = p.json("allowed_updates") or None
            if offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:
                self._updates = self._updates[offset:]
            while True:
                self._drop_disallowed()
                if self._updates or self._closing or self._webhook is not None:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            batch = self._updates[:limit]
            if batch:
                self._last_update = batch[-1]
            return batch

    def _drop_disallowed(self) -> None:
        if self._allowed_updates:
            self._updates = [u for u in self._updates if _update_type(u) in self._allowed_updates]

    def _api_setWebhook(self, p: _Params, files: dict) -> bool:
        url = p.str("url", "")
        with self._lock:
            if not url:
                self._webhook = None
            else:
                if not url.startswith(("http://", "https://")):
                    raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
                self._webhook = {"url": url, "secret_token": p.str("secret_token", "") or None,
                                 "max_connections": p.int("max_connections", 40)}
                if "allowed_updates" in p:
                    self._allowed_updates = p.json("allowed_updates") or None
            if p.bool("drop_pending_updates"):
                self._updates.clear()
            self._webhook_error = None
            self._changed.notify_all()
        return True

    def _api_deleteWebhook(self, p: _Params, files: dict) -> bool:
        with self._lock:
            self._webhook = None
            if p.bool("drop_pending_updates"):
                self._updates.clear()
            self._changed.notify_all()
        return True

    def _api_getWebhookInfo(self, p: _Params, files: dict) -> dict:
        with self._lock:
            info: dict[str, Any] = {"url": self._webhook["url"] if self._webhook else "",
                                    "has_custom_certificate": False, "pending_update_count": len(self._updates)}
            if self._webhook:
                info["max_connections"] = self._webhook["max_connections"]
                if self._allowed_updates:
                    info["allowed_updates"] = self._allowed_updates
            if self._webhook_error:
                info["last_error_date"], info["last_error_message"] = self._webhook_error
            return info

    def _commands_key(self, p: _Params) -> str:
        scope = p.json("scope") or {"type": "default"}
        return json.dumps([scope, p.str("language_code", "")], sort_keys=True)

    def _api_setMyCommands(self, p: _Params, files: dict) -> bool:
        commands = p.json("commands")
        if not isinstance(commands, list) or not all(
                isinstance(c, dict) and re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command", "")))
                and 1 <= len(str(c.get("description", ""))) <= 256 for c in commands):
            raise bad_request("BOT_COMMAND_INVALID")
        with self._lock:
            self._commands[self._commands_key(p)] = commands
        return True

    def _api_getMyCommands(self, p: _Params, files: dict) -> list[dict]:
        with self._lock:
            return self._commands.get(self._commands_key(p), [])

    def _api_deleteMyCommands(self, p: _Params, files: dict) -> bool:
        with self._lock:
            self._commands.pop(self._commands_key(p), None)
        return True

    def _api_getChat(self, p: _Params, files: dict) -> dict:
        with self._lock:
            return self._chat(self._target_chat(p, check_blocked=False))

    def _api_setMyDescription(self, p: _Params, files: dict) -> bool:
        return True

    def _api_setMyShortDescription(self, p: _Params, files: dict) -> bool:
        return True

    def _api_sendMessage(self, p: _Params, files: dict) -> dict:
        text = _plain(p.str("text", ""), p.str("parse_mode", ""))
        if not text.strip():
            raise bad_request("message text is empty")
        if len(text) > TEXT_MAX:
            raise bad_request("message is too long")
        return self._send(p, {"text": text})

    def _api_sendPhoto(self, p: _Params, files: dict) -> dict:
        return self._send(p, {"photo": self._input_photo(p.raw("photo"), files), **self._caption(p)})

    def _api_sendDocument(self, p: _Params, files: dict) -> dict:
        return self._send(p, {"document": self._input_document(p.raw("document"), files), **self._caption(p)})

    def _api_sendMediaGroup(self, p: _Params, files: dict) -> list[dict]:
        media = p.json("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise bad_request("wrong number of messages in the media group")
        with self._lock:
            chat_id = self._target_chat(p)
            group = f"group{next(self._ids)}"
            contents = [dict(self._input_media(item, files), media_group_id=group) for item in media]
            return [self._deliver(chat_id, p, content) for content in contents]

    def _api_sendChatAction(self, p: _Params, files: dict) -> bool:
        with self._lock:
            chat_id = self._target_chat(p)
            self._emit(chat_id, "action", action=p.str("action", "typing"))
        return True

    def _api_editMessageText(self, p: _Params, files: dict) -> dict:
        text = _plain(p.str("text", ""), p.str("parse_mode", ""))
        if not text.strip():
            raise bad_request("message text is empty")
        if len(text) > TEXT_MAX:
            raise bad_request("MESSAGE_TOO_LONG")
        with self._lock:
            stored = self._editable(p)
            if "text" not in stored.message:
                raise bad_request("there is no text in the message to edit")
            return self._edit(stored, p, {"text": text})

    def _api_editMessageCaption(self, p: _Params, files: dict) -> dict:
        with self._lock:
            stored = self._editable(p)
            if "text" in stored.message:
                raise bad_request("there is no caption in the message to edit")
            return self._edit(stored, p, self._caption(p), drop=("caption",))

    def _api_editMessageMedia(self, p: _Params, files: dict) -> dict:
        media = p.json("media")
        if not isinstance(media, dict):
            raise bad_request("can't parse InputMedia JSON object")
        with self._lock:
            stored = self._editable(p)
            if "text" in stored.message:
                raise bad_request("there is no media in the message to edit")
            return self._edit(stored, p, self._input_media(media, files), drop=("caption", "photo", "document"))

    def _api_editMessageReplyMarkup(self, p: _Params, files: dict) -> dict:
        with self._lock:
            return self._edit(self._editable(p), p, {})

    def _api_deleteMessage(self, p: _Params, files: dict) -> bool:
        with self._lock:
            chat_id = self._target_chat(p)
            if self._messages.get(chat_id, {}).pop(p.int("message_id", 0), None) is None:
                raise bad_request("message to delete not found")
            self._emit(chat_id, "delete", message_id=p.int("message_id", 0))
        return True

    def _api_getFile(self, p: _Params, files: dict) -> dict:
        with self._lock:
            stored = self._files.get(p.str("file_id", ""))
            if stored is None:
                raise bad_request("invalid file_id")
            if len(stored.data) > GETFILE_MAX_BYTES:
                raise bad_request("file is too big")
            return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                    "file_size": len(stored.data), "file_path": stored.file_path}

    def _api_answerCallbackQuery(self, p: _Params, files: dict) -> bool:
        with self._lock:
            query = self._callback_queries.pop(p.str("callback_query_id", ""), None)
            if query is None:
                raise bad_request("query is too old and response timeout expired or query ID is invalid")
            self._emit(query["from"]["id"], "callback_answer", text=p.str("text", ""),
                       show_alert=p.bool("show_alert"))
        return True

    # ------------------------------------------------------------------ sending and editing

    def _target_chat(self, p: _Params, check_blocked: bool = True) -> int:
        """The chat of a send/edit: it must exist (the user wrote first) and must not have blocked the bot."""
        try:
            chat_id = int(p.str("chat_id", ""))
        except ValueError:
            raise bad_request("chat not found") from None
        if chat_id not in self._users and chat_id not in self._groups:
            raise bad_request("chat not found")
        if check_blocked and chat_id in self._blocked:
            raise ApiError(403, BLOCKED)
        return chat_id

    def _send(self, p: _Params, content: dict) -> dict:
        with self._lock:
            return self._deliver(self._target_chat(p), p, content)

    def _deliver(self, chat_id: int, p: _Params, content: dict) -> dict:
        markup = self._markup(p)
        if markup:
            content["reply_markup"] = markup
        reply_to = p.int("reply_to_message_id", 0) or (p.json("reply_parameters") or {}).get("message_id", 0)
        if reply_to:
            original = self._messages.get(chat_id, {}).get(int(reply_to))
            if original is not None:
                content["reply_to_message"] = dict(original.message)
            elif not (p.bool("allow_sending_without_reply")
                      or (p.json("reply_parameters") or {}).get("allow_sending_without_reply")):
                raise bad_request("message to be replied not found")
        sender = {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}
        return dict(self._new_message(chat_id, sender, content, True).message)

    def _editable(self, p: _Params) -> _StoredMessage:
        if p.str("inline_message_id", ""):
            raise bad_request("MESSAGE_ID_INVALID")   # inline mode is not emulated
        chat_id = self._target_chat(p)
        stored = self._messages.get(chat_id, {}).get(p.int("message_id", 0))
        if stored is None or not stored.from_bot:
            raise bad_request("message to edit not found")
        return stored

    def _edit(self, stored: _StoredMessage, p: _Params, content: dict, drop: tuple[str, ...] = ()) -> dict:
        """Apply an edit like Telegram: identical content and markup is an error; otherwise count it."""
        new = {k: v for k, v in stored.message.items() if k not in drop and k not in ("reply_markup", "edit_date")}
        new.update(content)
        markup = self._markup(p)
        if markup:
            new["reply_markup"] = markup
        old = {k: v for k, v in stored.message.items() if k != "edit_date"}
        if _same_content(old, new):
            raise bad_request(NOT_MODIFIED[len("Bad Request: "):])
        new["edit_date"] = int(time.time())
        stored.message, stored.edits = new, stored.edits + 1
        self._emit_message("edit", stored.message["chat"]["id"], stored)
        return dict(new)

    def _caption(self, p: _Params) -> dict:
        caption = _plain(p.str("caption", ""), p.str("parse_mode", ""))
        if len(caption) > CAPTION_MAX:
            raise bad_request("message caption is too long")
        return {"caption": caption} if caption else {}

    def _markup(self, p: _Params) -> dict | None:
        """Inline keyboards are part of the message; reply keyboards are not (Telegram doesn't echo them)."""
        if "reply_markup" not in p:
            return None
        try:
            markup = p.json("reply_markup")
        except ValueError:
            raise bad_request("can't parse reply keyboard markup JSON object") from None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return None
        for row in rows:
            for button in row:
                data = button.get("callback_data")
                if not button.get("text"):
                    raise bad_request("BUTTON_TEXT_INVALID")
                if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_MAX:
                    raise bad_request("BUTTON_DATA_INVALID")
        return {"inline_keyboard": rows}

    def _upload(self, value: Any, files: dict[str, tuple[str, bytes]], field_name: str) -> tuple[str, bytes] | str:
        """An InputFile: a multipart upload (by field name or ``attach://name``) or an existing file_id."""
        if isinstance(value, str) and value.startswith("attach://"):
            name = value[len("attach://"):]
            if name not in files:
                raise bad_request("wrong file identifier/HTTP URL specified")
            return files[name]
        if not value and field_name in files:
            return files[field_name]
        if isinstance(value, str) and value in self._files:
            return value
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            raise bad_request("wrong file identifier/HTTP URL specified")
        if not value:
            raise bad_request(f"there is no {field_name} in the request")
        raise bad_request("wrong file identifier/HTTP URL specified")

    def _input_photo(self, value: Any, files: dict, field_name: str = "photo") -> list[dict]:
        upload = self._upload(value, files, field_name)
        if isinstance(upload, str):
            return self._photo_sets.get(upload) or self._store_photo(self._files[upload].data, keep_original=True)
        data = upload[1]
        if len(data) > PHOTO_MAX_BYTES:
            raise bad_request("PHOTO_SAVE_FILE_INVALID")   # Telegram's answer to a photo over 10 MB
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except Exception:  # noqa: BLE001 - Telegram rejects anything it cannot decode
            raise bad_request("IMAGE_PROCESS_FAILED") from None
        if width + height > PHOTO_MAX_SIDES or max(width, height) > 20 * min(width, height):
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        return self._store_photo(data, keep_original=True)

    def _input_document(self, value: Any, files: dict, field_name: str = "document") -> dict:
        upload = self._upload(value, files, field_name)
        if isinstance(upload, str):
            stored = self._files[upload]
            return {"file_name": stored.file_path.rsplit("/", 1)[-1], "mime_type": "application/octet-stream",
                    "file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                    "file_size": len(stored.data)}
        name, data = upload
        if len(data) > 50 * 1024 * 1024:
            raise ApiError(413, "Request Entity Too Large")
        return self._store_document(data, name or "file", None)

    def _input_media(self, item: dict, files: dict) -> dict:
        """One InputMediaPhoto/InputMediaDocument → the message content it becomes."""
        kind = item.get("type")
        caption = _plain(str(item.get("caption") or ""), str(item.get("parse_mode") or ""))
        if len(caption) > CAPTION_MAX:
            raise bad_request("message caption is too long")
        if kind == "photo":
            content: dict[str, Any] = {"photo": self._input_photo(item.get("media"), files, "media")}
        elif kind == "document":
            content = {"document": self._input_document(item.get("media"), files, "media")}
        else:
            raise bad_request(f"unsupported media type {kind!r}")
        if caption:
            content["caption"] = caption
        return content

    # ------------------------------------------------------------------ webhook delivery

    def _webhook_loop(self) -> None:
        """POST pending updates to the webhook one by one, in order; retry failures with backoff."""
        backoff = 0.1
        while True:
            with self._lock:
                while not self._closing and (self._webhook is None or not self._updates):
                    self._changed.wait()
                if self._closing:
                    return
                self._drop_disallowed()
                if not self._updates:
                    continue
                webhook, update = self._webhook, self._updates[0]
            status = self._post_update(webhook, update)
            with self._lock:
                if 200 <= status < 300:
                    backoff = 0.1
                    self._last_update = update
                    if self._updates and self._updates[0] is update:
                        self._updates.pop(0)
                    continue
                self._webhook_error = (int(time.time()), f"Wrong response from the webhook: {status}")
                self._changed.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def _post_update(self, webhook: dict, update: dict) -> int:
        headers = {"Content-Type": "application/json"}
        if webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = webhook["secret_token"]
        request = urllib.request.Request(webhook["url"], json.dumps(update).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0


# ---------------------------------------------------------------------- helpers


_CANONICAL = {name[len("_api_"):].lower(): name[len("_api_"):]
              for name in vars(BotAPIEmulator) if name.startswith("_api_")}


class _Params:
    """Request parameters as sent (strings, or JSON values from a JSON body), with typed getters."""

    def __init__(self, values: dict[str, Any]):
        self.values = values

    def __contains__(self, key: str) -> bool:
        return key in self.values and self.values[key] not in (None, "")

    def raw(self, key: str) -> Any:
        return self.values.get(key)

    def str(self, key: str, default: str = "") -> str:
        value = self.values.get(key)
        return default if value is None else str(value)

    def int(self, key: str, default: int = 0) -> int:
        try:
            return int(self.values.get(key, default))
        except (TypeError, ValueError):
            raise bad_request(f"invalid {key}") from None

    def float(self, key: str, default: float = 0.0) -> float:
        try:
            return float(self.values.get(key, default))
        except (TypeError, ValueError):
            raise bad_request(f"invalid {key}") from None

    def bool(self, key: str) -> bool:
        return str(self.values.get(key, "")).lower() in ("true", "1")

    def json(self, key: str) -> Any:
        """A JSON parameter: telebot sends it as a string; a JSON body carries it as a value already."""
        value = self.values.get(key)
        if isinstance(value, str):
            return json.loads(value) if value else None
        return value


def _update_type(update: dict) -> str:
    return next(k for k in update if k != "update_id")


def _same_content(old: dict, new: dict) -> bool:
    keys = ("text", "caption", "photo", "document", "reply_markup")
    return all(old.get(k) == new.get(k) for k in keys)


def _plain(text: str, parse_mode: str) -> str:
    """The text a user would see: Telegram strips HTML markup (other parse modes are kept verbatim)."""
    if parse_mode.upper() == "HTML":
        return html.unescape(re.sub(r"<[^>]+>", "", text))
    return text


def _jpeg(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _header_size(data: bytes) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # noqa: BLE001 - not even a header: report a 1x1 "photo"
        return 1, 1


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Split multipart/form-data into fields and files (a part with a filename is a file)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_param("filename", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if filename is not None:
            files[name] = (filename, data)
        else:
            fields[name] = data.decode("utf-8")
    return fields, files


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-reply (a bot killed in a test) is routine, not a traceback."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Routes ``/bot{token}/{method}`` and ``/file/bot{token}/{path}`` to the emulator."""

    emulator: BotAPIEmulator
    server_version = "BotAPIEmulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        token = self.emulator.token
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path.startswith(f"/file/bot{token}/"):
            file_path = path[len(f"/file/bot{token}/"):]
            self._fault = self.emulator._take_transfer_fault("file", file_path)
            data = self.emulator.download(file_path)
            if data is None:
                return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return self._send(200, data, "application/octet-stream")
        match = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", path)
        if not match:
            return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        if match.group(1) != token:
            return self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        if match.group(2).lower() in _CANONICAL:
            self._fault = self.emulator._take_transfer_fault(match.group(2))
        params: dict[str, Any] = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        files: dict[str, tuple[str, bytes]] = {}
        content_type = self.headers.get("Content-Type", "")
        try:
            if content_type.startswith("multipart/form-data"):
                fields, files = _parse_multipart(content_type, body)
                params.update(fields)
            elif content_type.startswith("application/json") and body:
                params.update(json.loads(body))
            elif body:
                params.update({k: v[-1] for k, v in urllib.parse.parse_qs(body.decode()).items()})
        except (ValueError, UnicodeDecodeError):
            return self._reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid body"})
        status, answer = self.emulator.handle(match.group(2), params, files)
        self._reply(status, answer)

    def _reply(self, status: int, body: dict) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        fault: _TransferFault | None = getattr(self, "_fault", None)
        self._fault = None
        if fault is not None and fault.kind == "stall" and fault.after is None:
            self.emulator._unstall.wait(fault.seconds)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault is None or (fault.kind == "stall" and fault.after is None):
            self.wfile.write(data)
            return
        cut = len(data) // 2 if fault.after is None else max(0, min(fault.after, len(data) - 1))
        self.wfile.write(data[:cut])
        self.wfile.flush()
        if fault.kind == "stall":
            self.emulator._unstall.wait(fault.seconds)
            self.wfile.write(data[cut:])
            return
        self.close_connection = True   # drop: the client sees the body end short of Content-Length

"""The emulator's shared state and the bookkeeping every part of it uses.

Why a base class: the user's side, the API methods, the faults and the webhook sender are mixins over
one set of chats, files and updates guarded by one lock; declaring that state once here lets each mixin
(and mypy) see it without importing the others.
"""

from __future__ import annotations

import io
import itertools
import mimetypes
import queue
import re
import secrets
import threading
import time
from collections import deque
from http.server import ThreadingHTTPServer
from typing import Any

from PIL import Image, ImageOps

from stylebot.playground.emulator.models import (
    PHOTO_LONG_SIDE_MAX,
    PHOTO_SIZES,
    Call,
    _Fault,
    _header_size,
    _jpeg,
    _StoredFile,
    _StoredMessage,
    _TransferFault,
    _update_type,
)


class EmulatorState:
    """The chats, files, updates, webhook and subscribers of one emulator, and the helpers that change them.

    Thread-safe: the HTTP handler threads, the webhook sender and the test thread share one lock.
    """

    def __init__(
        self,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_poll_timeout: float = 1.0,
        bot_name: str = "Style Bot",
        bot_username: str = "style_test_bot",
        max_calls: int = 100_000,
    ):
        # A fresh token per emulator by default: telebot's server URL is a process-wide global, so a bot
        # still polling from an earlier test follows it to the next emulator, and with a shared token it
        # took that emulator's updates (a playground test lost its /start that way in CI).
        token = token or f"123456:TEST-{secrets.token_hex(8)}"
        self.token = token
        self.host, self.port = host, port
        self.max_poll_timeout = max_poll_timeout
        self.bot_user = {
            "id": int(token.split(":")[0]) if token.split(":")[0].isdigit() else 1,
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # new update, webhook change or close
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._calls: deque[Call] = deque(maxlen=max_calls)
        self._unknown: list[Call] = []
        self._files: dict[str, _StoredFile] = {}
        self._paths: dict[str, str] = {}  # file_path -> file_id
        self._photo_sets: dict[str, list[dict]] = {}  # any size's file_id -> the whole PhotoSize list
        self._messages: dict[int, dict[int, _StoredMessage]] = {}  # chat_id -> message_id -> message
        self._next_message_id: dict[int, int] = {}
        self._users: dict[int, dict] = {}
        self._blocked: set[int] = set()
        self._groups: dict[int, dict] = {}  # group chat_id -> its Chat object
        # Telegram's default for bots: in groups only messages addressed to the bot become updates
        # (the rest stay in the chat's history). A test may turn it off like an admin bot.
        self.privacy_mode = True
        self._faults: dict[str, deque[_Fault]] = {}
        self._transfer_faults: dict[str, deque[_TransferFault]] = {}  # "file" or a method, lowercase
        self._unstall = threading.Event()  # set on close: stalled answers end at once
        self._downloads: list[tuple[str, str]] = []  # (file_id, "ok" | "stall" | "drop"), in order
        self._file_path_faults: deque[list] = deque()  # [file_path getFile answers with, times left, file_id]
        self._requests: deque[str] = deque(maxlen=max_calls)  # every request line's target, as received
        self._updates: list[dict] = []  # pending (unconfirmed) updates, oldest first
        self._allowed_updates: list[str] | None = None
        self._last_update: dict | None = None
        self._callback_queries: dict[str, dict] = {}
        self._commands: dict[str, list[dict]] = {}  # scope/language key -> commands
        self._webhook: dict | None = None
        self._webhook_error: tuple[int, str] | None = None
        self._subscribers: list[tuple[int | None, queue.Queue]] = []
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._closing = False
        self.base_url = ""

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
        stored = _StoredFile(
            f"{folder[:3].upper()}-{n:06d}-{hash((n, folder)) & 0xFFFFFF:06x}",
            f"U{n:08d}",
            data,
            f"{folder}/file_{n}{extension}",
        )
        self._files[stored.file_id] = stored
        self._paths[stored.file_path] = stored.file_id
        return stored

    def _store_photo(self, data: bytes, keep_original: bool) -> list[dict]:
        """Make Telegram's PhotoSize list, smallest first. A picture Pillow cannot decode is kept as
        one size of raw bytes (so the bot under test meets the broken file it would get)."""
        try:
            image: Image.Image = Image.open(io.BytesIO(data))
            image.load()
            image = ImageOps.exif_transpose(image).convert("RGB")
        except Exception:  # any undecodable input is stored raw on purpose
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
        for entry in sizes:
            self._photo_sets[entry["file_id"]] = sizes
        return sizes

    def _photo_size(self, stored: _StoredFile, width: int, height: int) -> dict:
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": width,
            "height": height,
            "file_size": len(stored.data),
        }

    def _store_document(self, data: bytes, file_name: str, mime_type: str | None) -> dict:
        extension = "." + file_name.rsplit(".", 1)[-1] if "." in file_name else ""
        stored = self._new_file(data, "documents", extension[:8])
        return {
            "file_name": file_name,
            "mime_type": mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream",
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(data),
        }

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
        message = {
            "message_id": message_id,
            "from": sender,
            "chat": self._chat(chat_id),
            "date": int(time.time()),
            **content,
        }
        stored = _StoredMessage(message, from_bot)
        self._messages.setdefault(chat_id, {})[message_id] = stored
        self._emit_message("message", chat_id, stored)
        return stored

    def _user_message(
        self,
        user_id: int,
        content: dict,
        language_code: str,
        first_name: str = "Ann",
        chat_id: int | None = None,
        reply_to: int | None = None,
    ) -> dict:
        chat = user_id if chat_id is None else chat_id
        if chat != user_id and chat >= 0:
            raise ValueError("a group chat id is negative (a positive one is a user's private chat)")
        with self._lock:
            if chat < 0:
                self._groups.setdefault(chat, {"id": chat, "title": f"Group {-chat}", "type": "group"})
            if reply_to is not None:
                original = self._messages.get(chat, {}).get(reply_to)
                if original is None:
                    raise ValueError(f"no message {reply_to} in chat {chat} to reply to")
                # Telegram embeds the replied-to message one level deep (without its own reply).
                content = dict(
                    content, reply_to_message={k: v for k, v in original.message.items() if k != "reply_to_message"}
                )
            stored = self._new_message(chat, self._user(user_id, language_code, first_name), content, False)
            if chat > 0 or not self.privacy_mode or self._addressed_to_bot(stored.message):
                self._add_update({"message": stored.message})
            return dict(stored.message)

    def _addressed_to_bot(self, message: dict) -> bool:
        """Telegram's privacy mode for a group message: a command (``/cmd`` for every bot, ``/cmd@name``
        only for that bot), a reply to one of the bot's messages, or a mention of the bot."""
        text = message.get("text") or message.get("caption") or ""
        username = str(self.bot_user["username"]).lower()
        command = re.match(r"/\w+(@(\w+))?", text)
        if command:
            return command.group(2) is None or command.group(2).lower() == username
        replied = message.get("reply_to_message")
        if replied and replied.get("from", {}).get("id") == self.bot_user["id"]:
            return True
        return f"@{username}" in text.lower()

    def _add_update(self, body: dict) -> dict:
        update = {"update_id": next(self._update_ids), **body}
        self._updates.append(update)
        self._changed.notify_all()
        return update

    def _drop_disallowed(self) -> None:
        if self._allowed_updates:
            self._updates = [u for u in self._updates if _update_type(u) in self._allowed_updates]

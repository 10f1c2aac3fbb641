"""The user's side of the chats: what a test (or the playground page) does as the user, and sees.

Why apart from the API methods: these are the calls a test makes; the methods are what the bot calls.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from stylebot.playground.emulator.models import Call, _StoredMessage
from stylebot.playground.emulator.state import EmulatorState

T = TypeVar("T")


class UserSide(EmulatorState):
    """Send texts, photos, albums and button presses as a user; read back what the bot did."""

    # ------------------------------------------------------------------ the user's side

    # ``chat_id``: by default the user's private chat (its id is the user's); a negative id is a group
    # the user writes in (``"type": "group"`` with a title), the bot a member of it.

    def send_text(
        self,
        user_id: int,
        text: str,
        language_code: str = "en",
        first_name: str = "Ann",
        chat_id: int | None = None,
        reply_to: int | None = None,
    ) -> dict:
        """The user types ``text``; a leading ``/command`` gets a ``bot_command`` entity like in Telegram.

        ``reply_to``: the id of a message in the same chat this one replies to (embedded whole, as
        Telegram does). In a group, privacy mode decides whether the bot gets an update at all.
        """
        content: dict[str, Any] = {"text": text}
        command = re.match(r"/\w+(@\w+)?", text)
        if command:
            content["entities"] = [{"offset": 0, "length": command.end(), "type": "bot_command"}]
        return self._user_message(user_id, content, language_code, first_name, chat_id=chat_id, reply_to=reply_to)

    def send_photo(
        self,
        user_id: int,
        image_bytes: bytes,
        caption: str | None = None,
        language_code: str = "en",
        media_group_id: str | None = None,
        chat_id: int | None = None,
        reply_to: int | None = None,
        first_name: str = "Ann",
    ) -> dict:
        """The user sends a picture as a photo: Telegram re-encodes it to JPEGs of several sizes.

        A caption starting with ``/command`` gets a ``bot_command`` caption entity like in Telegram.
        """
        content: dict[str, Any] = {"photo": self._store_photo(image_bytes, keep_original=False)}
        if caption:
            content["caption"] = caption
            command = re.match(r"/\w+(@\w+)?", caption)
            if command:
                content["caption_entities"] = [{"offset": 0, "length": command.end(), "type": "bot_command"}]
        if media_group_id:
            content["media_group_id"] = media_group_id
        return self._user_message(user_id, content, language_code, first_name, chat_id=chat_id, reply_to=reply_to)

    def send_document(
        self,
        user_id: int,
        data: bytes,
        file_name: str,
        mime_type: str,
        language_code: str = "en",
        media_group_id: str | None = None,
        chat_id: int | None = None,
    ) -> dict:
        """The user sends a file as is (e.g. an image "as file", uncompressed)."""
        content: dict[str, Any] = {"document": self._store_document(data, file_name, mime_type)}
        if media_group_id:
            content["media_group_id"] = media_group_id
        return self._user_message(user_id, content, language_code, chat_id=chat_id)

    def send_album(
        self, user_id: int, images: list[bytes], language_code: str = "en", chat_id: int | None = None
    ) -> list[dict]:
        """The user sends several photos at once: one update per photo, sharing a ``media_group_id``."""
        group = f"album{next(self._ids)}"
        return [
            self.send_photo(user_id, image, language_code=language_code, media_group_id=group, chat_id=chat_id)
            for image in images
        ]

    def press_button(
        self, user_id: int, message_id: int, callback_data: str, language_code: str = "en", chat_id: int | None = None
    ) -> dict:
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

    def send_callback_query(
        self, user_id: int, message_id: int, data: str, language_code: str = "en", chat_id: int | None = None
    ) -> dict:
        """A ``callback_query`` with any ``data`` on a bot message, whether or not it has that button:
        what an old client, a since-edited keyboard or a forged request delivers."""
        chat = user_id if chat_id is None else chat_id
        with self._lock:
            stored = self._messages.get(chat, {}).get(message_id)
            if stored is None or not stored.from_bot:
                raise ValueError(f"no bot message {message_id} in chat {chat}")
            return self._callback_update(user_id, stored, data, language_code, chat)

    def _callback_update(self, user_id: int, stored: _StoredMessage, data: str, language_code: str, chat: int) -> dict:
        query: dict[str, Any] = {
            "id": str(next(self._ids) * 7919),
            "from": self._user(user_id, language_code),
            "message": dict(stored.message),
            "chat_instance": str(chat * 31),
            "data": data,
        }
        self._callback_queries[query["id"]] = query
        return self._add_update({"callback_query": query})

    # ------------------------------------------------------------------ what the bot did

    def bot_messages(self, chat_id: int) -> list[dict]:
        """The bot's messages in a chat as they are now (edits applied, deleted ones gone), oldest first."""
        with self._lock:
            return [dict(s.message, edits=s.edits) for s in self._messages.get(chat_id, {}).values() if s.from_bot]

    def chat_history(self, chat_id: int) -> list[dict]:
        """Every message in the chat, the user's and the bot's, each with ``from_bot`` and ``edits``."""
        with self._lock:
            return [
                dict(s.message, edits=s.edits, from_bot=s.from_bot) for s in self._messages.get(chat_id, {}).values()
            ]

    def calls(self, method: str | None = None) -> list[Call]:
        """Every API call recorded so far (failed ones too), optionally only those of ``method``."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method.lower() == method.lower()]

    def unknown_calls(self) -> list[Call]:
        """Calls of methods this server does not know (answered 404): a correct bot makes none."""
        with self._lock:
            return list(self._unknown)

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
        """Poll ``predicate`` until it is truthy and return its value; on timeout fail with recent calls.

        The predicate may answer None while it waits: the value returned is never None.
        """
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

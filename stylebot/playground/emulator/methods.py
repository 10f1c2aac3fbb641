"""The Bot API methods the bot uses, with Telegram's JSON shapes, limits, error codes and descriptions.

Why a mixin: ``BotAPIEmulator.handle`` dispatches ``{method}`` to ``_api_{method}`` by name, so the
methods (and the send/edit rules they share) are one class; ``_CANONICAL`` lists what is served.
"""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any

from PIL import Image

from stylebot.playground.emulator.models import (
    BLOCKED,
    CALLBACK_DATA_MAX,
    CAPTION_MAX,
    GETFILE_MAX_BYTES,
    NOT_MODIFIED,
    PHOTO_MAX_BYTES,
    PHOTO_MAX_SIDES,
    TEXT_MAX,
    WEBHOOK_CONFLICT,
    ApiError,
    _Params,
    _plain,
    _same_content,
    _StoredMessage,
    bad_request,
)
from stylebot.playground.emulator.state import EmulatorState


class BotApiMethods(EmulatorState):
    """``_api_<Method>(params, files)`` for each served method; an error is raised as ``ApiError``."""

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

    def _api_setWebhook(self, p: _Params, files: dict) -> bool:
        url = p.str("url", "")
        with self._lock:
            if not url:
                self._webhook = None
            else:
                if not url.startswith(("http://", "https://")):
                    raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
                self._webhook = {
                    "url": url,
                    "secret_token": p.str("secret_token", "") or None,
                    "max_connections": p.int("max_connections", 40),
                }
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
            info: dict[str, Any] = {
                "url": self._webhook["url"] if self._webhook else "",
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }
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
            isinstance(c, dict)
            and re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command", "")))
            and 1 <= len(str(c.get("description", ""))) <= 256
            for c in commands
        ):
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

    def _api_sendAnimation(self, p: _Params, files: dict) -> dict:
        """As Telegram answers: an ``animation``, and (for older clients) the same file as ``document``."""
        animation = self._input_animation(p, files)
        document = {k: animation[k] for k in ("file_name", "mime_type", "file_id", "file_unique_id", "file_size")}
        return self._send(p, {"animation": animation, "document": document, **self._caption(p)})

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
            file_path = stored.file_path
            for fault in self._file_path_faults:  # faults.hostile_file_path: a hostile or broken server
                if fault[2] in (None, stored.file_id):
                    file_path, fault[1] = fault[0], fault[1] - 1
                    if fault[1] <= 0:
                        self._file_path_faults.remove(fault)
                    break
            return {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.data),
                "file_path": file_path,
            }

    def _api_answerCallbackQuery(self, p: _Params, files: dict) -> bool:
        with self._lock:
            query = self._callback_queries.pop(p.str("callback_query_id", ""), None)
            if query is None:
                raise bad_request("query is too old and response timeout expired or query ID is invalid")
            self._emit(query["from"]["id"], "callback_answer", text=p.str("text", ""), show_alert=p.bool("show_alert"))
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
            elif not (
                p.bool("allow_sending_without_reply")
                or (p.json("reply_parameters") or {}).get("allow_sending_without_reply")
            ):
                raise bad_request("message to be replied not found")
        sender = {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}
        return dict(self._new_message(chat_id, sender, content, True).message)

    def _editable(self, p: _Params) -> _StoredMessage:
        if p.str("inline_message_id", ""):
            raise bad_request("MESSAGE_ID_INVALID")  # inline mode is not emulated
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
            raise bad_request(NOT_MODIFIED[len("Bad Request: ") :])
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
            name = value[len("attach://") :]
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
            raise bad_request("PHOTO_SAVE_FILE_INVALID")  # Telegram's answer to a photo over 10 MB
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except Exception:  # Telegram rejects anything it cannot decode
            raise bad_request("IMAGE_PROCESS_FAILED") from None
        if width + height > PHOTO_MAX_SIDES or max(width, height) > 20 * min(width, height):
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        return self._store_photo(data, keep_original=True)

    def _input_document(self, value: Any, files: dict, field_name: str = "document") -> dict:
        upload = self._upload(value, files, field_name)
        if isinstance(upload, str):
            stored = self._files[upload]
            return {
                "file_name": stored.file_path.rsplit("/", 1)[-1],
                "mime_type": "application/octet-stream",
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.data),
            }
        name, data = upload
        if len(data) > 50 * 1024 * 1024:
            raise ApiError(413, "Request Entity Too Large")
        return self._store_document(data, name or "file", None)

    def _input_animation(self, p: _Params, files: dict) -> dict:
        """An Animation object: sizes and duration read from a GIF, else (an MP4) as the bot declared them."""
        upload = self._upload(p.raw("animation"), files, "animation")
        if isinstance(upload, str):
            stored = self._files[upload]
            name, data = stored.file_path.rsplit("/", 1)[-1], stored.data
        else:
            name, data = upload[0] or "animation.gif", upload[1]
        if len(data) > 50 * 1024 * 1024:
            raise ApiError(413, "Request Entity Too Large")
        width, height, duration = p.int("width"), p.int("height"), p.int("duration")
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                frames_ms = 0
                for index in range(getattr(image, "n_frames", 1)):
                    image.seek(index)
                    frames_ms += int(image.info.get("duration", 0))
                duration = round(frames_ms / 1000)
        except Exception:  # not a picture Pillow knows (an MP4): keep what the bot said
            pass
        extension = "." + name.rsplit(".", 1)[-1][:7] if "." in name else ".gif"
        stored = self._new_file(data, "animations", extension)
        mime = "image/gif" if extension.lower() == ".gif" else "video/mp4"
        return {
            "file_name": name,
            "mime_type": mime,
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(data),
            "width": width,
            "height": height,
            "duration": duration,
        }

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


# Lower-case method name -> its spelling here (Telegram's method names are case-insensitive).
_CANONICAL = {
    name[len("_api_") :].lower(): name[len("_api_") :] for name in vars(BotApiMethods) if name.startswith("_api_")
}

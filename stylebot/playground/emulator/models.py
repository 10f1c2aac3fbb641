"""The emulator's vocabulary: Telegram's limits and error texts, the error answer, what it stores.

Why a module of its own: every other part of the emulator (the user's side, the API methods, the fault
injection and the HTTP layer) speaks in these types, and none of them should have to import another.
"""

from __future__ import annotations

import builtins
import html
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

# Telegram's limits (https://core.telegram.org/bots/api#sending-files).
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES = 10_000  # width + height
GETFILE_MAX_BYTES = 20 * 1024 * 1024
TEXT_MAX = 4096
CAPTION_MAX = 1024
CALLBACK_DATA_MAX = 64
PHOTO_SIZES = (90, 320, 800, 1280)  # the thumbnails Telegram makes; the largest size is capped at 2560
PHOTO_LONG_SIDE_MAX = 2560

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
BLOCKED = "Forbidden: bot was blocked by the user"
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: BLOCKED,
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
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
    message: dict  # exactly what Telegram would return for it
    from_bot: bool
    edits: int = 0


@dataclass
class _Fault:
    error: ApiError
    times: int


@dataclass
class _TransferFault:
    """A broken transfer: ``stall`` waits ``seconds`` (after ``after`` body bytes, if set) before
    answering; ``drop`` sends the headers with the full Content-Length, part of the body, and hangs up;
    ``redirect`` answers 302 to ``location`` (a server that sends the bot elsewhere); ``answer`` sends
    ``status`` (with ``location``, a redirect) instead of the real answer."""

    kind: str
    times: int
    seconds: float = 0.0
    after: int | None = None
    file_id: str | None = None
    #: ``answer``: the HTTP status sent instead, and the ``Location`` header of a 3xx.
    status: int | None = None
    location: str | None = None


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

    def int(self, key: builtins.str, default: builtins.int = 0) -> builtins.int:
        try:
            return int(self.values.get(key, default))
        except (TypeError, ValueError):
            raise bad_request(f"invalid {key}") from None

    def float(self, key: builtins.str, default: builtins.float = 0.0) -> builtins.float:
        try:
            return float(self.values.get(key, default))
        except (TypeError, ValueError):
            raise bad_request(f"invalid {key}") from None

    def bool(self, key: builtins.str) -> builtins.bool:
        return str(self.values.get(key, "")).lower() in ("true", "1")

    def json(self, key: builtins.str) -> Any:
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
    except Exception:  # not even a header: report a 1x1 "photo"
        return 1, 1

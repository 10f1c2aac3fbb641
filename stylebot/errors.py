"""
stylebot.errors
~~~~~~~~~~~~~~~

This module contains the set of Stylebot's exceptions. It imports nothing heavy (no torch, no telebot),
so any part of the bot can catch another part's error by class without loading that part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "BadImage",
    "Cancelled",
    "ConfigError",
    "StylebotError",
    "TelegramError",
    "UnsafeFile",
    "Upstream",
    "UserGone",
    "WeightsError",
]


class StylebotError(Exception):
    """There was an ambiguous error while handling a job; every Stylebot exception derives from it."""


class Cancelled(StylebotError):
    """The job's ``cancel`` event was set; the engine raises this within one evaluation."""


class WeightsError(StylebotError, ValueError):
    """The weights file is missing, corrupt or not a VGG-19 cache; the message says what to do."""


class ConfigError(StylebotError, ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Upstream(Enum):
    """Why the Bot API (or its file server) let us down, when it was its fault and not the request's.

    Each gets its own message to the user (``upstream_<value>`` in :mod:`stylebot.texts`) instead of
    "something went wrong", which reads as the bot's bug and invites the same request again at once.
    """

    REDIRECT = "redirect"  # a 3xx where a file or an answer was due: not followed (the token is in the URL)
    SERVER = "server"  # 5xx or a refused or cut connection, still so after every retry
    TIMEOUT = "timeout"  # no answer within the timeouts, after every retry


class TelegramError(StylebotError):
    """A Bot API call failed for good; ``description`` is Telegram's text.

    ``upstream`` says when the server, not the request, was at fault (see :class:`Upstream`);
    a 3xx ``code`` is a redirect even where the raiser did not say so.
    """

    def __init__(self, description: str, code: int | None = None, upstream: Upstream | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.code = code
        if upstream is None and code is not None:
            upstream = Upstream.REDIRECT if 300 <= code < 400 else Upstream.SERVER if code >= 500 else None
        self.upstream = upstream


class UserGone(TelegramError):
    """403: the user blocked the bot or deleted their account."""


class UnsafeFile(TelegramError):
    """The Bot API server answered getFile with a location the bot will not fetch (``../``, a scheme, ...).

    Nothing was requested; the user hears ``bad_server_file`` instead of a generic failure.
    """


@dataclass
class BadImage(StylebotError, ValueError):
    """The bytes are not an image we accept; ``reason`` says which rule failed.

    Reasons: ``not_image``, ``too_big_file``, ``corrupt``, ``too_many_pixels``,
    ``too_small``, ``aspect``. ``details`` carries the figures for the message.
    """

    reason: str
    details: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.details.items())
        return f"{self.reason}" + (f" ({extra})" if extra else "")

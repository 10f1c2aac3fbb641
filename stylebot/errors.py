"""
stylebot.errors
~~~~~~~~~~~~~~~

This module contains the set of Stylebot's exceptions. It imports nothing heavy (no torch, no telebot),
so any part of the bot can catch another part's error by class without loading that part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "BadImage",
    "Cancelled",
    "ConfigError",
    "StylebotError",
    "TelegramError",
    "UnsafeFile",
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


class TelegramError(StylebotError):
    """A Bot API call failed for good; ``description`` is Telegram's text."""

    def __init__(self, description: str, code: int | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.code = code


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

"""
stylebot.errors
~~~~~~~~~~~~~~~

This module contains the set of Stylebot's exceptions. It imports nothing heavy (no torch), so any part
of the bot can catch an engine error without loading the engine.
"""

from __future__ import annotations

__all__ = ["Cancelled", "StylebotError", "WeightsError"]


class StylebotError(Exception):
    """There was an ambiguous error while handling a job; every Stylebot exception derives from it."""


class Cancelled(StylebotError):
    """The job's ``cancel`` event was set; the engine raises this within one evaluation."""


class WeightsError(StylebotError, ValueError):
    """The weights file is missing, corrupt or not a VGG-19 cache; the message says what to do."""

"""The tests' fake Telegram: the project's Bot API emulator (one implementation, see emulator.py)."""

from emulator import ApiError, BotAPIEmulator, Call  # noqa: F401 - re-exported for the tests

__all__ = ["ApiError", "BotAPIEmulator", "Call"]

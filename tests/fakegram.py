"""The tests' fake Telegram: the project's Bot API emulator (one implementation, see emulator.py)."""

from stylebot.playground.emulator import ApiError, BotAPIEmulator, Call

__all__ = ["ApiError", "BotAPIEmulator", "Call"]

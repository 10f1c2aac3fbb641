"""logs: process logging with the bot token kept out of every line.

telebot and requests put request URLs, which contain the token, into their errors
and debug lines; one filter on the root handler cleans every record, tracebacks
included, before it is written.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactToken", "setup_logging"]


class RedactToken(logging.Filter):
    """Replaces the bot token (and anything shaped like one) in every log record."""

    _shape = re.compile(r"\d{4,}:[A-Za-z0-9_-]{20,}")

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def _clean(self, text: str) -> str:
        if self.token:
            text = text.replace(self.token, "<token>")
        return self._shape.sub("<token>", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._clean(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, redacted, and drop the live exception.
            formatter = logging.Formatter()
            record.exc_text = self._clean(formatter.formatException(record.exc_info))
            record.exc_info = None
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(token: str, level: int = logging.INFO) -> None:
    """Root logging to stderr with the token filtered out of every line."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactToken(token))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # telebot logs every polling hiccup at ERROR with a traceback; ours are enough.
    logging.getLogger("TeleBot").setLevel(logging.CRITICAL)
    logging.getLogger("urllib3").setLevel(logging.WARNING)

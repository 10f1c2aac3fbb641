"""logs: process logging with the bot token kept out of every line, and users named only by pseudonym.

telebot and requests put request URLs, which contain the token, into their errors
and debug lines; one filter on the root handler cleans every record, tracebacks
included, before it is written.

Users and chats (issue 18): a log line never carries a user id, chat id, username,
file id or message text. Where a line must say whose it is, :func:`who` writes a
pseudonym, ``u:3f9a1c2b``: an HMAC of the id under a random salt kept per user in
the store (every process of a scale-out fleet reads the same one, so one user is
one name across processes). ``/forget`` deletes the salt: the lines already written
can no longer be tied to the user, and later ones get a new, unrelated name.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import urllib.parse

__all__ = ["RedactToken", "pseudonym", "safe_url", "setup_logging", "who"]

#: Used when the store cannot give a user's salt (a full disk, Redis away): the line still names no one.
_PROCESS_SALT = os.urandom(16)


def pseudonym(salt: bytes, value: int, kind: str = "u") -> str:
    """``kind:`` and 8 hex digits of HMAC-SHA256(salt, kind:value): stable while the salt lives, unlinkable after."""
    digest = hmac.new(salt, f"{kind}:{int(value)}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}:{digest[:8]}"


def who(store: object, user_id: int, chat_id: int | None = None) -> str:
    """How a log line names a user (and the chat, when it is not their private chat): ``u:3f9a1c2b c:07d1e4aa``.

    The salt is the user's (``store.user_salt``, made on first use); the one log helper
    every call site uses, so no id reaches a log in the clear.
    """
    salt = _PROCESS_SALT
    user_salt = getattr(store, "user_salt", None)
    if user_salt is not None:
        try:
            salt = user_salt(user_id)
        except Exception:  # a log line must never fail the work it describes
            salt = _PROCESS_SALT
    name = pseudonym(salt, user_id)
    if chat_id is not None and chat_id != user_id:
        name += " " + pseudonym(salt, chat_id, "c")
    return name


def safe_url(url: str | None) -> str | None:
    """``url`` fit for a log line: no userinfo, query or fragment, and nothing past ``/bot`` (the token)."""
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    path = re.sub(r"/(file/)?bot[^/]*.*$", "/bot<token>", parts.path)
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))


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

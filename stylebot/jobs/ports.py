"""ports: what a job needs from the layers around it, declared here and implemented elsewhere.

``run_job`` paints and decides; how a result or a refusal reaches the user (buttons, dialogs,
replies) is the chat layer's business. :class:`Delivery` is that seam: ``stylebot.chat.delivery``
implements it, the composition root (``stylebot.app``) passes it in, and ``jobs`` imports nothing
of ``chat``, so nothing points up the layers (tests/unit/test_architecture.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stylebot.jobs.job import Job


@dataclass(frozen=True)
class Rendered:
    """A finished painting, encoded for sending.

    ``jpeg`` is None when the picture is beyond sendPhoto's limits (it then goes as the PNG document).
    ``full``: the PNG is kept, so "Full quality file" can be offered; ``lapse``: so is the timelapse.
    """

    png: bytes
    jpeg: bytes | None
    caption: str
    full: bool
    lapse: bool


class Delivery(Protocol):
    """Sends a job's outcome to its user, in the chat layer's words and buttons."""

    def send_result(self, job: Job, rendered: Rendered) -> None:
        """The result with its buttons, as a reply where the job asks for one."""
        ...

    def refuse_input(self, job: Job, keep_photo: bool, text: str) -> None:
        """One of the job's images cannot be used: tell the user ``text`` and set the dialog back.

        ``keep_photo``: the style was the trouble, so the user only needs to send another style.
        """
        ...

"""What every store is: the records it returns and the ``StateStore`` protocol the bot and worker use.

Why a module of its own: the handlers, ``run_job`` and the queues work unchanged on the SQLite store
(one process) and the Redis store (scale-out); they should depend on this contract, not on either
back-end, and the Redis store should not import the SQLite one for its dataclasses.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Protocol

from stylebot.jobs.job import Job, JobStatus

#: Dialog steps: waiting for the photo to repaint, or for the style picture.
STEP_CONTENT = "content"
STEP_STYLE = "style"
#: Mixed styles: waiting for a second style to mix with the photo and style kept in the dialog.
STEP_MIX = "mix"


@dataclass
class Dialog:
    """One user's dialog in one chat; ``chat_id=None`` means their private chat (id = user id).

    Keyed by both because a photo sent in a private chat must never be painted into a
    group the user is in, nor the other way round.
    """

    user_id: int
    step: str = STEP_CONTENT
    content_file_id: str | None = None
    chat_id: int | None = None
    #: STEP_MIX: the first style of the mix (the second is the picture the user sends next).
    style_file_id: str | None = None

    def __post_init__(self) -> None:
        if self.chat_id is None:
            self.chat_id = self.user_id


@dataclass
class UserSettings:
    """``size`` is ``None`` until the user picks one: then the operator's default applies."""

    user_id: int
    size: int | None = None
    strength: float = 1.0
    keep_colors: bool = False
    #: "painted" or "quick" when the user picked one in /settings; ``None``: no choice (the operator's mode).
    speed: str | None = None


@dataclass
class StyleRef:
    """A recently used style: the picture's file id and its thumbnail's (for the "recent styles" row)."""

    file_id: str
    thumb_file_id: str | None


@dataclass
class AlbumItem:
    """One photo of an album being assembled (Telegram delivers an album as separate updates)."""

    message_id: int
    file_id: str
    thumb_file_id: str | None


class StateStore(Protocol):
    """The methods the handlers, ``run_job`` and the queues call on a store, whichever back-end it is.

    ``stylebot.store.sqlite_store.Store`` and ``stylebot.store.redis_store.RedisStore`` both satisfy it
    (mypy checks that where the app hands either one to the bot). Back-end extras stay off it: the
    polling offset and ``release`` are SQLite's (one process), leases, dispatch and cancel signals Redis's.
    """

    # --- jobs
    def create_job(self, job: Job) -> Job: ...

    def get_job(self, job_id: str) -> Job | None: ...

    def active_job(self, user_id: int) -> Job | None: ...

    def claim_next(self, skip: set[str] | frozenset[str] = frozenset()) -> Job | None: ...

    def set_status(self, job_id: str, status: JobStatus, error: str | None = None) -> None: ...

    def requeue(self, job_id: str) -> None: ...

    def cancel_if_queued(self, job_id: str) -> bool: ...

    def set_status_message(self, job_id: str, message_id: int | None) -> None: ...

    def queued_jobs(self) -> list[Job]: ...

    def position(self, job_id: str) -> int | None: ...

    def recover(self, delivered: Container[str] = frozenset()) -> list[Job]: ...

    def jobs_created_since(self, user_id: int, since: float) -> list[float]: ...

    def work_since(self, user_id: int, since: float, default_size: int) -> list[tuple[float, float]]: ...

    def last_job(self, user_id: int) -> Job | None: ...

    # --- dialog, settings, styles, albums
    def get_dialog(self, user_id: int, chat_id: int | None = None) -> Dialog: ...

    def set_dialog(self, dialog: Dialog) -> None: ...

    def reset_dialog(self, user_id: int, chat_id: int | None = None) -> None: ...

    def get_settings(self, user_id: int) -> UserSettings: ...

    def save_settings(self, settings: UserSettings) -> None: ...

    def remember_style(self, user_id: int, file_id: str, thumb_file_id: str | None, keep: int = 5) -> None: ...

    def recent_styles(self, user_id: int, limit: int = 5) -> list[StyleRef]: ...

    def add_album_item(
        self,
        group_id: str,
        user_id: int,
        message_id: int,
        file_id: str,
        thumb_file_id: str | None,
        chat_id: int | None = None,
    ) -> list[AlbumItem]: ...

    # --- files the bot uploaded once (gallery images)
    def uploaded_file_id(self, key: str, sha256: str) -> str | None: ...

    def save_uploaded_file_id(self, key: str, sha256: str, file_id: str) -> None: ...

    # --- privacy, updates, lifecycle
    def forget_user(self, user_id: int) -> list[str]: ...

    def seen_update(self, update_id: int) -> bool: ...

    def close(self) -> None: ...

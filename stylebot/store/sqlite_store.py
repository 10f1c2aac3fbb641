"""sqlite_store: the bot's durable state in one SQLite file (a :class:`~stylebot.store.base.StateStore`).

Jobs, dialog state, per-user settings, recent styles and album assembly all
live here so that a restart, or a SIGKILL, loses nothing. Only Telegram
``file_id``s are stored, never image bytes or paths.

Thread safety: each thread gets its own connection (``sqlite3`` connections
must not be shared), the database runs in WAL mode so readers never block the
writer, and the one read-modify-write that races (claiming the next job) runs
in a ``BEGIN IMMEDIATE`` transaction.

Schema versions: ``PRAGMA user_version`` says which of :data:`MIGRATIONS` have
run; opening a database applies the missing ones in order, each in one
transaction, so a file written by an older release is upgraded in place (its
queued jobs included). A database of the first release has version 0 and
today's tables: migration 1 (``CREATE ... IF NOT EXISTS``) is a no-op there.

Privacy: ``secure_delete`` is on for every connection, so deleted rows are
zeroed in the pages, and :meth:`Store.forget_user` checkpoints the WAL so no
old page copy survives either. Rate limits live apart from users: a keyed hash
of the user id and bare timestamps, so they outlast /forget without naming
anyone.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Container, Iterator
from contextlib import contextmanager, suppress
from dataclasses import fields
from pathlib import Path
from typing import overload

from stylebot.jobs.job import Job, JobStatus
from stylebot.jobs.quota import job_cost
from stylebot.private import create_file, make_dirs
from stylebot.store.base import AlbumItem, Dialog, StyleRef, UserSettings
from stylebot.store.caps import MAX_ALBUM_ITEMS_PER_USER, MAX_DIALOGS_PER_USER, oldest_beyond
from stylebot.store.sqlite_schema import MIGRATIONS, RATE_KEEP, SCHEMA_VERSION, who
from stylebot.store.updates import UpdateJournal

log = logging.getLogger(__name__)

_JOB_COLUMNS = [f.name for f in fields(Job)]


class Store(UpdateJournal):
    """All reads and writes, named by intent; returns dataclasses, never rows."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        make_dirs(self.path.parent)
        with suppress(OSError):  # 0600 before SQLite makes it (its -wal and -shm copy the mode); else SQLite says why
            create_file(self.path)
        self._local = threading.local()
        self._opening = threading.Lock()
        self._salt_value: bytes | None = None
        try:
            self._open_schema()
        except sqlite3.OperationalError as exc:
            # A full disk at start-up (issue 11): the bot comes up degraded instead of exiting; every
            # use retries the opening and fails like any write meanwhile (callers say "busy, try later").
            if not any(word in str(exc).lower() for word in ("full", "disk i/o")):
                raise
            log.warning("database not opened yet (%s); retried at its next use", exc)

    def _open_schema(self) -> bytes:
        """Migrate and read the rate-limit salt, once; ``_db`` calls it until it has succeeded."""
        with self._opening:
            if self._salt_value is None:
                self._local.opening = True
                try:
                    self._migrate()
                    row = self._db().execute("SELECT value FROM meta WHERE key = 'rate_salt'").fetchone()
                    self._salt_value = row[0]
                finally:
                    self._local.opening = False
            return self._salt_value

    @property
    def _salt(self) -> bytes:
        return self._salt_value if self._salt_value is not None else self._open_schema()

    def _migrate(self) -> None:
        """Apply the missing :data:`MIGRATIONS`, each with its version bump in one transaction.

        ``BEGIN IMMEDIATE`` and re-reading the version inside it make two processes
        opening one old file at once upgrade it exactly once.
        """
        while True:
            with self._tx(immediate=True) as tx:
                version = tx.execute("PRAGMA user_version").fetchone()[0]
                if version >= SCHEMA_VERSION:
                    return
                MIGRATIONS[version](tx)
                tx.execute(f"PRAGMA user_version = {version + 1}")

    def schema_version(self) -> int:
        return self._db().execute("PRAGMA user_version").fetchone()[0]

    # --- plumbing ------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left in free space
            self._local.db = db
        if self._salt_value is None and not getattr(self._local, "opening", False):
            self._open_schema()  # not opened at start-up (a full disk): now, before any use
        return db

    @contextmanager
    def _tx(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    @overload
    @staticmethod
    def _job(row: sqlite3.Row) -> Job: ...

    @overload
    @staticmethod
    def _job(row: sqlite3.Row | None) -> Job | None: ...

    @staticmethod
    def _job(row: sqlite3.Row | None) -> Job | None:
        """The ``Job`` of a row (``None`` for no row): a present row always gives a job."""
        if row is None:
            return None
        # Known fields only: a newer release may have added columns this one ignores.
        present = set(row.keys())
        values = {name: row[name] for name in _JOB_COLUMNS if name in present}
        values["status"] = JobStatus(values["status"])
        values["keep_colors"] = bool(values["keep_colors"])
        return Job(**values)

    # --- jobs ----------------------------------------------------------
    def create_job(self, job: Job) -> Job:
        """Insert ``job`` (committed before this returns, so it survives a crash)."""
        columns = [c for c in _JOB_COLUMNS if c != "seq"]
        values = [getattr(job, c) for c in columns]
        values[columns.index("status")] = job.status.value
        values[columns.index("keep_colors")] = int(job.keep_colors)
        with self._tx() as db:
            cursor = db.execute(
                f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                values,
            )
            assert cursor.lastrowid is not None  # an INSERT into a rowid table always sets it
            job.seq = cursor.lastrowid
            db.execute(
                "INSERT INTO rate_events (who, at, size) VALUES (?, ?, ?)",
                (who(self._salt, job.user_id), job.created_at, job.size),
            )
            db.execute("DELETE FROM rate_events WHERE at < ?", (time.time() - RATE_KEEP,))
        return job

    def get_job(self, job_id: str) -> Job | None:
        return self._job(self._db().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def active_job(self, user_id: int) -> Job | None:
        row = (
            self._db()
            .execute(
                "SELECT * FROM jobs WHERE user_id = ? AND status IN ('queued', 'running') ORDER BY seq LIMIT 1",
                (user_id,),
            )
            .fetchone()
        )
        return self._job(row)

    def claim_next(self, skip: set[str] | frozenset[str] = frozenset()) -> Job | None:
        """Atomically take the oldest queued job (not in ``skip``) and mark it running."""
        with self._tx(immediate=True) as db:
            row = db.execute(
                f"SELECT * FROM jobs WHERE status = 'queued' AND id NOT IN ({', '.join('?' * len(skip))}) "
                "ORDER BY seq LIMIT 1",
                tuple(skip),
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            db.execute(
                "UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1 WHERE id = ?",
                (now, row["id"]),
            )
        job = self._job(row)
        job.status, job.started_at, job.attempts = JobStatus.RUNNING, now, job.attempts + 1
        return job

    def set_status(self, job_id: str, status: JobStatus, error: str | None = None) -> None:
        finished = time.time() if not status.active else None
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                (status.value, error, finished, job_id),
            )

    def requeue(self, job_id: str) -> None:
        """Put an interrupted job back, keeping its place (``seq``) in the line.

        The attempt is not counted: a graceful shutdown is not the job's fault.
        """
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL, attempts = MAX(attempts - 1, 0) "
                "WHERE id = ? AND status = 'running'",
                (job_id,),
            )

    def cancel_if_queued(self, job_id: str) -> bool:
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ? AND status = 'queued'",
                (time.time(), job_id),
            )
        return cursor.rowcount == 1

    def set_status_message(self, job_id: str, message_id: int | None) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET status_message_id = ? WHERE id = ?", (message_id, job_id))

    def queued_jobs(self) -> list[Job]:
        rows = self._db().execute("SELECT * FROM jobs WHERE status = 'queued' ORDER BY seq").fetchall()
        return [self._job(r) for r in rows]

    def position(self, job_id: str) -> int | None:
        row = self._db().execute("SELECT seq, status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or row["status"] != JobStatus.QUEUED.value:
            return None
        ahead = (
            self._db()
            .execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND seq < ?", (row["seq"],))
            .fetchone()[0]
        )
        return ahead + 1

    def recover(self, delivered: Container[str] = frozenset()) -> list[Job]:
        """At start-up: jobs left ``RUNNING`` by a dead process go back to the queue.

        A waiting or running job in ``delivered`` (``jobs.ledger``: its result went out but a
        full disk kept its ``DONE`` from being written) is marked done instead, never run twice.
        Returns every job now waiting, oldest first, so their users can be told.
        """
        with self._tx(immediate=True) as db:
            active = [r[0] for r in db.execute("SELECT id FROM jobs WHERE status IN ('queued', 'running')")]
            done = [job_id for job_id in active if job_id in delivered]
            db.executemany(
                "UPDATE jobs SET status = 'done', finished_at = ? WHERE id = ?",
                [(time.time(), job_id) for job_id in done],
            )
            db.execute("UPDATE jobs SET status = 'queued', started_at = NULL WHERE status = 'running'")
        for job_id in done:
            log.info("job %s: its result was sent before the restart (delivered ledger); marked done", job_id)
        return self.queued_jobs()

    def jobs_created_since(self, user_id: int, since: float) -> list[float]:
        """Creation times of the user's jobs since ``since`` (the rate limit; survives /forget).

        Read from ``rate_events``, which names users only by keyed hash and is kept one hour.
        """
        rows = (
            self._db()
            .execute(
                "SELECT at FROM rate_events WHERE who = ? AND at >= ? ORDER BY at",
                (who(self._salt, user_id), since),
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def work_since(self, user_id: int, since: float, default_size: int) -> list[tuple[float, float]]:
        """``(created_at, cost)`` of the user's jobs since ``since``, oldest first (the quota; survives /forget).

        The cost is :func:`stylebot.jobs.quota.job_cost` of the size recorded with the keyed hash.
        """
        rows = (
            self._db()
            .execute(
                "SELECT at, size FROM rate_events WHERE who = ? AND at >= ? ORDER BY at",
                (who(self._salt, user_id), since),
            )
            .fetchall()
        )
        return [(r[0], job_cost(r[1], default_size)) for r in rows]

    def last_job(self, user_id: int) -> Job | None:
        row = (
            self._db().execute("SELECT * FROM jobs WHERE user_id = ? ORDER BY seq DESC LIMIT 1", (user_id,)).fetchone()
        )
        return self._job(row)

    # --- dialog (per chat and user; ``chat_id=None``: the private chat) ---
    def get_dialog(self, user_id: int, chat_id: int | None = None) -> Dialog:
        chat = user_id if chat_id is None else chat_id
        row = self._db().execute("SELECT * FROM dialogs WHERE chat_id = ? AND user_id = ?", (chat, user_id)).fetchone()
        if row is None:
            return Dialog(user_id, chat_id=chat)
        return Dialog(user_id, row["step"], row["content_file_id"], chat, row["style_file_id"])

    def set_dialog(self, dialog: Dialog) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO dialogs (chat_id, user_id, step, content_file_id, style_file_id, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE SET step = excluded.step, "
                "content_file_id = excluded.content_file_id, style_file_id = excluded.style_file_id, "
                "updated_at = excluded.updated_at",
                (
                    dialog.chat_id,
                    dialog.user_id,
                    dialog.step,
                    dialog.content_file_id,
                    dialog.style_file_id,
                    time.time(),
                ),
            )
            rows = db.execute("SELECT chat_id, updated_at FROM dialogs WHERE user_id = ?", (dialog.user_id,))
            for chat in oldest_beyond(((r["chat_id"], r["updated_at"]) for r in rows), MAX_DIALOGS_PER_USER):
                db.execute("DELETE FROM dialogs WHERE chat_id = ? AND user_id = ?", (chat, dialog.user_id))

    def reset_dialog(self, user_id: int, chat_id: int | None = None) -> None:
        chat = user_id if chat_id is None else chat_id
        with self._tx() as db:
            db.execute("DELETE FROM dialogs WHERE chat_id = ? AND user_id = ?", (chat, user_id))

    # --- settings ------------------------------------------------------
    def get_settings(self, user_id: int) -> UserSettings:
        row = self._db().execute("SELECT * FROM settings WHERE user_id = ?", (user_id,)).fetchone()
        if row is None:
            return UserSettings(user_id)
        return UserSettings(user_id, row["size"], row["strength"], bool(row["keep_colors"]), row["speed"])

    def save_settings(self, settings: UserSettings) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO settings (user_id, size, strength, keep_colors, speed) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET size = excluded.size, "
                "strength = excluded.strength, keep_colors = excluded.keep_colors, speed = excluded.speed",
                (settings.user_id, settings.size, settings.strength, int(settings.keep_colors), settings.speed),
            )

    # --- recent styles -------------------------------------------------
    def remember_style(self, user_id: int, file_id: str, thumb_file_id: str | None, keep: int = 5) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO styles (user_id, file_id, thumb_file_id, used_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_id, file_id) DO UPDATE SET used_at = excluded.used_at, "
                "thumb_file_id = COALESCE(excluded.thumb_file_id, styles.thumb_file_id)",
                (user_id, file_id, thumb_file_id, time.time()),
            )
            db.execute(
                "DELETE FROM styles WHERE user_id = ? AND file_id NOT IN "
                "(SELECT file_id FROM styles WHERE user_id = ? ORDER BY used_at DESC LIMIT ?)",
                (user_id, user_id, keep),
            )

    def recent_styles(self, user_id: int, limit: int = 5) -> list[StyleRef]:
        rows = (
            self._db()
            .execute(
                "SELECT file_id, thumb_file_id FROM styles WHERE user_id = ? ORDER BY used_at DESC LIMIT ?",
                (user_id, limit),
            )
            .fetchall()
        )
        return [StyleRef(r["file_id"], r["thumb_file_id"]) for r in rows]

    # --- albums --------------------------------------------------------
    def add_album_item(
        self,
        group_id: str,
        user_id: int,
        message_id: int,
        file_id: str,
        thumb_file_id: str | None,
        chat_id: int | None = None,
    ) -> list[AlbumItem]:
        """Record one image of an album; return all seen so far (in this chat), in message order.

        Telegram delivers an album as separate updates that our handler
        threads see concurrently; the immediate transaction makes exactly one
        of them observe the second item arriving.
        """
        chat = user_id if chat_id is None else chat_id
        with self._tx(immediate=True) as db:
            db.execute(
                "INSERT OR IGNORE INTO album_items (chat_id, group_id, user_id, message_id, file_id, thumb_file_id, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (chat, group_id, user_id, message_id, file_id, thumb_file_id, time.time()),
            )
            db.execute("DELETE FROM album_items WHERE created_at < ?", (time.time() - 3600,))
            mine = db.execute(
                "SELECT chat_id, group_id, message_id, created_at FROM album_items WHERE user_id = ?", (user_id,)
            ).fetchall()
            items = (((r["chat_id"], r["group_id"], r["message_id"]), r["created_at"]) for r in mine)
            for dropped in oldest_beyond(items, MAX_ALBUM_ITEMS_PER_USER):
                db.execute("DELETE FROM album_items WHERE chat_id = ? AND group_id = ? AND message_id = ?", dropped)
            rows = db.execute(
                "SELECT message_id, file_id, thumb_file_id FROM album_items WHERE chat_id = ? AND group_id = ? "
                "ORDER BY message_id",
                (chat, group_id),
            ).fetchall()
        return [AlbumItem(r["message_id"], r["file_id"], r["thumb_file_id"]) for r in rows]

    # --- files the bot uploaded once (gallery images) ---------------------
    def uploaded_file_id(self, key: str, sha256: str) -> str | None:
        """The Telegram ``file_id`` of a file uploaded as ``key``, if its content is still ``sha256``."""
        row = self._db().execute("SELECT sha256, file_id FROM uploads WHERE key = ?", (key,)).fetchone()
        return row["file_id"] if row is not None and row["sha256"] == sha256 else None

    def save_uploaded_file_id(self, key: str, sha256: str, file_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO uploads (key, sha256, file_id, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET sha256 = excluded.sha256, file_id = excluded.file_id, "
                "updated_at = excluded.updated_at",
                (key, sha256, file_id, time.time()),
            )

    # --- privacy -------------------------------------------------------
    def forget_user(self, user_id: int) -> list[str]:
        """Delete every row about ``user_id`` (all chats); return the ids of the jobs deleted.

        With ``secure_delete`` the rows are zeroed in the database pages; the WAL still
        holds older copies of those pages until a checkpoint, so one runs (TRUNCATE:
        the WAL file is emptied) before this returns. Rate-limit events stay: they
        carry a keyed hash and timestamps only.
        """
        with self._tx(immediate=True) as db:
            ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE user_id = ?", (user_id,))]
            # Group dialogs with the user's photo are keyed by chat too, but user_id covers them.
            for table in ("jobs", "dialogs", "settings", "styles", "album_items", "user_salts"):
                db.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
            self.forget_unfinished(db, user_id)  # their updates' raw JSON, not yet finished
        self.checkpoint()
        return ids

    def user_salt(self, user_id: int) -> bytes:
        """The user's random salt for log pseudonyms (``logs.who``), made on first use; /forget deletes it."""
        row = self._db().execute("SELECT salt FROM user_salts WHERE user_id = ?", (user_id,)).fetchone()
        if row is None:
            with self._tx(immediate=True) as db:
                db.execute("INSERT OR IGNORE INTO user_salts (user_id, salt) VALUES (?, ?)", (user_id, os.urandom(16)))
                row = db.execute("SELECT salt FROM user_salts WHERE user_id = ?", (user_id,)).fetchone()
        return bytes(row[0])

    def checkpoint(self, attempts: int = 50) -> bool:
        """Copy the WAL into the database and truncate it to zero bytes.

        TRUNCATE waits for readers through the busy handler, but a reader that holds a
        snapshot makes it report "busy" (1 in the first column): retried briefly.
        """
        db = self._db()
        for _ in range(attempts):
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return True
            time.sleep(0.05)
        return False

    # --- updates: exactly-once handling: stylebot/store/updates.py (UpdateJournal) ---
    def seen_update(self, update_id: int) -> bool:
        """``True`` if the update was handled before (else it is recorded now): RedisStore's API."""
        return not self.accept_updates([update_id])

    # --- worker reliability (jobs.ThreadQueue) ---------------------------
    def release(self, job_id: str) -> None:
        """Put a running job back in line after the worker itself failed, keeping the attempt.

        Unlike :meth:`requeue` (a graceful stop, not counted), the attempt stays
        counted, so a job that keeps breaking its worker is given up on in the end.
        """
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL WHERE id = ? AND status = 'running'", (job_id,)
            )

"""storage: the bot's durable state in one SQLite file.

Jobs, dialog state, per-user settings, recent styles and album assembly all
live here so that a restart, or a SIGKILL, loses nothing. Only Telegram
``file_id``s are stored, never image bytes or paths.

Thread safety: each thread gets its own connection (``sqlite3`` connections
must not be shared), the database runs in WAL mode so readers never block the
writer, and the one read-modify-write that races (claiming the next job) runs
in a ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator

from jobs import Job, JobStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    user_id INTEGER NOT NULL,
    chat_id INTEGER NOT NULL,
    lang TEXT NOT NULL,
    content_file_id TEXT NOT NULL,
    style_file_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    strength REAL NOT NULL,
    keep_colors INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_message_id INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_user ON jobs (user_id, created_at);
CREATE TABLE IF NOT EXISTS dialogs (
    user_id INTEGER PRIMARY KEY,
    step TEXT NOT NULL,
    content_file_id TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    user_id INTEGER PRIMARY KEY,
    size INTEGER,
    strength REAL NOT NULL DEFAULT 1.0,
    keep_colors INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS styles (
    user_id INTEGER NOT NULL,
    file_id TEXT NOT NULL,
    thumb_file_id TEXT,
    used_at REAL NOT NULL,
    PRIMARY KEY (user_id, file_id)
);
CREATE TABLE IF NOT EXISTS album_items (
    group_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    file_id TEXT NOT NULL,
    thumb_file_id TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (group_id, message_id)
);
"""

#: Dialog steps: waiting for the photo to repaint, or for the style picture.
STEP_CONTENT = "content"
STEP_STYLE = "style"


@dataclass
class Dialog:
    user_id: int
    step: str = STEP_CONTENT
    content_file_id: str | None = None


@dataclass
class UserSettings:
    """``size`` is ``None`` until the user picks one: then the operator's default applies."""

    user_id: int
    size: int | None = None
    strength: float = 1.0
    keep_colors: bool = False


@dataclass
class StyleRef:
    file_id: str
    thumb_file_id: str | None


@dataclass
class AlbumItem:
    message_id: int
    file_id: str
    thumb_file_id: str | None


_JOB_COLUMNS = [f.name for f in fields(Job)]


class Store:
    """All reads and writes, named by intent; returns dataclasses, never rows."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._db().executescript(SCHEMA)  # executescript manages its own transaction

    # --- plumbing ------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
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

    @staticmethod
    def _job(row: sqlite3.Row | None) -> Job | None:
        if row is None:
            return None
        values = {name: row[name] for name in _JOB_COLUMNS}
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
            job.seq = cursor.lastrowid
        return job

    def get_job(self, job_id: str) -> Job | None:
        return self._job(self._db().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def active_job(self, user_id: int) -> Job | None:
        row = self._db().execute(
            "SELECT * FROM jobs WHERE user_id = ? AND status IN ('queued', 'running') ORDER BY seq LIMIT 1",
            (user_id,),
        ).fetchone()
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
        row = self._db().execute(
            "SELECT seq, status FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None or row["status"] != JobStatus.QUEUED.value:
            return None
        ahead = self._db().execute(
            "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND seq < ?", (row["seq"],)
        ).fetchone()[0]
        return ahead + 1

    def recover(self) -> list[Job]:
        """At start-up: jobs left ``RUNNING`` by a dead process go back to the queue.

        Returns every job now waiting, oldest first, so their users can be told.
        """
        with self._tx(immediate=True) as db:
            db.execute("UPDATE jobs SET status = 'queued', started_at = NULL WHERE status = 'running'")
        return self.queued_jobs()

    def jobs_created_since(self, user_id: int, since: float) -> list[float]:
        rows = self._db().execute(
            "SELECT created_at FROM jobs WHERE user_id = ? AND created_at >= ? ORDER BY created_at",
            (user_id, since),
        ).fetchall()
        return [r[0] for r in rows]

    def last_job(self, user_id: int) -> Job | None:
        row = self._db().execute(
            "SELECT * FROM jobs WHERE user_id = ? ORDER BY seq DESC LIMIT 1", (user_id,)
        ).fetchone()
        return self._job(row)

    # --- dialog --------------------------------------------------------
    def get_dialog(self, user_id: int) -> Dialog:
        row = self._db().execute("SELECT * FROM dialogs WHERE user_id = ?", (user_id,)).fetchone()
        if row is None:
            return Dialog(user_id)
        return Dialog(user_id, row["step"], row["content_file_id"])

    def set_dialog(self, dialog: Dialog) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO dialogs (user_id, step, content_file_id, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET step = excluded.step, "
                "content_file_id = excluded.content_file_id, updated_at = excluded.updated_at",
                (dialog.user_id, dialog.step, dialog.content_file_id, time.time()),
            )

    def reset_dialog(self, user_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM dialogs WHERE user_id = ?", (user_id,))

    # --- settings ------------------------------------------------------
    def get_settings(self, user_id: int) -> UserSettings:
        row = self._db().execute("SELECT * FROM settings WHERE user_id = ?", (user_id,)).fetchone()
        if row is None:
            return UserSettings(user_id)
        return UserSettings(user_id, row["size"], row["strength"], bool(row["keep_colors"]))

    def save_settings(self, settings: UserSettings) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO settings (user_id, size, strength, keep_colors) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET size = excluded.size, "
                "strength = excluded.strength, keep_colors = excluded.keep_colors",
                (settings.user_id, settings.size, settings.strength, int(settings.keep_colors)),
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
        rows = self._db().execute(
            "SELECT file_id, thumb_file_id FROM styles WHERE user_id = ? ORDER BY used_at DESC LIMIT ?",
            (user_id, limit),
        ).fetchall()
        return [StyleRef(r["file_id"], r["thumb_file_id"]) for r in rows]

    # --- albums --------------------------------------------------------
    def add_album_item(
        self, group_id: str, user_id: int, message_id: int, file_id: str, thumb_file_id: str | None
    ) -> list[AlbumItem]:
        """Record one image of an album; return all seen so far, in message order.

        Telegram delivers an album as separate updates that our handler
        threads see concurrently; the immediate transaction makes exactly one
        of them observe the second item arriving.
        """
        with self._tx(immediate=True) as db:
            db.execute(
                "INSERT OR IGNORE INTO album_items VALUES (?, ?, ?, ?, ?, ?)",
                (group_id, user_id, message_id, file_id, thumb_file_id, time.time()),
            )
            db.execute("DELETE FROM album_items WHERE created_at < ?", (time.time() - 3600,))
            rows = db.execute(
                "SELECT message_id, file_id, thumb_file_id FROM album_items WHERE group_id = ? ORDER BY message_id",
                (group_id,),
            ).fetchall()
        return [AlbumItem(r["message_id"], r["file_id"], r["thumb_file_id"]) for r in rows]

    # --- privacy -------------------------------------------------------
    def forget_user(self, user_id: int) -> list[str]:
        """Delete every row about ``user_id``; return the ids of the jobs deleted."""
        with self._tx(immediate=True) as db:
            ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE user_id = ?", (user_id,))]
            for table in ("jobs", "dialogs", "settings", "styles", "album_items"):
                db.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
        return ids

"""sqlite_schema: the SQLite schema's versions and the migrations between them.

``PRAGMA user_version`` says which of :data:`MIGRATIONS` have run; the store applies the
missing ones in order, each in one transaction. Kept apart from the store's queries so that a
reader of either sees one concern.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import time
from collections.abc import Callable

from stylebot.store.updates import migrate_v5

#: Version 1: the schema of the first release, verbatim (its databases have user_version 0).
SCHEMA_V1 = """
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

#: Version 2: dialogs and albums per (chat, user); handled update ids and the polling
#: offset; rate limits by keyed hash. Dialogs and album items of version 1 are dropped:
#: they do not say which chat their photo came from, and using it in another chat is
#: exactly the leak this version fixes (albums live an hour anyway).
SCHEMA_V2 = """
DROP TABLE dialogs;
CREATE TABLE dialogs (
    chat_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    step TEXT NOT NULL,
    content_file_id TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX dialogs_user ON dialogs (user_id);
DROP TABLE album_items;
CREATE TABLE album_items (
    chat_id INTEGER NOT NULL,
    group_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    file_id TEXT NOT NULL,
    thumb_file_id TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (chat_id, group_id, message_id)
);
CREATE INDEX album_items_user ON album_items (user_id);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value BLOB
);
CREATE TABLE updates (
    update_id INTEGER PRIMARY KEY,
    seen_at REAL NOT NULL
);
CREATE TABLE rate_events (
    who TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX rate_events_who ON rate_events (who, at);
"""

#: Rate-limit timestamps older than this are dropped (the limit counts one hour).
RATE_KEEP = 3600


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _migrate_v1(db: sqlite3.Connection) -> None:
    for statement in _statements(SCHEMA_V1):
        db.execute(statement)


def _migrate_v2(db: sqlite3.Connection) -> None:
    for statement in _statements(SCHEMA_V2):
        db.execute(statement)
    salt = os.urandom(32)
    db.execute("INSERT INTO meta (key, value) VALUES ('rate_salt', ?)", (salt,))
    # The last hour's jobs keep counting against their users after the upgrade.
    rows = db.execute("SELECT user_id, created_at FROM jobs WHERE created_at >= ?", (time.time() - RATE_KEEP,))
    db.executemany(
        "INSERT INTO rate_events (who, at) VALUES (?, ?)", [(who(salt, r[0]), r[1]) for r in rows.fetchall()]
    )


#: Version 3: gallery styles and mixed styles on jobs, group replies, and the Telegram file ids
#: of files the bot uploaded once (gallery images), keyed by name and content hash.
SCHEMA_V3 = """
ALTER TABLE jobs ADD COLUMN style_slug TEXT;
ALTER TABLE jobs ADD COLUMN style2_file_id TEXT;
ALTER TABLE jobs ADD COLUMN style2_slug TEXT;
ALTER TABLE jobs ADD COLUMN mix REAL NOT NULL DEFAULT 0.5;
ALTER TABLE jobs ADD COLUMN reply_to_message_id INTEGER;
CREATE TABLE uploads (
    key TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    file_id TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""


def _migrate_v3(db: sqlite3.Connection) -> None:
    for statement in _statements(SCHEMA_V3):
        db.execute(statement)


def _migrate_v4(db: sqlite3.Connection) -> None:
    """Version 4: a dialog waiting for a second style (mixed styles) remembers the first."""
    db.execute("ALTER TABLE dialogs ADD COLUMN style_file_id TEXT")


def migrate_user_salts(db: sqlite3.Connection) -> None:
    """User salts: each user's random salt for the pseudonyms in log lines (``logs.who``); /forget deletes it.

    ``IF NOT EXISTS``: safe in whatever place of :data:`MIGRATIONS` it ends up.
    """
    db.execute("CREATE TABLE IF NOT EXISTS user_salts (user_id INTEGER PRIMARY KEY, salt BLOB NOT NULL)")


def _migrate_v7(db: sqlite3.Connection) -> None:
    """Version 7: a rate event records its job's size, so the quota counts work (jobs/quota.py); NULL: 1."""
    db.execute("ALTER TABLE rate_events ADD COLUMN size INTEGER")


def _migrate_v8(db: sqlite3.Connection) -> None:
    """Version 8: quick mode (issue 20). A user's speed choice (NULL: none made) and each job's speed;
    jobs from before read as painted, which is what they were. Only columns not there yet: a database a
    test or an operator rewound to an older ``user_version`` runs it again."""
    for table, column in (("settings", "speed TEXT"), ("jobs", "speed TEXT NOT NULL DEFAULT 'painted'")):
        if "speed" not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


#: Ordered: ``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _migrate_v1,
    _migrate_v2,
    _migrate_v3,
    _migrate_v4,
    migrate_v5,  # v5: unfinished updates (store/updates.py)
    migrate_user_salts,  # v6: log pseudonyms' salts
    _migrate_v7,  # v7: rate events carry their job size
    _migrate_v8,  # v8: speed (quick mode) on settings and jobs
]
SCHEMA_VERSION = len(MIGRATIONS)


def who(salt: bytes, user_id: int) -> str:
    """The rate-limit key of a user: HMAC-SHA256 of the id with this database's salt."""
    return hmac.new(salt, str(int(user_id)).encode(), hashlib.sha256).hexdigest()

"""updates: the polling journal of Telegram updates in SQLite (a mixin of ``sqlite_store.Store``).

An update id is recorded before the update has any effect, so a redelivered one is
ignored (exactly-once effects). Recording it alone made delivery at-most-once: a
SIGKILL while a handler ran (a stalled download) left that user without an answer,
since the restarted bot skipped the id. So an update is recorded as *taken* with its
raw JSON and the sender's id, and *finished* (raw and sender dropped) once its handler
returns; at start-up the taken-but-unfinished ones are handled again. The raw JSON
holds file ids, so it lives only while unfinished, and /forget deletes it too.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

#: Handled update ids are kept this long (Telegram keeps an unconfirmed update for a day).
UPDATES_KEEP = 2 * 24 * 3600

#: Version 5: the raw JSON and sender of an update taken but not finished (NULL once finished).
SCHEMA_V5 = """
ALTER TABLE updates ADD COLUMN raw TEXT;
ALTER TABLE updates ADD COLUMN user_id INTEGER;
CREATE INDEX updates_unfinished ON updates (update_id) WHERE raw IS NOT NULL
"""


def migrate_v5(db: sqlite3.Connection) -> None:
    for statement in SCHEMA_V5.split(";"):
        if statement.strip():
            db.execute(statement)


def sender_of(update: Mapping[str, Any]) -> int | None:
    """The user id an update comes from (what /forget deletes it by), if it has one."""
    for kind in ("message", "callback_query", "edited_message"):
        part = update.get(kind)
        if isinstance(part, dict) and isinstance(part.get("from"), dict):
            user_id = part["from"].get("id")
            return user_id if isinstance(user_id, int) else None
    return None


class UpdateJournal:
    """Taken, finished and redelivered updates, and the polling offset."""

    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _tx(self, immediate: bool = False) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def accept_updates(
        self, update_ids: list[int], offset: int | None = None, raw: Mapping[int, Mapping[str, Any]] | None = None
    ) -> list[int]:
        """Record ``update_ids`` as taken; return those not seen before, in the given order.

        Called before an update's effects can happen (like the webhook's ``SET NX``): a
        re-sent update (Telegram after a crash, a repeated delivery) has no second effect.
        ``offset``, when given, is saved in the same transaction as the next polling offset.
        ``raw`` (update id -> the update's JSON) is kept until :meth:`finish_update`, so
        :meth:`unfinished_updates` can hand it out again after a crash.
        """
        now = time.time()
        fresh: list[int] = []
        with self._tx(immediate=True) as db:
            for update_id in update_ids:
                item = raw.get(update_id) if raw is not None else None
                cursor = db.execute(
                    "INSERT OR IGNORE INTO updates (update_id, seen_at, raw, user_id) VALUES (?, ?, ?, ?)",
                    (
                        int(update_id),
                        now,
                        None if item is None else json.dumps(item),
                        None if item is None else sender_of(item),
                    ),
                )
                if cursor.rowcount == 1:
                    fresh.append(update_id)
            if offset is not None:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('poll_offset', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (int(offset),),
                )
            db.execute("DELETE FROM updates WHERE seen_at < ?", (now - UPDATES_KEEP,))
        return fresh

    def finish_update(self, update_id: int) -> None:
        """The update's handler returned: forget its JSON and sender (the id stays, against redelivery)."""
        with self._tx() as db:
            db.execute(
                "UPDATE updates SET raw = NULL, user_id = NULL WHERE update_id = ? AND raw IS NOT NULL",
                (int(update_id),),
            )

    def unfinished_updates(self) -> list[dict[str, Any]]:
        """Updates taken but never finished (the process died meanwhile), oldest first."""
        rows = self._db().execute("SELECT raw FROM updates WHERE raw IS NOT NULL ORDER BY update_id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def forget_unfinished(self, db: sqlite3.Connection, user_id: int) -> None:
        """/forget, inside its transaction: the user's unfinished updates are not kept (nor replayed)."""
        db.execute("UPDATE updates SET raw = NULL, user_id = NULL WHERE user_id = ?", (int(user_id),))

    def poll_offset(self) -> int | None:
        """The ``getUpdates`` offset saved by the last poll (``None`` on a new database)."""
        row = self._db().execute("SELECT value FROM meta WHERE key = 'poll_offset'").fetchone()
        return None if row is None else int(row[0])

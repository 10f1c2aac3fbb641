"""caps: how much dialog and album state one user may hold, and which to drop first.

Why: every ``/style`` in another group opened one more dialog row (30 groups gave 31 rows for one
user), and album items stayed for an hour whatever their number, so one account could grow the
store without bound. Both stores (SQLite and Redis) apply the same rule, written once here: a
constant per kind and a pure selection of what goes (the oldest beyond the cap), which each store
feeds with its own rows and then deletes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

K = TypeVar("K")

#: Open dialogs per user, across chats (their private chat and groups): the oldest goes first. A user
#: mid-dialog in more chats than this at once is rare; one whose prompt was dropped gets the group hint.
MAX_DIALOGS_PER_USER = 10
#: Album images held per user while albums are assembled (Telegram's largest album is 10): two full
#: albums arriving interleaved still assemble, and a flood of albums keeps only its newest images.
MAX_ALBUM_ITEMS_PER_USER = 20


def oldest_beyond(entries: Iterable[tuple[K, float]], keep: int) -> list[K]:
    """The keys to drop so that only the ``keep`` newest of ``entries`` remain (empty when within the cap).

    ``entries`` are ``(key, time)``; of two with equal times the earlier in the input counts as older.
    """
    newest_first = sorted(enumerate(entries), key=lambda e: (e[1][1], e[0]), reverse=True)
    return [key for _, (key, _when) in newest_first[max(keep, 0) :]]

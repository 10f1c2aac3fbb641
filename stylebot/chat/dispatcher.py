"""dispatcher: each sender's updates strictly in order, different senders in parallel.

Used by polling and by the webhook process alike; it knows nothing of the handlers
beyond ``bot.process_new_updates``.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable

import telebot
from telebot import types

log = logging.getLogger(__name__)

#: The update this thread is handling (``job_id_for_update`` reads it); unset between updates.
_current = threading.local()


class Dispatcher:
    """Runs each sender's updates strictly in order, and different senders in parallel, in two lanes.

    A burst of big pictures holds every thread of a pool while their decodes wait their turn in the
    shared decode budget (stylebot/decode_budget.py); a 33rd sender's ``/start`` then waited for the
    first decode to end (measured: 1.5-2.4 s on a busy 2-core box). So a sender whose queue starts with
    an update that carries no file (a command, a text, a button) is served by a small lane of its own.
    A sender stays in the lane it started in while it has updates queued or running, so each sender's
    updates keep their order across lanes.
    """

    def __init__(
        self,
        bot: telebot.TeleBot,
        shards: int = 4,
        max_threads: int = 32,
        on_done: Callable[[types.Update], None] | None = None,
        light_threads: int = 8,
    ) -> None:
        self._heavy = _Lane(bot, shards, max_threads, on_done, "updates")
        self._light = _Lane(bot, 1, light_threads, on_done, "light")

    def dispatch(self, updates: list[types.Update]) -> None:
        """Hand each update to the lane its sender is in; a sender in neither starts by its first update."""
        for update in updates:
            key = _sender(update)
            if self._heavy.holds(key):
                lane = self._heavy
            elif self._light.holds(key) or not _carries_file(update):
                lane = self._light
            else:
                lane = self._heavy
            lane.dispatch([update])

    @property
    def on_done(self) -> Callable[[types.Update], None] | None:
        """Called after an update's handler returned (or failed), in either lane: polling marks it finished."""
        return self._heavy.on_done

    @on_done.setter
    def on_done(self, callback: Callable[[types.Update], None] | None) -> None:
        self._heavy.on_done = self._light.on_done = callback

    def stop(self) -> None:
        """Updates already taken finish; threads then exit (updates not started are dropped)."""
        self._heavy.stop()
        self._light.stop()


class _Lane:
    """Runs each sender's updates strictly in order, and different senders in parallel.

    telebot's own thread pool would run a user's photo and style, sent a
    moment apart, at the same time, and both would see the dialog's old
    step. Fixed shards (user id modulo N) kept order but let one user's
    stalled download hold up every user on the same shard. So each sender
    has its own FIFO (keyed by user: that orders each (chat, user) dialog and
    also the per-user state, active job and rate limit, across chats), and a pool
    of threads serves the senders that have work: a sender is taken by one
    thread at a time (order), any free thread can take any sender, and the
    pool grows up to ``max_threads`` when all threads are busy, so a stalled
    sender holds only its own thread.
    """

    def __init__(
        self,
        bot: telebot.TeleBot,
        shards: int,
        max_threads: int,
        on_done: Callable[[types.Update], None] | None,
        name: str,
    ) -> None:
        self.bot = bot
        self.name = name
        #: Called after an update's handler returned (or failed): polling marks it finished there.
        #: Not for updates dropped by :meth:`stop`: those were never handled, so they are replayed.
        self.on_done = on_done
        self.max_threads = max(shards, max_threads)
        self._lock = threading.Lock()
        self._pending: dict[object, deque[types.Update]] = {}  # sender -> updates not yet run
        self._ready: queue.Queue = queue.Queue()  # senders with work, none taken yet
        self._idle = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []
        with self._lock:
            for _ in range(shards):
                self._spawn()

    def holds(self, key: object) -> bool:
        """Whether ``key`` has updates queued or running here (only the dispatching thread adds them)."""
        with self._lock:
            return key in self._pending

    def dispatch(self, updates: list[types.Update]) -> None:
        for update in updates:
            key = _sender(update)
            with self._lock:
                if self._stopping:
                    return
                waiting = self._pending.get(key)
                if waiting is not None:  # queued or being run: its thread will get to it
                    waiting.append(update)
                    continue
                self._pending[key] = deque([update])
                if self._idle == 0 and len(self._threads) < self.max_threads:
                    self._spawn()
                self._idle -= 1  # reserve a thread (may go negative: the work waits its turn)
            self._ready.put(key)

    def stop(self) -> None:
        """Updates already taken finish; threads then exit (updates not started are dropped)."""
        with self._lock:
            self._stopping = True
            count = len(self._threads)
        for _ in range(count):
            self._ready.put(None)

    def _spawn(self) -> None:
        """Start one more thread; the caller holds the lock."""
        thread = threading.Thread(target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        self._idle += 1
        thread.start()

    def _run(self) -> None:
        while (key := self._ready.get()) is not None:
            while True:
                with self._lock:
                    waiting = self._pending[key]
                    if not waiting or self._stopping:
                        del self._pending[key]
                        self._idle += 1
                        break
                    update = waiting.popleft()
                _current.key, _current.jobs = _identity(update), 0
                try:
                    self.bot.process_new_updates([update])
                except Exception:  # handlers are guarded; this is telebot itself failing
                    log.exception("update %s failed", update.update_id)
                finally:
                    _current.key = None
                if self.on_done is not None:
                    try:
                        self.on_done(update)
                    except Exception as exc:  # e.g. a full disk: it is handled again after a restart
                        log.warning("update %s: marking it finished failed (%s)", update.update_id, type(exc).__name__)


def job_id_for_update() -> str | None:
    """A job id derived from the update being handled on this thread (``None`` outside one).

    The same update handled again after a crash (polling replays unfinished updates)
    derives the same id, so its job is recognised instead of created twice. The
    message's chat, id and date (or the callback's id) go in with the update id:
    Telegram may restart update ids after a quiet week, and must not match an old job.
    """
    key = getattr(_current, "key", None)
    if key is None:
        return None
    _current.jobs += 1
    return hashlib.sha256(f"{key}#{_current.jobs}".encode()).hexdigest()[:12]


def _identity(update: types.Update) -> str:
    """What makes an update unique beyond its id (see :func:`job_id_for_update`)."""
    if update.callback_query is not None:
        return f"{update.update_id}:cb:{update.callback_query.id}"
    message = update.message or update.edited_message
    if message is not None:
        return f"{update.update_id}:{message.chat.id}:{message.message_id}:{message.date}"
    return str(update.update_id)


def _carries_file(update: types.Update) -> bool:
    """Whether the update brings a picture or file to check (the heavy lane's work)."""
    message = update.message or update.edited_message
    if message is None:
        return False
    return any(getattr(message, kind, None) is not None for kind in ("photo", "document", "sticker", "animation"))


def _sender(update: types.Update) -> object:
    """Whose updates must stay in order: the user's (per-user state spans their chats)."""
    for part in (update.message, update.callback_query, update.edited_message):
        if part is not None and part.from_user is not None:
            return part.from_user.id
    return ("update", update.update_id)  # no sender: nothing to keep in order

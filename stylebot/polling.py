"""polling: the long-poll loop that feeds updates to the dispatcher.

Used by the default (polling) process; the webhook process gets its updates by
HTTP instead and shares everything downstream (dispatcher, handlers).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import telebot
from telebot import types

from stylebot.chat.dispatcher import Dispatcher
from stylebot.jobs.health import Health, resource_trouble
from stylebot.store.sqlite_store import Store

log = logging.getLogger(__name__)

#: getUpdates long-poll: short enough that SIGTERM is honoured well inside Heroku's 30 s.
LONG_POLL_SECONDS = 8
ALLOWED_UPDATES = ["message", "callback_query"]


class Poller:
    """Long polling on its own thread that survives anything the network or Telegram throws at it.

    The offset is saved with the ids of the updates taken, before they are handled:
    a restart (even after SIGKILL) resumes after them, and an update Telegram sends
    again is recognised and ignored, so no photo or button press acts twice. Each
    taken update keeps its JSON until its handler returns; at start-up the ones a
    dead process never finished are handled again (:meth:`replay`), so nobody is
    left without an answer.
    """

    def __init__(
        self,
        bot: telebot.TeleBot,
        store: Store,
        dispatcher: Dispatcher,
        health: Health,
        stopping: threading.Event,
    ) -> None:
        self.bot, self.store, self.dispatcher, self.health, self.stopping = bot, store, dispatcher, health, stopping
        dispatcher.on_done = self._finished
        self._thread = threading.Thread(target=self.run, name="polling", daemon=True)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        """Wait for the loop to end (it ends within one long poll of ``stopping`` being set)."""
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def run(self) -> None:
        """The loop itself, until ``stopping`` is set."""
        offset: int | None = self.store.poll_offset()
        self.replay()
        delay = 1.0
        try:
            self.bot.remove_webhook()
        except Exception as exc:
            log.warning("deleteWebhook failed (%s); polling anyway", type(exc).__name__)
        while not self.stopping.is_set():
            try:
                # Raw JSON, parsed one update at a time below: telebot parses a batch as a
                # whole, and one update it cannot parse would otherwise stall the offset.
                raw = telebot.apihelper.get_updates(
                    self.bot.token,
                    offset=offset,
                    timeout=LONG_POLL_SECONDS + 10,
                    long_polling_timeout=LONG_POLL_SECONDS,
                    allowed_updates=ALLOWED_UPDATES,
                )
            except Exception as exc:
                log.warning("getUpdates failed: %s; retrying in %.0f s", _short(exc), delay)
                if self.stopping.wait(delay):
                    break
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            if raw and not self.stopping.is_set():
                next_offset = raw[-1]["update_id"] + 1
                try:
                    updates = parse_updates(raw, self.store, next_offset)
                except Exception as exc:
                    trouble = resource_trouble(exc)
                    if trouble is None:  # a passing hiccup: fetch the batch again
                        log.error("recording updates failed: %s; retrying", type(exc).__name__)
                        if self.stopping.wait(1.0):
                            break
                        continue
                    # Full disk: the ids cannot be saved, but the users must still hear
                    # "busy, try later" (handlers see the same trouble); the offset is kept in memory.
                    self.health.degrade(trouble)
                    log.warning("recording updates failed (%s); handling them without redelivery protection", trouble)
                    updates = parse_updates(raw)
                offset = next_offset
                self.dispatcher.dispatch(updates)

    def replay(self) -> None:
        """Before polling: hand out again the updates a dead process took but never finished.

        Their ids were recorded before handling (so Telegram's redelivery is ignored), which
        alone would leave a user whose update was being handled at a SIGKILL unanswered.
        Effects that must not double are idempotent: a job's id derives from its update.
        """
        try:
            pending = self.store.unfinished_updates()
        except Exception as exc:  # an unreadable journal must not stop the bot from polling
            log.error("reading unfinished updates failed: %s", type(exc).__name__)
            return
        if pending:
            log.info("handling %d update(s) again that were taken but not finished before the restart", len(pending))
            self.dispatcher.dispatch(parse_updates(pending, finish=self.store))

    def _finished(self, update: types.Update) -> None:
        """The dispatcher's ``on_done``: the update's handler returned; its raw JSON goes."""
        self.store.finish_update(update.update_id)


def parse_updates(
    raw: list[dict[str, Any]],
    store: Store | None = None,
    offset: int | None = None,
    finish: Store | None = None,
) -> list[types.Update]:
    """Parse each update on its own; one that telebot can't read is logged and skipped.

    With ``store``, updates already handled (re-sent by Telegram) are dropped and the new
    ones recorded as taken (with their JSON, until finished), with ``offset`` as the next
    polling offset, before any is handled. A skipped update is marked finished there (or
    in ``finish``), so it is not replayed at every start.
    """
    finish = finish or store
    if store is not None:
        ids: list[int] = [item["update_id"] for item in raw if isinstance(item.get("update_id"), int)]
        fresh = set(
            store.accept_updates(
                ids, offset, raw={item["update_id"]: item for item in raw if isinstance(item.get("update_id"), int)}
            )
        )
        for update_id in ids:
            if update_id not in fresh:
                log.info("update %s: already handled; ignored", update_id)
        raw = [item for item in raw if item.get("update_id") in fresh]
    updates = []
    for item in raw:
        try:
            updates.append(types.Update.de_json(item))
        except Exception as exc:
            log.warning("skipping update %s that could not be parsed: %s", item.get("update_id"), _short(exc))
            if finish is not None and isinstance(item.get("update_id"), int):
                try:
                    finish.finish_update(item["update_id"])
                except Exception as error:  # a full disk: it is skipped again after the next restart
                    log.warning("update %s: marking it finished failed (%s)", item["update_id"], type(error).__name__)
    return updates


def _short(exc: BaseException) -> str:
    """An exception for a log line: Telegram's code and description, else just the class (no URL, no token)."""
    if isinstance(exc, telebot.apihelper.ApiTelegramException):
        return f"{exc.error_code} {exc.description}"
    return type(exc).__name__

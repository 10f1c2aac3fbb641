"""app: builds one bot process from its parts, and runs it (polling, playground).

The parts are made here once: the Telegram wrapper, the store, the queue with its
worker threads, the engine context, the handlers. ``main.py`` only parses the
command line and calls in; the webhook process and the RQ worker reuse the same
builders. This module knows nothing of tensors (the engine is loaded by name).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from dataclasses import replace
from typing import Any, Callable

import telebot

from stylebot.chat import handlers as chat
from stylebot import texts
from stylebot.config import Config, ConfigError
from stylebot.jobs.job import Health, Job, ThreadQueue, resource_trouble
from stylebot.jobs.run import Context, probe_disk, run_job, sweep_results
from stylebot.store.sqlite_store import Store
from stylebot.tg import Telegram, TelegramError, UserGone, setup_logging, use_api_url

log = logging.getLogger("stylebot")

#: getUpdates long-poll: short enough that SIGTERM is honoured well inside Heroku's 30 s.
LONG_POLL_SECONDS = 8
ALLOWED_UPDATES = ["message", "callback_query"]


def load_engine(config: Config) -> Any:
    """Load the VGG weights once per process (a clear message if they're missing)."""
    import model  # torch is imported here, not at module import, so --help is instant

    return model.Engine(config.weights, device=config.device)


def engine_params(job: Job) -> Any:
    import model

    return model.StyleParams(size=job.size, strength=job.strength, keep_colors=job.keep_colors)


class TokenBucket:
    """``rate`` calls per second on average, bursts up to ``burst``; ``take()`` waits its turn."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._tokens, self._at = burst, clock()
        self._lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self._lock:
                now = self.clock()
                self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
                self._at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            time.sleep(wait)


class PositionWatcher:
    """Edits waiting users' "in the queue" messages when the queue moves, off the worker thread.

    Issue 11: editing every waiting message on every claim made n queued jobs
    cost n²/2 edits (50 users: 1,226 ``editMessageText``; Telegram answers 429).
    Now, per job: an edit only when the text shown changes; exact positions
    only near the front (``exact``), "more than N ahead" beyond; at least
    ``min_interval`` s between a job's edits and at most ``max_edits`` in all,
    the last kept for "you are next". All edits share one token bucket well
    under Telegram's ~30 messages/s. The store is read here, at most once per
    ``min_gap`` s, not on the worker thread.
    """

    exact = 4
    thresholds = (3, 10, 20, 50, 100, 200, 500, 1000)

    def __init__(self, tg: Telegram, min_interval: float = 15.0, max_edits: int = 3,
                 rate: float = 20.0, min_gap: float = 1.0) -> None:
        self.tg = tg
        self.min_interval = min_interval
        self.max_edits = max_edits
        self.min_gap = min_gap
        self.bucket = TokenBucket(rate, burst=rate)
        self._latest: list[Job] | Callable[[], list[Job]] | None = None
        self._source: Callable[[], list[Job]] | None = None
        self._shown: dict[str, str] = {}
        self._edits: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._recheck_at: float | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="positions", daemon=True)
        self._thread.start()

    def notify(self, waiting: list[Job] | Callable[[], list[Job]]) -> None:
        """The queue moved: ``waiting`` is the queued jobs, or a callable that reads them."""
        with self._cond:
            self._latest = waiting
            if callable(waiting):
                self._source = waiting
            self._cond.notify()

    def text(self, job: Job, position: int) -> str:
        if position == 1:
            return texts.t(job.lang, "queued_next")
        if position <= self.exact:
            return texts.t(job.lang, "queued", position=position)
        ahead = max(t for t in self.thresholds if t < position - 1 or t == self.thresholds[0])
        return texts.t(job.lang, "queued_many", ahead=ahead)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._latest is None:
                    timeout = None if self._recheck_at is None else max(0.0, self._recheck_at - time.monotonic())
                    self._cond.wait(timeout)
                    if self._latest is None and self._recheck_at is not None and self._source is not None \
                            and time.monotonic() >= self._recheck_at:
                        self._latest = self._source  # deferred edits are due: look again
                waiting, self._latest = self._latest, None
            try:
                self._update(waiting() if callable(waiting) else waiting)
            except Exception:
                log.exception("position updates failed")
            time.sleep(self.min_gap)  # coalesce bursts of claims into one look at the queue

    def _update(self, waiting: list[Job]) -> None:
        now = time.monotonic()
        self._recheck_at = None
        present = {job.id for job in waiting}
        for gone in [j for j in self._last if j not in present]:
            self._shown.pop(gone, None), self._edits.pop(gone, None), self._last.pop(gone, None)
        for position, job in enumerate(waiting, 1):
            if job.status_message_id is None:
                continue
            if job.id not in self._last:  # first sight: the handler's "queued" message was its first text
                self._last[job.id] = now
                self._edits[job.id] = 0
                if position > 1:
                    continue
            text = self.text(job, position)
            edits = self._edits[job.id]
            if text == self._shown.get(job.id) or edits >= self.max_edits:
                continue
            if position > 1 and edits >= self.max_edits - 1:
                continue  # the last edit is kept for "you are next"
            due = self._last[job.id] + self.min_interval
            if now < due and position > 1:
                self._recheck_at = due if self._recheck_at is None else min(self._recheck_at, due)
                continue
            self.bucket.take()
            self._shown[job.id], self._edits[job.id], self._last[job.id] = text, edits + 1, time.monotonic()
            try:
                self.tg.edit_text(job.chat_id, job.status_message_id, text)
            except (TelegramError, UserGone) as exc:
                log.info("position update for job %s failed: %s", job.id, exc)


class App:
    """One bot process: polling, handlers and worker threads over one SQLite store."""

    def __init__(self, config: Config, engine: Any = None, **context_options: Any) -> None:
        self.config = config
        use_api_url(config.api_url)
        self.store = Store(config.db_path)
        # Handlers run on the Dispatcher's per-user threads, not telebot's pool.
        self.bot = telebot.TeleBot(config.token, threaded=False, exception_handler=chat.LogErrors())
        self.dispatcher = chat.Dispatcher(self.bot)
        self.stopping = threading.Event()
        self.tg = Telegram(self.bot, stop=self.stopping)
        self.engine = engine if engine is not None else load_engine(config)
        gpu = getattr(getattr(self.engine, "device", None), "type", "cpu") == "cuda"
        self.ctx = Context(
            store=self.store,
            tg=self.tg,
            engine=self.engine,
            params=engine_params,
            results_dir=config.results_dir,
            **{"job_timeout": float(config.job_timeout), **context_options},
        )
        self.health = Health()
        self.ctx.health = self.health
        self.positions = PositionWatcher(self.tg)
        self.queue = ThreadQueue(
            self.store,
            execute=lambda job, stop: run_job(job, stop, self.ctx),
            workers=config.workers,
            on_move=self.positions.notify,
            health=self.health,
            probe=lambda: probe_disk(config.data_dir),
            job_timeout=self.ctx.job_timeout,
        )
        self.handlers = chat.Handlers.for_config(self.bot, self.store, self.queue, self.tg, config, gpu)
        chat.register(self.bot, self.handlers)
        self._poller = threading.Thread(target=self._poll, name="polling", daemon=True)

    # --- lifetime --------------------------------------------------------
    def start(self) -> "App":
        try:
            sweep_results(self.config.results_dir)
        except OSError as exc:
            log.warning("sweeping old results failed: %s", exc)
        self._resume_jobs()
        self.queue.start()
        self._poller.start()
        threading.Thread(target=chat.announce_commands, args=(self.bot, self.stopping), name="commands", daemon=True).start()
        log.info("bot started: %s", self.config.describe())
        return self

    def stop(self, timeout: float = 8.0) -> None:
        """Stop polling, put the running job back in the queue, and return within ``timeout``."""
        log.info("stopping")
        self.stopping.set()
        self.queue.stop(timeout=timeout)
        self.dispatcher.stop()
        log.info("stopped")

    def wait(self) -> None:
        while not self.stopping.wait(0.5):
            pass

    def _resume_jobs(self) -> None:
        """Jobs that were waiting or running when we last stopped: queue them and say so.

        The old status message goes (it may be a half-painted preview, which can't
        turn back into text); a fresh "back in the queue" message takes its place.
        """
        for position, job in enumerate(self.store.recover(), 1):
            try:
                if job.status_message_id is not None:
                    self.tg.delete(job.chat_id, job.status_message_id)
                message = self.tg.send_text(job.chat_id, texts.t(job.lang, "resumed", position=position))
                self.store.set_status_message(job.id, message.message_id)
            except (TelegramError, UserGone) as exc:
                log.info("could not tell user about resumed job %s: %s", job.id, exc)

    def _poll(self) -> None:
        """Long polling that survives anything the network or Telegram throws at it.

        The offset is saved with the ids of the updates taken, before they are handled:
        a restart (even after SIGKILL) resumes after them, and an update Telegram sends
        again is recognised and ignored, so no photo or button press acts twice.
        """
        offset: int | None = self.store.poll_offset()
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
                    self.config.token,
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
                    log.warning("recording updates failed (%s); handling them without redelivery protection",
                                trouble)
                    updates = parse_updates(raw)
                offset = next_offset
                self.dispatcher.dispatch(updates)


def parse_updates(raw: list[dict], store: Store | None = None, offset: int | None = None) -> list[telebot.types.Update]:
    """Parse each update on its own; one that telebot can't read is logged and skipped.

    With ``store``, updates already handled (re-sent by Telegram) are dropped and the new
    ones recorded, with ``offset`` as the next polling offset, before any is handled.
    """
    if store is not None:
        ids = [item.get("update_id") for item in raw if isinstance(item.get("update_id"), int)]
        fresh = set(store.accept_updates(ids, offset))
        for update_id in ids:
            if update_id not in fresh:
                log.info("update %s: already handled; ignored", update_id)
        raw = [item for item in raw if item.get("update_id") in fresh]
    updates = []
    for item in raw:
        try:
            updates.append(telebot.types.Update.de_json(item))
        except Exception as exc:
            log.warning("skipping update %s that could not be parsed: %s", item.get("update_id"), _short(exc))
    return updates


def _short(exc: BaseException) -> str:
    if isinstance(exc, telebot.apihelper.ApiTelegramException):
        return f"{exc.error_code} {exc.description}"
    return type(exc).__name__


class WeightsMissing(SystemExit):
    """The engine could not load its weights: already explained on stderr."""


def build_app(config: Config) -> App:
    try:
        return App(config)
    except ValueError as exc:
        if type(exc).__name__ != "WeightsError":
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise WeightsMissing(2) from None


def run_polling(config: Config) -> int:
    app = build_app(config)
    app.start()
    install_signal_handlers(app.stopping)
    app.wait()
    app.stop()
    return 0


def install_signal_handlers(stopping: threading.Event) -> None:
    def handle(signum, _frame):
        log.info("received %s", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run_playground(config_env: Config | None, port: int) -> int:
    from stylebot.playground.server import Playground

    with Playground(port=port) as pg:
        base = config_env or Config(token=pg.token)
        config = replace(base, token=pg.token, api_url=pg.api_url)
        setup_logging(config.token)
        app = build_app(config)
        app.start()
        install_signal_handlers(app.stopping)
        print(f"Playground: open {pg.page_url} in your browser (Ctrl-C stops).", flush=True)
        app.wait()
        app.stop()
    return 0

"""app: builds one bot process from its parts, and runs it (polling, playground).

The parts are made here once: the Telegram wrapper, the store, the queue with its
worker threads, the engine context, the handlers. ``main.py`` only parses the
command line and calls in; the webhook process and the RQ worker reuse the same
builders. This module knows nothing of tensors (the engine is loaded by name).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from dataclasses import replace
from typing import Any, Protocol

import telebot

from stylebot import decode_budget
from stylebot.chat.delivery import ChatDelivery
from stylebot.chat.dispatcher import Dispatcher
from stylebot.chat.handlers import Handlers
from stylebot.chat.routing import LogErrors, announce_commands, register
from stylebot.config import Config
from stylebot.engine.params import StyleParams
from stylebot.engine.quick import QuickEngine
from stylebot.errors import WeightsError
from stylebot.healthcheck import Heartbeat
from stylebot.hostmem import limit_malloc_arenas
from stylebot.jobs.first_look import FirstLooks, WithFirstLook
from stylebot.jobs.health import Health, resource_trouble
from stylebot.jobs.job import Job
from stylebot.jobs.ledger import Ledger
from stylebot.jobs.positions import PositionWatcher
from stylebot.jobs.results import probe_disk, sweep_results
from stylebot.jobs.run import Context, run_job
from stylebot.jobs.status import announce_requeued
from stylebot.jobs.threads import ThreadQueue
from stylebot.logs import setup_logging
from stylebot.polling import Poller
from stylebot.private import DataDirError, secure_dir
from stylebot.store.sqlite_store import Store
from stylebot.tg import Telegram, use_api_url

log = logging.getLogger("stylebot")


# --- the builder pieces every process shares (polling app, webhook app, RQ worker) ---
def load_engine(config: Config) -> Any:
    """Load the VGG weights once per process (a clear message if they're missing); with ``STYLEBOT_ENGINE=quick``
    the draft network instead (torch is never imported), and with ``auto`` that when the painted one cannot load."""
    if config.engine == "quick":
        return quick_engine()
    try:
        from stylebot.engine.engine import Engine  # torch is imported here, not at module import: --help is instant

        return Engine(config.weights, device=config.device)
    except (WeightsError, ImportError, MemoryError) as exc:
        if config.engine != "auto":
            raise
        log.warning("STYLEBOT_ENGINE=auto: the painted engine cannot load (%s); answering in quick mode", exc)
        return quick_engine()


def quick_engine() -> QuickEngine:
    """Quick mode's engine (the draft network); WeightsError when the draft cannot run here."""
    from stylebot.engine.draft import DraftModel, DraftUnavailable

    try:
        return QuickEngine(DraftModel(threads=1))
    except DraftUnavailable as exc:
        raise WeightsError(f"quick mode needs the draft network: {exc}") from exc


def quick_beside(config: Config) -> QuickEngine | None:
    """The draft beside a painted engine, for jobs marked quick (/settings, ``auto``); None without it."""
    from stylebot.engine.draft import load_draft  # onnxruntime, no torch; loaded once per process

    draft = load_draft(threads=1)
    return QuickEngine(draft) if draft is not None else None


def engine_params(job: Job) -> StyleParams:
    """A job's settings as the engine's parameters (``Context.params``)."""
    return StyleParams(size=job.size, strength=job.strength, keep_colors=job.keep_colors, mix=job.mix)


def build_first_looks(tg: Telegram, store: Any) -> FirstLooks | None:
    """The draft's first look on its own one-thread pool; None (said once in the log) without the draft network."""
    from stylebot.engine.draft import load_draft  # onnxruntime, no torch

    draft = load_draft(threads=1)
    return FirstLooks(draft, tg, store) if draft is not None else None


def gpu_flag(config: Config, engine: Any = None) -> bool:
    """Whether jobs paint on a GPU (the handlers offer larger sizes then).

    A process with an engine asks its device; the webhook process has none, and
    there ``STYLEBOT_DEVICE=cuda`` says "the workers have GPUs".
    """
    if engine is None:
        return config.device == "cuda"
    return getattr(getattr(engine, "device", None), "type", "cpu") == "cuda"


def build_telegram(config: Config, stopping: threading.Event, exception_handler: Any = None) -> Telegram:
    """The telebot client and its resilient wrapper (``tg.bot`` is the client).

    ``threaded=False``: handlers run on the Dispatcher's per-user threads, not
    telebot's pool. The API URL is a telebot global, so it is set here, once.
    """
    use_api_url(config.api_url)
    bot = telebot.TeleBot(config.token, threaded=False, exception_handler=exception_handler)
    return Telegram(bot, stop=stopping)


def build_context(
    config: Config, store: Any, tg: Telegram, engine: Any, health: Health | None = None, **options: Any
) -> Context:
    """What ``run_job`` needs, the same in worker threads and RQ workers; ``options`` override timings."""
    return Context(
        store=store,
        tg=tg,
        engine=engine,
        params=engine_params,
        results_dir=config.results_dir,
        delivery=ChatDelivery(tg, store),
        health=health,
        styles_dir=config.styles_dir,
        default_size=config.image_size,
        max_size=config.max_image_size,
        # Jobs marked quick: the quick engine itself, or (``options``) the draft beside a painted one.
        **{"job_timeout": float(config.job_timeout), "quick": engine if isinstance(engine, QuickEngine) else None}
        | options,
    )


class App:
    """One bot process: polling, handlers and worker threads over one SQLite store."""

    def __init__(self, config: Config, engine: Any = None, *, first_look: bool = True, **context_options: Any) -> None:
        limit_malloc_arenas()  # before the handler threads: a burst of decodes must not keep 16 arenas
        self.engine = engine if engine is not None else load_engine(config)
        gpu = gpu_flag(config, self.engine)
        config, self.memory = config.fit_to_host(gpu)  # sizes and workers that fit this host's memory
        decode_budget.configure(self.memory.decode_bytes())  # arrivals decode beside the painting
        log.info("%s", self.memory.describe())
        self.config = config
        secure_dir(config.data_dir)  # 0700, and what it holds 0600; or DataDirError (stylebot/private.py)
        self.store = Store(config.db_path)
        self.stopping = threading.Event()
        self.tg = build_telegram(config, self.stopping, exception_handler=LogErrors())
        self.bot = self.tg.bot
        self.dispatcher = Dispatcher(self.bot)
        self.health = Health()
        # Results sent while the store refuses writes, in a file that needs no free space (jobs/ledger.py).
        self.ledger = Ledger(config.data_dir / "delivered.ledger")
        # Quick mode answers with the draft itself: no first look before it.
        quick = isinstance(self.engine, QuickEngine)
        self.first_looks = build_first_looks(self.tg, self.store) if first_look and not quick else None
        self.ctx = build_context(
            config,
            self.store,
            self.tg,
            self.engine,
            health=self.health,
            ledger=self.ledger,
            first_looks=self.first_looks,
            **({} if quick else {"quick": quick_beside(config)}),  # the /settings choice runs the draft here
            **context_options,
        )
        self.positions = PositionWatcher(self.tg)
        self.queue = ThreadQueue(
            self.store,
            execute=lambda job, stop: run_job(job, stop, self.ctx),
            workers=config.workers,
            on_move=self.positions.notify,
            health=self.health,
            probe=lambda: probe_disk(config.data_dir),
            job_timeout=self.ctx.timeout_for,
        )
        queue = self.queue if self.first_looks is None else WithFirstLook(self.queue, self.first_looks)
        # The speed choice (chat/speed.py) only where the draft runs; ``auto`` fallen back to quick is quick-only.
        speed_config = replace(config, engine="quick") if quick else config
        quick_ok = self.ctx.quick is not None
        self.handlers = Handlers.for_config(self.bot, self.store, queue, self.tg, speed_config, gpu, quick=quick_ok)
        register(self.bot, self.handlers)
        self._poller = Poller(self.bot, self.store, self.dispatcher, self.health, self.stopping)

    # --- lifetime --------------------------------------------------------
    def start(self) -> App:
        try:
            sweep_results(self.config.results_dir)
        except OSError as exc:
            log.warning("sweeping old results failed: %s", exc)
        try:
            self._resume_jobs()
        except Exception as exc:
            trouble = resource_trouble(exc)
            if trouble is None:
                raise
            # A full disk must not keep the bot down (issue 11): up degraded, users hear "busy",
            # and the worker loop finishes the recovery once the disk takes writes again.
            log.warning("resuming queued jobs waits for the disk: %s", exc)
            self.health.degrade(trouble)
            self.queue.defer(self._resume_jobs)
        self.queue.start()
        self._poller.start()
        threading.Thread(target=announce_commands, args=(self.bot, self.stopping), name="commands", daemon=True).start()
        log.info("bot started: %s", self.config.describe())
        return self

    def stop(self, timeout: float = 8.0) -> None:
        """Stop polling, put the running job back in the queue, and return within ``timeout``."""
        log.info("stopping")
        self.stopping.set()
        self.queue.stop(timeout=timeout)
        if self.first_looks is not None:
            self.first_looks.close()
        self.dispatcher.stop()
        self.ledger.close()
        log.info("stopped")

    def wait(self) -> None:
        heartbeat = Heartbeat(self.config.data_dir)  # read by the container's HEALTHCHECK (stylebot/healthcheck.py)
        while not self.stopping.wait(0.5):
            heartbeat.beat(alive=self.queue.alive_workers() == self.config.workers)

    def _resume_jobs(self) -> None:
        """Jobs that were waiting or running when we last stopped: queue them and say so.

        The old status message goes (it may be a half-painted preview, which can't
        turn back into text); a fresh "back in the queue" message takes its place.
        """
        for position, job in enumerate(self.store.recover(delivered=self.ledger), 1):
            announce_requeued(self.tg, self.store, job, position)


class WeightsMissing(SystemExit):
    """The engine could not load its weights: already explained on stderr."""


def build_app(config: Config) -> App:
    """The polling app, or a one-line error and exit status 2 when the weights are missing."""
    try:
        return App(config)
    except (WeightsError, DataDirError) as exc:
        raise WeightsMissing(cannot_start(str(exc))) from None


def run_polling(config: Config) -> int:
    app = build_app(config)
    app.start()
    return serve_until_stopped(app)


#: The exit status of a process that cannot start (no weights, a setting missing, Redis or Telegram unreachable).
CANNOT_START = 2


def cannot_start(message: str) -> int:
    """``error: message`` on stderr, and the exit status to end with: how every process refuses to start."""
    print(f"error: {message}", file=sys.stderr)
    return CANNOT_START


class Serving(Protocol):
    """A started process that serves until told to stop: the polling :class:`App` and the webhook app."""

    stopping: threading.Event

    def wait(self) -> None: ...

    def stop(self) -> None: ...


def serve_until_stopped(app: Serving) -> int:
    """Serve until SIGTERM or SIGINT sets ``app.stopping``, then stop cleanly; the exit status (0).

    The polling and the webhook process end the same way, so a platform's SIGTERM means the same to both.
    """
    install_signal_handlers(app.stopping)
    app.wait()
    app.stop()
    return 0


def install_signal_handlers(stopping: threading.Event) -> None:
    def handle(signum: int, _frame: Any) -> None:
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

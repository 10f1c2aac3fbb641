"""main: start the style-transfer bot.

    python main.py                 # the bot: long polling + in-process worker threads
    python main.py --playground    # the same bot against a local Bot API and a chat page
    python main.py worker          # an RQ worker (scale-out mode, needs REDIS_URL)
    STYLEBOT_MODE=webhook python main.py   # the webhook web process (needs REDIS_URL)

This module wires the parts together and owns the process lifetime:
signals, polling and shutdown. It knows nothing of tensors.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import replace
from typing import Any

import telebot

import bot as chat
import texts
from config import Config, ConfigError
from jobs import Job, ThreadQueue
from runner import Context, run_job, sweep_results
from storage import Store
from telegram import Telegram, TelegramError, UserGone, setup_logging, use_api_url

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


class PositionWatcher:
    """Edits waiting users' status messages when the queue moves, off the worker thread."""

    def __init__(self, tg: Telegram) -> None:
        self.tg = tg
        self._latest: list[Job] | None = None
        self._shown: dict[str, int] = {}
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="positions", daemon=True)
        self._thread.start()

    def notify(self, waiting: list[Job]) -> None:
        with self._cond:
            self._latest = waiting
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._latest is None:
                    self._cond.wait()
                waiting, self._latest = self._latest, None
            for position, job in enumerate(waiting, 1):
                if job.status_message_id is None or self._shown.get(job.id) == position:
                    continue
                self._shown[job.id] = position
                key = "queued_next" if position == 1 else "queued"
                try:
                    self.tg.edit_text(job.chat_id, job.status_message_id, texts.t(job.lang, key, position=position))
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
            **context_options,
        )
        self.positions = PositionWatcher(self.tg)
        self.queue = ThreadQueue(
            self.store,
            execute=lambda job, stop: run_job(job, stop, self.ctx),
            workers=config.workers,
            on_move=self.positions.notify,
        )
        self.handlers = chat.Handlers.for_config(self.bot, self.store, self.queue, self.tg, config, gpu)
        chat.register(self.bot, self.handlers)
        self._poller = threading.Thread(target=self._poll, name="polling", daemon=True)

    # --- lifetime --------------------------------------------------------
    def start(self) -> "App":
        sweep_results(self.config.results_dir)
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
        """Jobs that were waiting or running when we last stopped: queue them and say so."""
        for position, job in enumerate(self.store.recover(), 1):
            try:
                message = self.tg.send_text(job.chat_id, texts.t(job.lang, "resumed", position=position))
                self.store.set_status_message(job.id, message.message_id)
            except (TelegramError, UserGone) as exc:
                log.info("could not tell user about resumed job %s: %s", job.id, exc)

    def _poll(self) -> None:
        """Long polling that survives anything the network or Telegram throws at it."""
        offset: int | None = None
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
                offset = raw[-1]["update_id"] + 1
                self.dispatcher.dispatch(parse_updates(raw))


def parse_updates(raw: list[dict]) -> list[telebot.types.Update]:
    """Parse each update on its own; one that telebot can't read is logged and skipped."""
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
    from playground import Playground

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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Telegram bot that repaints a photo in the style of another picture.",
        epilog="Settings come from the environment (or .env): TELEGRAM_BOT_TOKEN, TELEGRAM_API_URL, "
        "STYLEBOT_DATA_DIR, STYLEBOT_WEIGHTS, STYLEBOT_DEVICE, STYLEBOT_WORKERS, STYLEBOT_IMAGE_SIZE. See README.md.",
    )
    parser.add_argument("command", nargs="?", choices=["bot", "worker"], default="bot",
                        help="bot (default): run the bot; worker: run an RQ worker (needs REDIS_URL)")
    parser.add_argument("--playground", action="store_true",
                        help="run the bot against a local Bot API emulator with a chat page; no token needed")
    parser.add_argument("--port", type=int, default=8080, help="playground page port (default 8080)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = Config.from_env(require_token=not args.playground)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.playground:
        return run_playground(config, args.port)
    setup_logging(config.token)
    if args.command == "worker":
        from rq_queue import run_worker

        return run_worker(config)
    if config.mode == "webhook":
        from webhook import run_webhook

        return run_webhook(config)
    return run_polling(config)


if __name__ == "__main__":
    sys.exit(main())

"""webhook: the scale-out web process — Telegram POSTs updates, RQ workers paint.

``STYLEBOT_MODE=webhook python main.py`` (Heroku: the ``web`` dyno). It
registers ``STYLEBOT_WEBHOOK_URL`` with ``setWebhook`` and serves it on
``PORT``. Per update:

1. the ``X-Telegram-Bot-Api-Secret-Token`` header must match (403 otherwise:
   anyone who guesses the URL could otherwise talk as any user);
2. ``update_id`` is recorded in Redis with ``SET NX``: Telegram re-sends an
   update it thinks failed, and a re-sent one gets 200 and nothing else;
3. the update goes to :class:`bot.Dispatcher` (per-user order, a few threads)
   and the response is 200 at once: the handlers' downloads and replies never
   hold Telegram's connection.

The chat is built exactly like ``main.App`` builds it (``bot.Handlers`` +
``bot.register``), with :class:`redis_store.RedisStore` for state and
:class:`rq_queue.RQQueue` for jobs, so every web process and every worker
shares one dialog and one queue. SIGTERM stops serving within a second or
two; the webhook stays registered for the next process (or the other dynos).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import redis
import telebot
from telebot import types

import bot as chat
from redis_store import RedisStore
from rq_queue import RQQueue
from runner import result_path, sweep_results
from telegram import Telegram, TelegramError, use_api_url

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: An update is a few KB; anything far bigger is not from Telegram.
MAX_BODY = 1024 * 1024
ALLOWED_UPDATES = ["message", "callback_query"]


def webhook_secret(config: Any) -> str:
    """``STYLEBOT_WEBHOOK_SECRET``, or one derived from the token when it is unset.

    Deriving keeps the check on by default: every web process computes the
    same value, and it reveals nothing about the token (a hash, salted).
    Telegram allows 1-256 characters of ``A-Za-z0-9_-``; hex qualifies.
    """
    if config.webhook_secret:
        return config.webhook_secret
    return hashlib.sha256(b"stylebot-webhook:" + config.token.encode()).hexdigest()[:48]


class SharedResultHandlers(chat.Handlers):
    """``bot.Handlers`` whose "Full quality file" reads results the workers put in Redis.

    Workers run on other machines, so the PNG they wrote is not on this
    one's disk; they also copy it to Redis (24 h). This fetches it into the
    local results folder first, then lets the normal handler send it.
    """

    def on_result_button(self, call: types.CallbackQuery) -> None:
        kind, _, rest = (call.data or "").partition(":")
        if kind == "full":
            self._fetch_result(rest.partition(":")[0], call.from_user.id)
        super().on_result_button(call)

    def _fetch_result(self, job_id: str, user_id: int) -> None:
        path = result_path(self.results_dir, job_id)
        job = self.store.get_job(job_id)
        if path.is_file() or job is None or job.user_id != user_id:
            return
        png = self.store.load_result(job_id)
        if png is None:
            return
        sweep_results(self.results_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_bytes(png)
        tmp.replace(path)


class WebhookApp:
    """One web process: HTTP server, dispatcher and handlers over Redis."""

    def __init__(self, config: Any, host: str = "0.0.0.0") -> None:
        self.config = config
        use_api_url(config.api_url)
        self.secret = webhook_secret(config)
        self.path = urlsplit(config.webhook_url).path or "/"
        self.store = RedisStore(config.redis_url)
        self.bot = telebot.TeleBot(config.token, threaded=False, exception_handler=chat.LogErrors())
        self.dispatcher = chat.Dispatcher(self.bot)
        self.stopping = threading.Event()
        self.tg = Telegram(self.bot, stop=self.stopping)
        self.queue = RQQueue(self.store)
        # The web process has no engine; STYLEBOT_DEVICE=cuda here says "the workers have GPUs".
        gpu = config.device == "cuda"
        self.handlers = SharedResultHandlers.for_config(self.bot, self.store, self.queue, self.tg, config, gpu)
        chat.register(self.bot, self.handlers)
        self.server = ThreadingHTTPServer((host, config.port), _handler_for(self))
        self.server.daemon_threads = True
        self._serving = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.25},
                                         name="http", daemon=True)

    # --- one request ------------------------------------------------------
    def handle(self, path: str, secret: str | None, body: bytes) -> int:
        """Decide the HTTP status for one POST; hand a new update to the dispatcher."""
        if urlsplit(path).path != self.path:
            return 404
        if secret is None or not hmac.compare_digest(secret.encode(), self.secret.encode()):
            log.warning("webhook: request with a missing or wrong secret token refused")
            return 403
        try:
            payload = json.loads(body)
            update_id = int(payload["update_id"])
        except (ValueError, KeyError, TypeError):
            return 400
        try:
            if self.store.seen_update(update_id):
                log.info("update %d: already handled; ignored", update_id)
                return 200
        except redis.RedisError as exc:
            log.error("update %d: Redis unavailable (%s); Telegram will retry", update_id, type(exc).__name__)
            return 503
        try:
            update = types.Update.de_json(payload)
        except Exception:  # malformed beyond telebot's tolerance: re-sending it would not help
            log.exception("update %d: cannot be parsed; dropped", update_id)
            return 200
        self.dispatcher.dispatch([update])
        return 200

    # --- lifetime -----------------------------------------------------------
    def start(self) -> WebhookApp:
        """Serve first, then register: Telegram may POST the moment setWebhook returns."""
        self.store.ping()
        self._serving.start()
        self.tg.call(
            self.bot.set_webhook,
            url=self.config.webhook_url,
            secret_token=self.secret,
            allowed_updates=ALLOWED_UPDATES,
        )
        threading.Thread(target=chat.announce_commands, args=(self.bot, self.stopping), name="commands", daemon=True).start()
        log.info("webhook serving on port %d; %s", self.config.port, self.config.describe())
        return self

    def wait(self) -> None:
        while not self.stopping.wait(0.5):
            pass

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting updates, let the ones already taken finish (briefly), and return."""
        log.info("stopping")
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.dispatcher.stop()
        # Dispatcher has no join(); its threads are daemons, so waiting is a courtesy
        # to updates already acknowledged to Telegram.
        for thread in getattr(self.dispatcher, "_threads", []):
            thread.join(timeout / 4)
        self.store.close()
        log.info("stopped")


def _handler_for(app: WebhookApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._reply(200, b"ok\n")  # a health check for the platform's router

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, b"too large\n")
                return
            body = self.rfile.read(length)
            status = app.handle(self.path, self.headers.get(SECRET_HEADER), body)
            self._reply(status, b"" if status == 200 else f"{status}\n".encode())

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def run_webhook(config: Any) -> int:
    """``STYLEBOT_MODE=webhook python main.py``: serve the webhook until SIGTERM."""
    from main import install_signal_handlers

    if not config.webhook_url:
        print("error: STYLEBOT_MODE=webhook needs STYLEBOT_WEBHOOK_URL, the public https:// address "
              "Telegram posts to (e.g. https://<app>.herokuapp.com/telegram)", file=sys.stderr)
        return 2
    try:
        app = WebhookApp(config)
        app.start()
    except redis.RedisError as exc:
        print(f"error: cannot reach Redis at REDIS_URL ({type(exc).__name__})", file=sys.stderr)
        return 2
    except TelegramError as exc:
        print(f"error: setWebhook failed: {exc.description}", file=sys.stderr)
        return 2
    install_signal_handlers(app.stopping)
    app.wait()
    app.stop()
    return 0

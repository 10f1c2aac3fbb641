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

The chat is built exactly like ``stylebot.app.App`` builds it (``bot.Handlers`` +
``bot.register``), with :class:`redis_store.RedisStore` for state and
:class:`rq_queue.RQQueue` for jobs, so every web process and every worker
shares one dialog and one queue. SIGTERM stops serving within a second or
two; the webhook stays registered for the next process (or the other dynos).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import redis
from telebot import types

from stylebot.app import build_telegram, cannot_start, gpu_flag, serve_until_stopped
from stylebot.chat import keyboards
from stylebot.chat.dispatcher import Dispatcher
from stylebot.chat.handlers import Handlers
from stylebot.chat.routing import LogErrors, announce_commands, register
from stylebot.errors import TelegramError
from stylebot.jobs.results import result_path, sweep_results, timelapse_path, write_file
from stylebot.private import DataDirError, secure_dir
from stylebot.scaleout.rq_queue import RQQueue
from stylebot.scaleout.sizes import LiveSizes
from stylebot.store.redis_store import RedisStore

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: An update is a few KB; anything far bigger is not from Telegram.
MAX_BODY = 1024 * 1024
ALLOWED_UPDATES = ["message", "callback_query"]
#: Seconds one socket read may wait: a client that goes quiet mid-request is cut off.
READ_TIMEOUT = 10.0
#: Seconds a client has for one whole request (headers and body, or an idle keep-alive), however
#: it dribbles them: a byte every few seconds never trips the read timeout, this does.
REQUEST_DEADLINE = 30.0
#: Connections served at once (one thread each); beyond this a new one is closed at once.
MAX_CONNECTIONS = 1000
#: The ``max_connections`` set with Telegram in ``setWebhook`` (Telegram's own default, said explicitly).
TELEGRAM_MAX_CONNECTIONS = 40
#: Connections served at once from one source address (an IPv6 /64 counts as one): one client can no
#: longer hold all of ``MAX_CONNECTIONS``. Well above ``TELEGRAM_MAX_CONNECTIONS``, so Telegram is never
#: refused, even behind a proxy or router that makes every connection come from one address.
MAX_CONNECTIONS_PER_SOURCE = 256


def webhook_secret(config: Any) -> str:
    """``STYLEBOT_WEBHOOK_SECRET``, or one derived from the token when it is unset.

    Deriving keeps the check on by default: every web process computes the
    same value, and it reveals nothing about the token (a hash, salted).
    Telegram allows 1-256 characters of ``A-Za-z0-9_-``; hex qualifies.
    """
    if config.webhook_secret:
        return config.webhook_secret
    return hashlib.sha256(b"stylebot-webhook:" + config.token.encode()).hexdigest()[:48]


class SharedResultHandlers(Handlers):
    """``bot.Handlers`` whose "Full quality file" reads results the workers put in Redis.

    Workers run on other machines, so the PNG they wrote is not on this
    one's disk; they also copy it to Redis (24 h). This fetches it into the
    local results folder first, then lets the normal handler send it.
    """

    #: What the live workers can paint (sizes.py); set by :class:`WebhookApp`. None: the configured sizes.
    live_sizes: LiveSizes | None = None

    @property
    def size_choices(self) -> list[int]:
        """The configured sizes that every live worker can paint (each publishes its own; sizes.py)."""
        if self.live_sizes is None:
            return self._configured_sizes
        return self.live_sizes.offer(self._configured_sizes)

    @size_choices.setter
    def size_choices(self, value: list[int]) -> None:
        self._configured_sizes = list(value)

    @property
    def default_size(self) -> int:
        """STYLEBOT_IMAGE_SIZE if the workers can paint it; else the largest offered size below it."""
        offered = self.size_choices
        below = [s for s in offered if s <= self._configured_default]
        return self._configured_default if self._configured_default in offered else max(below or offered)

    @default_size.setter
    def default_size(self, value: int) -> None:
        self._configured_default = value

    def on_full(self, call: types.CallbackQuery) -> None:
        data = keyboards.parse(keyboards.FULL, call.data)
        if data is not None:
            self._fetch_result(data["job_id"], call.from_user.id, "png", result_path)
        super().on_full(call)

    def on_timelapse(self, call: types.CallbackQuery) -> None:
        data = keyboards.parse(keyboards.LAPSE, call.data)
        if data is not None:
            self._fetch_result(data["job_id"], call.from_user.id, "gif", timelapse_path)
        super().on_timelapse(call)

    def _fetch_result(self, job_id: str, user_id: int, kind: str, where: Callable[[Path, str], Path]) -> None:
        """Copy a worker's result file (``kind``) from Redis into this process's results folder."""
        path = where(self.results_dir, job_id)
        job = self.store.get_job(job_id)
        if path.is_file() or job is None or job.user_id != user_id:
            return
        data = cast(RedisStore, self.store).load_result(job_id, kind)
        if data is None:
            return
        sweep_results(self.results_dir)
        write_file(path, data)  # 0600, atomically (stylebot/private.py)


class WebhookApp:
    """One web process: HTTP server, dispatcher and handlers over Redis."""

    def __init__(
        self,
        config: Any,
        host: str = "0.0.0.0",
        read_timeout: float = READ_TIMEOUT,
        request_deadline: float = REQUEST_DEADLINE,
        max_connections: int = MAX_CONNECTIONS,
        max_per_source: int = MAX_CONNECTIONS_PER_SOURCE,
    ) -> None:
        self.config = config
        secure_dir(config.data_dir)  # results fetched from Redis land here: 0700, files 0600 (stylebot/private.py)
        self.secret = webhook_secret(config)
        self.path = urlsplit(config.webhook_url).path or "/"
        self.store = RedisStore(config.redis_url)
        self.stopping = threading.Event()
        self.tg = build_telegram(config, self.stopping, exception_handler=LogErrors())
        self.bot = self.tg.bot
        self.dispatcher = Dispatcher(self.bot)
        self.queue = RQQueue(self.store)
        gpu = gpu_flag(config)  # no engine here: STYLEBOT_DEVICE=cuda says "the workers have GPUs"
        self.handlers = SharedResultHandlers.for_config(self.bot, self.store, self.queue, self.tg, config, gpu)
        self.handlers.live_sizes = LiveSizes(self.store)  # /settings offers what every live worker can paint
        register(self.bot, self.handlers)
        self.read_timeout = read_timeout
        self.server = _Server(
            (host, config.port), _handler_for(self), request_deadline, max_connections, max_per_source
        )
        self._serving = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.25}, name="http", daemon=True
        )

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
            max_connections=TELEGRAM_MAX_CONNECTIONS,  # below the per-source cap: Telegram is never refused
        )
        threading.Thread(target=announce_commands, args=(self.bot, self.stopping), name="commands", daemon=True).start()
        log.info("webhook serving on port %d; %s", self.config.port, self.config.describe())
        return self

    def wait(self) -> None:
        while not self.stopping.wait(0.5):
            pass

    #: ``GET`` here answers 200 "ok" or 503 with the reason (for uptime checks; issue 11).
    health_path = "/healthz"

    def healthz(self) -> tuple[int, bytes]:
        """200 while Redis answers and nothing reported trouble; 503 with the reason otherwise."""
        try:
            self.store.ping()
        except Exception as exc:  # any failure means "not healthy", with its name
            return 503, f"unavailable: redis ({type(exc).__name__})\n".encode()
        health = getattr(self, "health", None)  # a jobs.Health, where one is attached
        if health is not None and not health.ok:
            return 503, f"degraded: {health.reason}\n".encode()
        return 200, b"ok\n"

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


class _Server(ThreadingHTTPServer):
    """A thread per connection, with limits so slow or hostile clients cannot pin it.

    Each socket read has the handler's ``timeout``; on top of that a connection
    still sending its request after ``request_deadline`` seconds is shut down
    by the serving loop (``service_actions`` runs every poll interval), and at
    most ``max_connections`` are served at once, ``max_per_source`` of them from
    one source address (:func:`source_of`). A large listen backlog keeps a
    burst of connections from pushing Telegram's into SYN retries.
    """

    daemon_threads = True
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        request_deadline: float,
        max_connections: int,
        max_per_source: int = MAX_CONNECTIONS_PER_SOURCE,
    ) -> None:
        self.request_deadline = request_deadline
        self.max_connections = max_connections
        self.max_per_source = max_per_source
        self._limits = threading.Lock()
        self._active = 0
        self._per_source: dict[str, int] = {}  # source -> connections being served
        self._warned: set[str] = set()  # sources told about in the log since they last dropped below the cap
        self._reading: dict[socket.socket, float] = {}  # connection -> when its request must be in
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        source = source_of(client_address)
        warn = None
        with self._limits:
            held = self._per_source.get(source, 0)
            if self._active >= self.max_connections:
                warn = f"{self.max_connections} connections open; one more refused"
            elif held >= self.max_per_source:
                if source not in self._warned:  # once per episode: an attacker must not flood the log
                    self._warned.add(source)
                    warn = f"{self.max_per_source} connections open from one address; more from it refused"
                else:
                    warn = ""
            else:
                self._active += 1
                self._per_source[source] = held + 1
        if warn is not None:
            if warn:
                log.warning("webhook: %s", warn)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._finished(source)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.end_read(request)
            self._finished(source_of(client_address))

    def _finished(self, source: str) -> None:
        with self._limits:
            self._active -= 1
            left = self._per_source.get(source, 1) - 1
            if left > 0:
                self._per_source[source] = left
            else:
                self._per_source.pop(source, None)
            if left < self.max_per_source:
                self._warned.discard(source)

    def begin_read(self, connection: socket.socket) -> None:
        with self._limits:
            self._reading[connection] = time.monotonic() + self.request_deadline

    def end_read(self, connection: socket.socket) -> None:
        with self._limits:
            self._reading.pop(connection, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone mid-answer is routine (a cut-off slow client, a closed probe): no traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("webhook: a client went away (%s)", type(exc).__name__)
            return
        log.error("webhook: a request failed", exc_info=exc)

    def service_actions(self) -> None:
        """Cut off connections whose request is overdue: their blocked read sees end of stream."""
        super().service_actions()
        now = time.monotonic()
        with self._limits:
            overdue = [conn for conn, deadline in self._reading.items() if deadline < now]
            for conn in overdue:
                del self._reading[conn]
        for conn in overdue:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its thread


def source_of(client_address: Any) -> str:
    """Whose connection this is, for the per-source cap: the IPv4 address, or the IPv6 /64.

    One IPv6 host is handed a whole /64, so counting single addresses would not stop it.
    """
    host = str(client_address[0]) if isinstance(client_address, tuple) and client_address else str(client_address)
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def _body_length(encoding: str | None, raw_length: str | None) -> tuple[int, tuple[int, bytes] | None]:
    """A POST's body length, or why it is refused before a byte of the body is read."""
    if encoding:
        return 0, (411, b"length required\n")  # Telegram always sends Content-Length
    try:
        length = int(raw_length or 0)
    except ValueError:
        return 0, (400, b"bad content-length\n")
    if length < 0:
        return 0, (400, b"bad content-length\n")
    if length > MAX_BODY:
        return 0, (413, b"too large\n")
    return length, None


def _handler_for(app: WebhookApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server: _Server  # socketserver sets it to the server that made us: always the _Server above
        protocol_version = "HTTP/1.1"
        timeout = app.read_timeout  # every socket read and write (StreamRequestHandler.setup)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle_one_request(self) -> None:
            self.server.begin_read(self.connection)
            try:
                super().handle_one_request()
            finally:
                self.server.end_read(self.connection)

        def do_GET(self) -> None:
            self.server.end_read(self.connection)
            if urlsplit(self.path).path == app.health_path:
                self._reply(*app.healthz())
                return
            self._reply(404, b"not found\n")  # only /healthz is for GET; nothing else says the bot is here

        def do_POST(self) -> None:
            length, refusal = _body_length(self.headers.get("Transfer-Encoding"), self.headers.get("Content-Length"))
            if refusal is not None:
                self._refuse(*refusal)
                return
            body = self.rfile.read(length)
            if len(body) < length:  # the client hung up, or was cut off, short of its Content-Length
                self.close_connection = True
                return
            self.server.end_read(self.connection)
            status = app.handle(self.path, self.headers.get(SECRET_HEADER), body)
            self._reply(status, b"" if status == 200 else f"{status}\n".encode())

        def _refuse(self, status: int, body: bytes) -> None:
            """Answer without reading the body, and close: what's left of it is not a next request."""
            self.close_connection = True
            self.server.end_read(self.connection)
            self.send_response(status)
            self.send_header("Connection", "close")
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def run_webhook(config: Any) -> int:
    """``STYLEBOT_MODE=webhook python main.py``: serve the webhook until SIGTERM."""
    if not config.webhook_url:
        return cannot_start(
            "STYLEBOT_MODE=webhook needs STYLEBOT_WEBHOOK_URL, the public https:// address "
            "Telegram posts to (e.g. https://<app>.herokuapp.com/telegram)"
        )
    try:
        app = WebhookApp(config)
        app.start()
    except redis.RedisError as exc:
        return cannot_start(f"cannot reach Redis at REDIS_URL ({type(exc).__name__})")
    except TelegramError as exc:
        return cannot_start(f"setWebhook failed: {exc.description}")
    except DataDirError as exc:
        return cannot_start(str(exc))
    return serve_until_stopped(app)

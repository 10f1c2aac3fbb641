"""``BotAPIEmulator``: the parts put together, started and stopped, and the one entry for API calls."""

from __future__ import annotations

import threading
import time
from typing import Any

from stylebot.playground.emulator.chats import UserSide
from stylebot.playground.emulator.faults import FaultInjection
from stylebot.playground.emulator.http_server import _Handler, _QuietServer
from stylebot.playground.emulator.methods import _CANONICAL, BotApiMethods
from stylebot.playground.emulator.models import ApiError, Call, _Params
from stylebot.playground.emulator.webhook import WebhookDelivery


class BotAPIEmulator(UserSide, FaultInjection, BotApiMethods, WebhookDelivery):
    """A Bot API server on 127.0.0.1 in a daemon thread, plus the user's side of the chats.

    Thread-safe: the HTTP handler threads, the webhook sender and the test thread share one lock.
    """

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> BotAPIEmulator:
        """Bind the port, serve in a daemon thread and start the webhook sender; returns self."""
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = _QuietServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://{self.host}:{self.port}"
        for target, args, name in (
            (self._server.serve_forever, (0.05,), "bot-api-emulator"),
            (self._webhook_loop, (), "bot-api-webhook"),
        ):
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop serving, wake pending long polls and the webhook sender, and free the port."""
        with self._lock:
            self._closing = True
            self._changed.notify_all()
        self._unstall.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> BotAPIEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ HTTP entry point

    def handle(self, method: str, params: dict[str, Any], files: dict[str, tuple[str, bytes]]) -> tuple[int, dict]:
        """Run one API call and record it; returns (HTTP status, JSON body). Called by the HTTP handler."""
        name = _CANONICAL.get(method.lower())
        call = Call(name or method, params, {k: v[1] for k, v in files.items()}, time.time())
        try:
            if name is None:
                raise ApiError(404, "Not Found")
            with self._lock:
                self._maybe_fail(name)
            result = getattr(self, "_api_" + name)(_Params(params), files)
            status, body = 200, {"ok": True, "result": result}
        except ApiError as error:
            status, body = error.code, error.payload()
        call.status, call.response = status, body
        with self._lock:
            self._calls.append(call)
            if name is None:
                self._unknown.append(call)
        return status, body

    def download(self, file_path: str) -> bytes | None:
        with self._lock:
            file_id = self._paths.get(file_path)
            return self._files[file_id].data if file_id else None

"""The playground: the real bot, a local Bot API emulator and a chat page, all on this machine.

Why: someone who finds the project (or an operator checking a deploy's settings) should see the bot
work without a BotFather token or Telegram's servers. ``Playground`` starts a ``BotAPIEmulator`` and a
small web page that plays the user's side of one chat: the page posts what the user types or uploads
to the emulator, which queues it as Telegram updates for the bot, and streams the bot's messages,
edits and deletions back to the page with server-sent events.

``main.py --playground`` runs the bot against ``api_url``/``token``; ``python playground.py`` starts
only the emulator and the page (point any bot at the printed URL and token).
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from stylebot.playground.emulator import BotAPIEmulator

__all__ = ["USER_ID", "Playground"]

USER_ID = 1000  # the page's one local user; the chat with the bot has the same id
STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": "playground.html", "/playground.js": "playground.js", "/playground.css": "playground.css"}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
MAX_UPLOAD = 60 * 1024 * 1024
_CLOSED = object()  # put into event queues to end open event streams on close()


class Playground:
    """An emulator plus the chat page server, both in daemon threads; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, user_id: int = USER_ID):
        self.host, self.port, self.user_id = host, port, user_id
        self.emulator = BotAPIEmulator(host=host)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._streams: set[queue.Queue] = set()
        self._lock = threading.Lock()
        self.page_url = ""

    @property
    def api_url(self) -> str:
        """The emulator's base URL: the bot's ``TELEGRAM_API_URL``."""
        return self.emulator.base_url

    @property
    def token(self) -> str:
        """The emulator's fake token: the bot's ``TELEGRAM_BOT_TOKEN``."""
        return self.emulator.token

    def start(self) -> Playground:
        self.emulator.start()
        handler = type("PageHandler", (_PageHandler,), {"playground": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.page_url = f"http://{self.host}:{self.port}/"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="playground-page", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """End the event streams, stop the page server, then the emulator."""
        with self._lock:
            for stream in self._streams:
                stream.put(_CLOSED)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.emulator.close()

    def __enter__(self) -> Playground:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_stream(self) -> queue.Queue:
        events = self.emulator.subscribe(self.user_id)
        with self._lock:
            self._streams.add(events)
        return events

    def close_stream(self, events: queue.Queue) -> None:
        self.emulator.unsubscribe(events)
        with self._lock:
            self._streams.discard(events)


class _PageHandler(BaseHTTPRequestHandler):
    """The page's routes: static files, chat history, the event stream, and the user's actions."""

    playground: Playground
    server_version = "Playground/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        pg = self.playground
        if url.path in PAGES:
            path = STATIC / PAGES[url.path]
            return self._send(200, path.read_bytes(), CONTENT_TYPES[path.suffix])
        if url.path == "/api/history":
            return self._json(200, pg.emulator.chat_history(pg.user_id))
        if url.path == "/api/events":
            return self._stream_events()
        if url.path.startswith("/file/"):
            return self._file(urllib.parse.unquote(url.path[len("/file/") :]))
        self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_UPLOAD:
            return self._json(413, {"error": "too large"})
        body = self.rfile.read(length)
        pg, user = self.playground, self.playground.user_id
        try:
            if url.path == "/api/upload":
                language = query.get("lang", "en")
                name = query.get("name") or "image"
                if query.get("kind") == "document":
                    mime = self.headers.get("Content-Type") or "application/octet-stream"
                    message = pg.emulator.send_document(user, body, name, mime, language_code=language)
                else:
                    message = pg.emulator.send_photo(user, body, language_code=language)
                return self._json(200, message)
            data = json.loads(body or b"{}")
            language = str(data.get("lang", "en"))
            if url.path == "/api/text":
                text = str(data.get("text", "")).strip()
                if not text:
                    return self._json(400, {"error": "empty message"})
                return self._json(200, pg.emulator.send_text(user, text, language_code=language))
            if url.path == "/api/button":
                update = pg.emulator.press_button(
                    user, int(data["message_id"]), str(data["data"]), language_code=language
                )
                return self._json(200, update)
        except (ValueError, KeyError) as error:
            return self._json(400, {"error": str(error)})
        self._json(404, {"error": "not found"})

    def _stream_events(self) -> None:
        """Server-sent events: one ``data:`` line per emulator event; a comment line keeps it alive."""
        events = self.playground.open_stream()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        try:
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            while True:
                try:
                    event = events.get(timeout=15)
                except queue.Empty:
                    self.wfile.write(b": keep-alive\n\n")
                else:
                    if event is _CLOSED:
                        return
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
        except OSError:
            pass  # the browser went away
        finally:
            self.playground.close_stream(events)

    def _file(self, file_id: str) -> None:
        try:
            data = self.playground.emulator.file_bytes(file_id)
        except KeyError:
            return self._json(404, {"error": "no such file"})
        self._send(200, data, _sniff(data), cache=True)

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(data)


def _sniff(data: bytes) -> str:
    """The content type of a stored file, from its first bytes (files are served by id, not by name)."""
    for magic, kind in (
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"\x89PNG", "image/png"),
        (b"GIF8", "image/gif"),
        (b"RIFF", "image/webp"),
        (b"%PDF", "application/pdf"),
    ):
        if data.startswith(magic):
            return kind
    return "application/octet-stream"


def main() -> None:
    """Run the emulator and the page only; a bot started separately connects with the printed values."""
    parser = argparse.ArgumentParser(description="Local Bot API emulator with a chat page (no bot).")
    parser.add_argument("--port", type=int, default=8080, help="port of the chat page (default 8080)")
    args = parser.parse_args()
    with Playground(port=args.port) as pg:
        print(f"chat page: {pg.page_url}\nTELEGRAM_API_URL={pg.api_url}\nTELEGRAM_BOT_TOKEN={pg.token}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

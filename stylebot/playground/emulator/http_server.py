"""The HTTP layer: routes ``/bot{token}/{method}`` and ``/file/bot{token}/{path}`` to the emulator.

Why apart: parsing requests the way Telegram accepts them (query string, form, JSON or multipart) and
breaking transfers on purpose (stall, drop) are transport matters the API methods never see.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import json
import re
import sys
import threading
import urllib.parse
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from stylebot.playground.emulator.methods import _CANONICAL
from stylebot.playground.emulator.models import _TransferFault


class _Served(Protocol):
    """What the handler needs of ``BotAPIEmulator`` (a protocol, so this module does not import ``core``)."""

    token: str
    _unstall: threading.Event
    _requests: deque[str]

    def handle(self, method: str, params: dict[str, Any], files: dict[str, tuple[str, bytes]]) -> tuple[int, dict]: ...

    def download(self, file_path: str) -> bytes | None: ...

    def _take_transfer_fault(self, target: str, file_path: str | None = None) -> _TransferFault | None: ...


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Split multipart/form-data into fields and files (a part with a filename is a file)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = email.utils.collapse_rfc2231_value(part.get_param("name", "", header="content-disposition"))
        filename = part.get_param("filename", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if filename is not None:
            files[name] = (email.utils.collapse_rfc2231_value(filename), data)
        else:
            fields[name] = data.decode("utf-8")
    return fields, files


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-reply (a bot killed in a test) is routine, not a traceback."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Routes ``/bot{token}/{method}`` and ``/file/bot{token}/{path}`` to the emulator."""

    emulator: _Served
    server_version = "BotAPIEmulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        self.emulator._requests.append(self.path)
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        token = self.emulator.token
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path.startswith(f"/file/bot{token}/"):
            file_path = path[len(f"/file/bot{token}/") :]
            self._fault = self.emulator._take_transfer_fault("file", file_path)
            data = self.emulator.download(file_path)
            if data is None:
                return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return self._send(200, data, "application/octet-stream")
        match = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", path)
        if not match:
            return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        if match.group(1) != token:
            return self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        if match.group(2).lower() in _CANONICAL:
            self._fault = self.emulator._take_transfer_fault(match.group(2))
            if self._fault is not None and self._fault.kind == "answer":  # answered instead of done
                return self._send(0, b"", "text/html")
        params: dict[str, Any] = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        files: dict[str, tuple[str, bytes]] = {}
        content_type = self.headers.get("Content-Type", "")
        try:
            if content_type.startswith("multipart/form-data"):
                fields, files = _parse_multipart(content_type, body)
                params.update(fields)
            elif content_type.startswith("application/json") and body:
                params.update(json.loads(body))
            elif body:
                params.update({k: v[-1] for k, v in urllib.parse.parse_qs(body.decode()).items()})
        except (ValueError, UnicodeDecodeError):
            return self._reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid body"})
        status, answer = self.emulator.handle(match.group(2), params, files)
        self._reply(status, answer)

    def _reply(self, status: int, body: dict) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        fault: _TransferFault | None = getattr(self, "_fault", None)
        self._fault = None
        if fault is not None and fault.kind == "redirect":
            self.send_response(302)
            self.send_header("Location", fault.location or "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault is not None and fault.kind == "answer" and fault.status is not None:
            page = f"<html><body>{fault.status}</body></html>".encode()
            self.send_response(fault.status)
            if fault.location is not None:
                self.send_header("Location", fault.location)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if fault is not None and fault.kind == "stall" and fault.after is None:
            self.emulator._unstall.wait(fault.seconds)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault is None or (fault.kind == "stall" and fault.after is None):
            self.wfile.write(data)
            return
        cut = len(data) // 2 if fault.after is None else max(0, min(fault.after, len(data) - 1))
        self.wfile.write(data[:cut])
        self.wfile.flush()
        if fault.kind == "stall":
            self.emulator._unstall.wait(fault.seconds)
            self.wfile.write(data[cut:])
            return
        self.close_connection = True  # drop: the client sees the body end short of Content-Length

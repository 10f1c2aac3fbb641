"""The webhook's connection caps and GET answers over real sockets (issue 18).

One source address may hold at most ``MAX_CONNECTIONS_PER_SOURCE`` connections (above the
``max_connections`` set with Telegram), so one client can no longer hold them all; other
sources, Telegram's deliveries included, are still served. ``GET`` answers 404 except on /healthz.
The real ``WebhookApp`` runs over a real redis-server; the clients bind 127.0.0.2 to be another address.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botkit import User, wait_until, weights_path
from rediskit import free_port, redis_server

from stylebot import texts
from stylebot.playground.emulator import BotAPIEmulator
from stylebot.scaleout.webhook import MAX_CONNECTIONS_PER_SOURCE, TELEGRAM_MAX_CONNECTIONS, source_of

SECRET = "limits-secret"
OTHER_ADDRESS = "127.0.0.2"  # the whole of 127/8 is loopback on Linux: a second source address


@dataclass
class Web:
    app: Any
    url: str
    port: int


@pytest.fixture
def web(emulator: BotAPIEmulator, tmp_path: Path) -> Iterator[Web]:
    from stylebot.config import Config
    from stylebot.scaleout import webhook

    with redis_server(tmp_path / "redis") as redis_url:
        port = free_port()
        url = f"http://127.0.0.1:{port}/telegram"
        config = Config(
            token=emulator.token,
            api_url=emulator.base_url,
            data_dir=tmp_path / "data",
            weights=weights_path() or tmp_path / "none.pth",
            device="cpu",
            redis_url=redis_url,
            mode="webhook",
            webhook_url=url,
            webhook_secret=SECRET,
            port=port,
        )
        # Long read limits: held connections stay open until the test closes them.
        app = webhook.WebhookApp(config, host="127.0.0.1", read_timeout=60.0, request_deadline=120.0)
        app.start()
        try:
            yield Web(app, url, port)
        finally:
            app.stop()


def get(port: int, path: str, source: str = "127.0.0.1") -> tuple[int, bytes]:
    """One GET from ``source``, on a fresh connection: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    if not data:
        return 0, b""  # closed without an answer: refused
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_get_answers_404_except_on_healthz(web: Web) -> None:
    for path in ("/", "/telegram", "/index.html", "/healthz/../", "/admin?x=1"):
        assert get(web.port, path)[0] == 404, path
    assert get(web.port, "/healthz") == (200, b"ok\n")


def test_one_source_cannot_hold_every_connection(emulator: BotAPIEmulator, web: Web) -> None:
    assert MAX_CONNECTIONS_PER_SOURCE > TELEGRAM_MAX_CONNECTIONS
    webhook_set = emulator.calls("setWebhook")[-1]
    assert int(webhook_set.params["max_connections"]) == TELEGRAM_MAX_CONNECTIONS
    held = []
    for _ in range(MAX_CONNECTIONS_PER_SOURCE):  # half a request each, then silence
        sock = socket.create_connection(("127.0.0.1", web.port), timeout=10, source_address=(OTHER_ADDRESS, 0))
        sock.sendall(b"POST /telegram HTTP/1.1\r\nHost: x\r\nContent-Le")
        held.append(sock)
    # Accepted in order: one more from the same address is closed at once, with nothing served.
    extra = socket.create_connection(("127.0.0.1", web.port), timeout=10, source_address=(OTHER_ADDRESS, 0))
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(lambda: closed_by_server(extra), 60, what="the connection over the cap to be closed", api=emulator)
    assert not any(closed_by_server(s) for s in held), "the connections within the cap stay open"

    # Another address is served meanwhile: a direct POST, and Telegram's (the emulator's) delivery.
    update = {
        "update_id": 880001,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 3003, "type": "private"},
            "from": {"id": 3003, "is_bot": False, "first_name": "Cy"},
            "text": "/help",
        },
    }
    request = urllib.request.Request(
        web.url,
        json.dumps(update).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    user = User(emulator, 3004)
    user.say("/start")
    user.wait_text(texts.t("en", "start")[:40], timeout=30)

    # A slot freed is a slot again for that address.
    held.pop().close()
    wait_until(
        lambda: get(web.port, "/healthz", OTHER_ADDRESS)[0] == 200, 60, what="the freed slot to be served", api=emulator
    )
    for sock in [*held, extra]:
        sock.close()


def test_sources_are_addresses_and_ipv6_counts_by_64() -> None:
    assert source_of(("203.0.113.7", 5000)) == "203.0.113.7"
    assert source_of(("::ffff:203.0.113.7", 5000, 0, 0)) == "203.0.113.7"
    assert source_of(("2001:db8:1:2::1", 1, 0, 0)) == source_of(("2001:db8:1:2:ffff::9", 2, 0, 0))
    assert source_of(("2001:db8:1:2::1", 1, 0, 0)) != source_of(("2001:db8:1:3::1", 1, 0, 0))

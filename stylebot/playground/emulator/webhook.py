"""Webhook delivery: POST pending updates to the bot's webhook in order, retrying with backoff.

Why apart: it is the emulator's one outgoing connection and runs in its own thread.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from stylebot.playground.emulator.state import EmulatorState


class WebhookDelivery(EmulatorState):
    """The webhook sender thread's loop, and ``redeliver_last_update`` (Telegram may deliver twice)."""

    def redeliver_last_update(self) -> int:
        """Deliver the last delivered update once more, as Telegram may; returns the HTTP status.

        With a webhook it is POSTed again. Without one it goes back in front of the pending updates,
        as when the bot died before its next ``getUpdates`` confirmed it: a bot that polls with a
        larger offset never gets it (that is the offset's job), one that lost its offset does.
        Returns 200 in that case.
        """
        with self._lock:
            webhook, update = self._webhook, self._last_update
            if update is None:
                raise RuntimeError("nothing delivered yet")
            if webhook is None:
                if all(u["update_id"] != update["update_id"] for u in self._updates):
                    self._updates.insert(0, update)
                self._changed.notify_all()
                return 200
        return self._post_update(webhook, update)

    def _webhook_loop(self) -> None:
        """POST pending updates to the webhook one by one, in order; retry failures with backoff."""
        backoff = 0.1
        while True:
            with self._lock:
                while not self._closing and (self._webhook is None or not self._updates):
                    self._changed.wait()
                if self._closing:
                    return
                self._drop_disallowed()
                if not self._updates:
                    continue
                webhook, update = self._webhook, self._updates[0]
                if webhook is None:  # never: the wait above ends only with a webhook set (or closing)
                    continue
            status = self._post_update(webhook, update)
            with self._lock:
                if 200 <= status < 300:
                    backoff = 0.1
                    self._last_update = update
                    if self._updates and self._updates[0] is update:
                        self._updates.pop(0)
                    continue
                self._webhook_error = (int(time.time()), f"Wrong response from the webhook: {status}")
                self._changed.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def _post_update(self, webhook: dict, update: dict) -> int:
        headers = {"Content-Type": "application/json"}
        if webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = webhook["secret_token"]
        request = urllib.request.Request(webhook["url"], json.dumps(update).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

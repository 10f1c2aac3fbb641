"""status: one job's status message, kept up to date from its own thread.

The engine's progress callback only stores numbers (and, when a preview is
due, renders the current image); the network calls happen here, off the
painting thread, so a slow Telegram never slows the painting down.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from stylebot import images, texts
from stylebot.errors import TelegramError, UserGone
from stylebot.jobs.health import resource_trouble
from stylebot.jobs.job import Job, Stop
from stylebot.tg import Telegram

log = logging.getLogger(__name__)


class ReporterContext(Protocol):
    """What :class:`StatusReporter` reads from ``run.Context`` (a Protocol, so this module needn't import run)."""

    store: Any
    tg: Telegram
    edit_every: float
    preview_every: float
    preview_step: float


class StatusReporter:
    """Keeps one status message per job up to date, from its own thread.

    Text edits at most every ``edit_every`` seconds (Telegram rate-limits
    edits), a preview photo every ``preview_every`` seconds or
    ``preview_step`` of the work, and a chat action so the user sees
    "sending photo…" while we work.

    With ``stop``, every progress send happens under ``stop.gate`` and only while
    the job is not stopped. ``Stop.cancel`` takes the same gate, so a cancel
    either waits for the send in flight or makes the next one a no-op: the
    "Job cancelled" reply, sent after ``cancel`` returns, is never followed by a
    preview (it was: a photo 20 ms after the reply, which then became the
    "Cancelled" message). Only :meth:`finish`, the final word, runs after a stop.
    """

    def __init__(self, ctx: ReporterContext, job: Job, stop: Stop | None = None) -> None:
        self.ctx, self.job, self.stop = ctx, job, stop
        self.message_id = job.status_message_id
        self.is_photo = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Event()
        self._fraction = 0.0
        self._eta: float | None = None
        self._preview_image = None
        self._last_preview_at = time.monotonic()
        self._last_preview_fraction = 0.0
        self._last_edit = 0.0
        self._last_action = 0.0
        self._shown: str | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"status-{job.id}", daemon=True)
        # The draft network's picture (jobs/first_look.py), shown at once if no painted preview came first.
        self._first_look: bytes | None = None
        self._looks = getattr(ctx, "first_looks", None)

    # --- engine side (called on the painting thread; must stay cheap) ----
    def on_progress(self, progress: Any) -> None:
        now = time.monotonic()
        with self._lock:
            self._fraction, self._eta = progress.fraction, progress.eta
            due = (
                now - self._last_preview_at >= self.ctx.preview_every
                or progress.fraction - self._last_preview_fraction >= self.ctx.preview_step
            )
            if due and self._preview_image is None and progress.fraction < 0.98:
                self._last_preview_at, self._last_preview_fraction = now, progress.fraction
                self._preview_image = progress.render()
        self._wake.set()

    # --- network side --------------------------------------------------
    def start(self) -> None:
        if self._looks is not None:
            self._looks.attach(self.job.id, self)
        self._while_running(lambda: self._show(texts.t(self.job.lang, "running_start")))
        self._thread.start()

    @contextlib.contextmanager
    def _gate(self) -> Iterator[bool]:
        """Held around one progress send; yields whether the job is still running (send only then)."""
        if self.stop is None:
            yield True
            return
        with self.stop.gate:
            yield not self.stop.event.is_set()

    def _while_running(self, send: Callable[[], None]) -> None:
        with self._gate() as running:
            if running:
                send()

    def close(self) -> None:
        if self._looks is not None:
            self._looks.detach(self.job.id)
        self._done.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._done.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._done.is_set():
                break
            try:
                self._tick()
            except UserGone as exc:
                self.error = exc
                return
            except Exception:
                log.exception("job %s: status update failed", self.job.id)

    # --- the first look (jobs/first_look.py) ----------------------------
    def show_first_look(self, jpeg: bytes) -> None:
        """The draft arrived while painting: shown on the next tick, not after ``edit_every``."""
        with self._lock:
            self._first_look = jpeg
        self._wake.set()

    def adopt_photo(self, message_id: int) -> None:
        """The draft was sent while the job waited: that photo becomes the status message."""
        old, self.is_photo = self.message_id, True
        self._set_message(message_id)
        if old is not None and old != message_id:
            self.ctx.tg.delete(self.job.chat_id, old)

    def _tick(self) -> None:
        now = time.monotonic()
        job = self.job
        if now - self._last_action >= 4.5:
            self._last_action = now
            self._while_running(lambda: self.ctx.tg.chat_action(job.chat_id))
        with self._lock:
            first_look, self._first_look = self._first_look, None
        if first_look is not None and not self.is_photo:
            self._while_running(lambda: self._show_preview(first_look, texts.t(job.lang, "first_look")))
            return
        if now - self._last_edit < self.ctx.edit_every:
            return
        with self._lock:
            fraction, eta, preview = self._fraction, self._eta, self._preview_image
            self._preview_image = None
        text = texts.t(
            job.lang,
            "running",
            percent=int(fraction * 100),
            eta=texts.duration(job.lang, eta or 0),
        )
        if preview is not None:
            jpeg = images.preview_jpeg(preview)  # encoded outside the gate: a cancel waits only for the network
            self._while_running(lambda: self._show_preview(jpeg, text))
        else:
            self._while_running(lambda: self._show(text))

    def _show(self, text: str) -> None:
        if text == self._shown:
            return
        job, tg = self.job, self.ctx.tg
        self._last_edit = time.monotonic()
        if self.message_id is not None:
            try:
                if self.is_photo:
                    tg.edit_caption(job.chat_id, self.message_id, text)
                else:
                    tg.edit_text(job.chat_id, self.message_id, text)
                self._shown = text
                return
            except UserGone:
                raise
            except TelegramError as exc:
                # Deleted by the user, or a resumed job's old message: say it in a new one.
                log.info("job %s: status edit failed (%s); sending a new message", job.id, exc.description)
                self.is_photo = False
        message = tg.send_text(job.chat_id, text, reply_to=job.reply_to_message_id)
        self._set_message(message.message_id)
        self._shown = text

    def _show_preview(self, jpeg: bytes, caption: str) -> None:
        """The status message becomes a photo: text messages can't be edited into media."""
        job, tg = self.job, self.ctx.tg
        self._last_edit = time.monotonic()
        if self.is_photo and self.message_id is not None:
            tg.edit_photo(job.chat_id, self.message_id, jpeg, caption)
        else:
            message = tg.send_photo(job.chat_id, jpeg, caption=caption, reply_to=job.reply_to_message_id)
            old = self.message_id
            self._set_message(message.message_id)
            self.is_photo = True
            if old is not None:
                tg.delete(job.chat_id, old)
        self._shown = caption

    def _set_message(self, message_id: int) -> None:
        """Remember the status message; the store's copy is only for a restart, so its failure is not the job's."""
        self.message_id = message_id
        try:
            self.ctx.store.set_status_message(self.job.id, message_id)
        except Exception as exc:
            if resource_trouble(exc) is None:
                raise
            log.warning("job %s: status message id not saved: %s", self.job.id, exc)

    def finish(self, text: str | None) -> None:
        """Leave the status message in its final state (or remove it)."""
        if self.message_id is None:
            return
        if text is None:
            self.ctx.tg.delete(self.job.chat_id, self.message_id)
        else:
            try:
                self._show(text)
            except TelegramError as exc:
                log.info("job %s: final status edit failed: %s", self.job.id, exc.description)


def announce_requeued(tg: Telegram, store: Any, job: Job, position: int) -> None:
    """A job is back in line (restart, SIGTERM, a dead worker): its user gets a fresh "back in the queue" message.

    The old status message goes first: it may be a half-painted preview photo,
    which can't turn back into text. Shared by the polling app's restart and the
    RQ worker's requeue, so both leave the chat the same way.
    """
    try:
        if job.status_message_id is not None:
            tg.delete(job.chat_id, job.status_message_id)
            store.set_status_message(job.id, None)
        message = tg.send_text(
            job.chat_id, texts.t(job.lang, "resumed", position=position), reply_to=job.reply_to_message_id
        )
        store.set_status_message(job.id, message.message_id)
    except (TelegramError, UserGone) as exc:
        log.info("could not tell user about requeued job %s: %s", job.id, exc)

"""runner: one job from start to delivered result.

``run_job`` is the single piece of code that both queue back-ends execute
(worker threads here, RQ workers on other machines): download the two images
by ``file_id``, paint, send the result, and record how it ended. It speaks to
the engine in PIL images and to Telegram through :class:`telegram.Telegram`,
so it knows neither tensors nor handlers.

Progress reaches the chat through :class:`StatusReporter`, which does its
network calls on its own thread: the engine's callback only stores numbers
(and, when a preview is due, renders the current image), so a slow Telegram
never slows the painting down.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from telebot import types

import images
import texts
from images import BadImage
from jobs import Job, JobStatus, Stop
from storage import STEP_STYLE, Dialog, Store
from telegram import Telegram, TelegramError, UserGone

log = logging.getLogger(__name__)

#: How long the full-quality PNG is kept for the "Full quality file" button.
RESULT_HOURS = 24


@dataclass
class Context:
    """What a worker needs to run jobs: built once per worker process.

    ``engine`` is a loaded ``model.Engine`` (anything with its ``stylize``),
    ``params`` turns a job into engine parameters (so this module never
    imports torch).
    """

    store: Store
    tg: Telegram
    engine: Any
    params: Callable[[Job], Any]
    results_dir: Path
    edit_every: float = 3.0
    preview_every: float = 10.0
    preview_step: float = 0.2


def strength_label(lang: str, strength: float) -> str:
    names = {0.5: "strength_weak", 1.0: "strength_normal", 2.0: "strength_strong"}
    key = names.get(round(strength, 3))
    return texts.t(lang, key) if key else texts.t(lang, "strength_custom", value=f"{strength:g}")


def result_caption(job: Job, size: tuple[int, int]) -> str:
    colors = texts.t(job.lang, "colors_kept" if job.keep_colors else "colors_style")
    return texts.t(
        job.lang,
        "result_caption",
        width=size[0],
        height=size[1],
        strength=strength_label(job.lang, job.strength),
        colors=colors,
    )


def result_buttons(job: Job) -> types.InlineKeyboardMarkup:
    """Buttons under the result; callback data carries the job id, nothing else."""
    t = lambda key: texts.t(job.lang, key)  # noqa: E731
    markup = types.InlineKeyboardMarkup(row_width=2)
    markup.add(
        types.InlineKeyboardButton(t("btn_stronger"), callback_data=f"rerun:{job.id}:stronger"),
        types.InlineKeyboardButton(t("btn_weaker"), callback_data=f"rerun:{job.id}:weaker"),
    )
    markup.add(
        types.InlineKeyboardButton(t("btn_another_style"), callback_data=f"restyle:{job.id}"),
        types.InlineKeyboardButton(t("btn_full_quality"), callback_data=f"full:{job.id}"),
    )
    return markup


def result_path(results_dir: Path, job_id: str) -> Path:
    return results_dir / f"{job_id}.png"


def sweep_results(results_dir: Path, hours: float = RESULT_HOURS) -> int:
    """Delete full-quality results older than the retention period."""
    if not results_dir.is_dir():
        return 0
    cutoff = time.time() - hours * 3600
    removed = 0
    for path in results_dir.glob("*.png"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


class StatusReporter:
    """Keeps one status message per job up to date, from its own thread.

    Text edits at most every ``edit_every`` seconds (Telegram rate-limits
    edits), a preview photo every ``preview_every`` seconds or
    ``preview_step`` of the work, and a chat action so the user sees
    "sending photo…" while we work.
    """

    def __init__(self, ctx: Context, job: Job) -> None:
        self.ctx, self.job = ctx, job
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
        self._show(texts.t(self.job.lang, "running_start"))
        self._thread.start()

    def close(self) -> None:
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

    def _tick(self) -> None:
        now = time.monotonic()
        job = self.job
        if now - self._last_action >= 4.5:
            self._last_action = now
            self.ctx.tg.chat_action(job.chat_id)
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
            self._show_preview(images.preview_jpeg(preview), text)
        else:
            self._show(text)

    def _show(self, text: str) -> None:
        if text == self._shown:
            return
        job, tg = self.job, self.ctx.tg
        self._last_edit = time.monotonic()
        if self.message_id is None:
            message = tg.send_text(job.chat_id, text)
            self._set_message(message.message_id)
        elif self.is_photo:
            tg.edit_caption(job.chat_id, self.message_id, text)
        else:
            tg.edit_text(job.chat_id, self.message_id, text)
        self._shown = text

    def _show_preview(self, jpeg: bytes, caption: str) -> None:
        """The status message becomes a photo: text messages can't be edited into media."""
        job, tg = self.job, self.ctx.tg
        self._last_edit = time.monotonic()
        if self.is_photo and self.message_id is not None:
            tg.edit_photo(job.chat_id, self.message_id, jpeg, caption)
        else:
            message = tg.send_photo(job.chat_id, jpeg, caption=caption)
            old = self.message_id
            self._set_message(message.message_id)
            self.is_photo = True
            if old is not None:
                tg.delete(job.chat_id, old)
        self._shown = caption

    def _set_message(self, message_id: int) -> None:
        self.message_id = message_id
        self.ctx.store.set_status_message(self.job.id, message_id)

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


def run_job(job: Job, stop: Stop, ctx: Context) -> None:
    """Run ``job`` to its end and record the outcome in the store.

    The job is marked ``DONE`` only after the result reached Telegram, so a
    crash at any point before that means the job runs again after restart.
    """
    store = ctx.store
    reporter = StatusReporter(ctx, job)
    started = time.monotonic()
    try:
        reporter.start()
        content = _fetch(ctx, job, job.content_file_id, "bad_content_later")
        style = _fetch(ctx, job, job.style_file_id, "bad_style_later") if content is not None else None
        if content is None or style is None:
            reporter.close()
            reporter.finish(None)
            return
        result = ctx.engine.stylize(
            content, style, ctx.params(job), on_progress=reporter.on_progress, cancel=stop.event
        )
        del content, style
        reporter.close()
        if reporter.error is not None:
            raise reporter.error
        _deliver(ctx, job, result)
        store.set_status(job.id, JobStatus.DONE)
        reporter.finish(None)
        log.info("job %s done in %.1f s", job.id, time.monotonic() - started)
    except Exception as exc:
        reporter.close()
        _ended_badly(ctx, job, stop, reporter, exc)
    finally:
        reporter.close()
        sweep_results(ctx.results_dir)


def _ended_badly(ctx: Context, job: Job, stop: Stop, reporter: StatusReporter, exc: Exception) -> None:
    from_engine_cancel = type(exc).__name__ == "Cancelled"
    if from_engine_cancel and stop.shutdown:
        ctx.store.requeue(job.id)
        log.info("job %s interrupted by shutdown; back in the queue", job.id)
    elif from_engine_cancel:
        ctx.store.set_status(job.id, JobStatus.CANCELLED)
        reporter.finish(texts.t(job.lang, "job_cancelled_status"))
        log.info("job %s cancelled", job.id)
    elif isinstance(exc, UserGone):
        ctx.store.set_status(job.id, JobStatus.FAILED, error=f"user gone: {exc.description}")
        log.info("job %s: user blocked the bot; dropped", job.id)
    else:
        log.error("job %s failed: %s", job.id, exc, exc_info=exc)
        ctx.store.set_status(job.id, JobStatus.FAILED, error=traceback.format_exc())
        try:
            reporter.finish(None)
            ctx.tg.send_text(job.chat_id, texts.t(job.lang, "failed"))
        except TelegramError:
            pass


def _fetch(ctx: Context, job: Job, file_id: str, failure_key: str):
    """Download and decode one image; on bad input, tell the user and end the job."""
    try:
        data = ctx.tg.download(file_id)
        # Decode only what the engine can use: a 48 MP photo shrinks as it decodes.
        return images.load_image(data, max_side=max(job.size * 2, 1024))
    except UserGone:
        raise
    except (BadImage, TelegramError) as exc:
        if isinstance(exc, BadImage):
            reason = texts.t(job.lang, f"bad_{exc.reason}", **exc.details)
        else:
            reason = texts.t(job.lang, "bad_download")
        log.info("job %s: cannot use %s: %s", job.id, file_id, exc)
        ctx.store.set_status(job.id, JobStatus.FAILED, error=f"bad input: {exc}")
        if failure_key == "bad_style_later":
            # Keep the photo: the user only needs to send another style.
            ctx.store.set_dialog(Dialog(job.user_id, STEP_STYLE, job.content_file_id))
        else:
            ctx.store.reset_dialog(job.user_id)
        ctx.tg.send_text(job.chat_id, texts.t(job.lang, failure_key, reason=reason))
        return None


def _deliver(ctx: Context, job: Job, result) -> None:
    """Send the result as a photo (or a document if it's beyond sendPhoto's limits)."""
    png = images.to_png(result)
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    path = result_path(ctx.results_dir, job.id)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(png)
    tmp.replace(path)
    jpeg = images.to_jpeg(result)
    caption = result_caption(job, result.size)
    markup = result_buttons(job)
    if images.fits_send_photo(result.size, len(jpeg)):
        ctx.tg.send_photo(job.chat_id, jpeg, caption=caption, markup=markup)
    else:
        ctx.tg.send_document(job.chat_id, png, f"stylized-{job.id}.png", caption=caption, markup=markup)

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

from stylebot import images
from stylebot import texts
from stylebot.images import BadImage
from stylebot.jobs.job import JOB_TIMEOUT, MAX_CRASHES, Health, Job, JobStatus, OutcomeNotRecorded, Stop, crashes, resource_trouble
from stylebot.store.sqlite_store import STEP_STYLE, Dialog, Store
from stylebot.tg import Telegram, TelegramError, UserGone

log = logging.getLogger(__name__)

#: How long the full-quality PNG is kept for the "Full quality file" button.
RESULT_HOURS = 24
#: Old results are swept at most this often (seconds): globbing the folder after
#: every job cost each queued job a directory scan for nothing (issue 11).
SWEEP_EVERY = 600.0
_last_sweep: dict[Path, float] = {}
_sweep_lock = threading.Lock()


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
    #: Wall-clock bound on one job (seconds); past it the job is stopped and its user told.
    job_timeout: float = JOB_TIMEOUT
    #: Told when the disk refuses the result file (the worker then probes until it takes writes).
    health: Health | None = None


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


def result_buttons(job: Job, full: bool = True) -> types.InlineKeyboardMarkup:
    """Buttons under the result; callback data carries the job id, nothing else.

    ``full=False`` (the PNG could not be saved) leaves out "Full quality file".
    """
    t = lambda key: texts.t(job.lang, key)  # noqa: E731
    markup = types.InlineKeyboardMarkup(row_width=2)
    markup.add(
        types.InlineKeyboardButton(t("btn_stronger"), callback_data=f"rerun:{job.id}:stronger"),
        types.InlineKeyboardButton(t("btn_weaker"), callback_data=f"rerun:{job.id}:weaker"),
    )
    row = [types.InlineKeyboardButton(t("btn_another_style"), callback_data=f"restyle:{job.id}")]
    if full:
        row.append(types.InlineKeyboardButton(t("btn_full_quality"), callback_data=f"full:{job.id}"))
    markup.add(*row)
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


def sweep_now_and_then(results_dir: Path, every: float = SWEEP_EVERY) -> None:
    """:func:`sweep_results` at most once per ``every`` seconds per folder; never raises."""
    now = time.monotonic()
    with _sweep_lock:
        if now - _last_sweep.get(results_dir, -every) < every:
            return
        _last_sweep[results_dir] = now
    try:
        sweep_results(results_dir)
    except OSError as exc:
        log.warning("sweeping old results failed: %s", exc)


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, then rename).

    Every file the worker writes goes through here: it is the seam where a
    full disk (``OSError`` ENOSPC) shows up, and where tests inject one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: Size of the probe file: large enough that a disk with no room refuses it.
PROBE_BYTES = 64 * 1024


def probe_disk(directory: Path) -> None:
    """Raise ``OSError`` unless ``directory`` takes a small write now (the health probe)."""
    path = Path(directory) / ".probe"
    write_file(path, b"\0" * PROBE_BYTES)
    path.unlink(missing_ok=True)


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
        message = tg.send_text(job.chat_id, text)
        self._set_message(message.message_id)
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


def run_job(job: Job, stop: Stop, ctx: Context) -> None:
    """Run ``job`` to its end and record the outcome in the store.

    The job is marked ``DONE`` only after the result reached Telegram, so a
    crash at any point before that means the job runs again after restart.
    Every ending the user can act on is told to them, and no store failure
    escapes as anything but :class:`jobs.OutcomeNotRecorded` (the worker
    writes it later), so the worker always survives the job.
    """
    if crashes(job) >= MAX_CRASHES:
        _give_up(ctx, job)
        return
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
    except Exception as exc:
        reporter.close()
        _ended_badly(ctx, job, stop, reporter, exc)
        return
    finally:
        reporter.close()
        sweep_now_and_then(ctx.results_dir)
    reporter.finish(None)
    _record(job, lambda: ctx.store.set_status(job.id, JobStatus.DONE))
    log.info("job %s done in %.1f s", job.id, time.monotonic() - started)


def _record(job: Job, write: Callable[[], None]) -> None:
    """Write a job's outcome; a store that refuses for the machine's reasons becomes ``OutcomeNotRecorded``."""
    try:
        write()
    except Exception as exc:
        if resource_trouble(exc) is None:
            raise
        log.warning("job %s: outcome not recorded yet: %s", job.id, exc)
        raise OutcomeNotRecorded(job.id, write, exc) from exc


def _tell(ctx: Context, job: Job, key: str, **values: Any) -> None:
    """A message to the job's user that must not turn one failure into two."""
    try:
        ctx.tg.send_text(job.chat_id, texts.t(job.lang, key, **values))
    except TelegramError as exc:
        log.info("job %s: could not tell the user (%s): %s", job.id, key, exc.description)


def _give_up(ctx: Context, job: Job) -> None:
    """The process died during this job too often: stop retrying, clear its status message, say why."""
    times = crashes(job)
    log.error("job %s: the process stopped during it %d times; giving up", job.id, times)
    if job.status_message_id is not None:
        ctx.tg.delete(job.chat_id, job.status_message_id)
    _tell(ctx, job, "gave_up_crashes", times=times)
    _record(job, lambda: ctx.store.set_status(job.id, JobStatus.FAILED, error=f"gave up after {times} crashes"))


def _ended_badly(ctx: Context, job: Job, stop: Stop, reporter: StatusReporter, exc: Exception) -> None:
    from_engine_cancel = type(exc).__name__ == "Cancelled"
    store = ctx.store
    trouble = resource_trouble(exc)
    if from_engine_cancel and stop.shutdown:
        _record(job, lambda: store.requeue(job.id))
        log.info("job %s interrupted by shutdown; back in the queue", job.id)
    elif from_engine_cancel and stop.timed_out:
        log.warning("job %s stopped: over its %.0f s limit", job.id, ctx.job_timeout)
        _finish_quietly(reporter, None)
        _tell(ctx, job, "job_timed_out", limit=texts.duration(job.lang, ctx.job_timeout))
        error = f"timed out after {ctx.job_timeout:.0f} s"
        _record(job, lambda: store.set_status(job.id, JobStatus.FAILED, error=error))
    elif from_engine_cancel:
        _finish_quietly(reporter, texts.t(job.lang, "job_cancelled_status"))
        _record(job, lambda: store.set_status(job.id, JobStatus.CANCELLED))
        log.info("job %s cancelled", job.id)
    elif isinstance(exc, UserGone):
        _record(job, lambda: store.set_status(job.id, JobStatus.FAILED, error=f"user gone: {exc.description}"))
        log.info("job %s: user blocked the bot; dropped", job.id)
    elif trouble is not None:
        # The machine's fault, not the job's: it waits in the queue (attempt not counted)
        # while the worker waits for the trouble to clear.
        log.warning("job %s: %s; back in the queue", job.id, trouble)
        if ctx.health is not None:
            ctx.health.degrade(trouble)
        _finish_quietly(reporter, None)
        _tell(ctx, job, "trouble_retry")
        _record(job, lambda: store.requeue(job.id))
    else:
        log.error("job %s failed: %s", job.id, exc, exc_info=exc)
        error = "".join(traceback.format_exception(exc))
        _finish_quietly(reporter, None)
        _tell(ctx, job, "failed")
        _record(job, lambda: store.set_status(job.id, JobStatus.FAILED, error=error))


def _finish_quietly(reporter: StatusReporter, text: str | None) -> None:
    try:
        reporter.finish(text)
    except TelegramError as exc:
        log.info("job %s: final status update failed: %s", reporter.job.id, exc.description)


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
            ctx.store.set_dialog(Dialog(job.user_id, STEP_STYLE, job.content_file_id, job.chat_id))
        else:
            ctx.store.reset_dialog(job.user_id, job.chat_id)
        ctx.tg.send_text(job.chat_id, texts.t(job.lang, failure_key, reason=reason))
        return None


def _deliver(ctx: Context, job: Job, result) -> None:
    """Send the result as a photo (or a document if it's beyond sendPhoto's limits).

    The PNG for "Full quality file" is a bonus: when the disk refuses it, the
    result is still sent (from memory, without that button) and health says why.
    """
    png = images.to_png(result)
    saved = True
    try:
        write_file(result_path(ctx.results_dir, job.id), png)
    except OSError as exc:
        saved = False
        trouble = resource_trouble(exc) or f"cannot save results ({type(exc).__name__})"
        log.warning("job %s: result file not saved (%s); sending it from memory", job.id, exc)
        if ctx.health is not None:
            ctx.health.degrade(trouble)
    jpeg = images.to_jpeg(result)
    caption = result_caption(job, result.size)
    markup = result_buttons(job, full=saved)
    if images.fits_send_photo(result.size, len(jpeg)):
        ctx.tg.send_photo(job.chat_id, jpeg, caption=caption, markup=markup)
    else:
        ctx.tg.send_document(job.chat_id, png, f"stylized-{job.id}.png", caption=caption, markup=markup)

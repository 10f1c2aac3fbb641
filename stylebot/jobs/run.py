"""run: one job from start to delivered result.

``run_job`` is the single piece of code that both queue back-ends execute
(worker threads here, RQ workers on other machines): download the two images
by ``file_id``, paint, send the result, and record how it ended. It speaks to
the engine in PIL images and to Telegram through :class:`stylebot.tg.Telegram`,
so it knows neither tensors nor handlers. Progress goes through
:class:`stylebot.jobs.status.StatusReporter`; result files through
:mod:`stylebot.jobs.results`.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylebot import images, texts
from stylebot.errors import BadImage, Cancelled, TelegramError, UnsafeFile, UserGone
from stylebot.jobs import results, timelapse
from stylebot.jobs.health import Health, OutcomeNotRecorded, resource_trouble, upstream_failure
from stylebot.jobs.job import JOB_TIMEOUT, MAX_CRASHES, QUICK, Job, JobStatus, Stop, crashes
from stylebot.jobs.ledger import Ledger
from stylebot.jobs.ports import Delivery, Rendered
from stylebot.jobs.quota import scaled_timeout
from stylebot.jobs.results import result_caption, result_path, sweep_now_and_then
from stylebot.jobs.status import StatusReporter
from stylebot.jobs.timelapse import FrameRecorder
from stylebot.store.base import StateStore
from stylebot.tg import Telegram

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What a worker needs to run jobs: built once per worker process.

    ``engine`` is a loaded ``model.Engine`` (anything with its ``stylize``),
    ``params`` turns a job into engine parameters (so this module never
    imports torch).
    """

    store: StateStore
    tg: Telegram
    engine: Any
    params: Callable[[Job], Any]
    results_dir: Path
    #: How results and refusals reach the user (the chat layer's ``ChatDelivery``, passed in by the app).
    delivery: Delivery
    edit_every: float = 3.0
    preview_every: float = 10.0
    preview_step: float = 0.2
    #: Wall-clock bound on one job (seconds); past it the job is stopped and its user told.
    job_timeout: float = JOB_TIMEOUT
    #: The size ``job_timeout`` is for (STYLEBOT_IMAGE_SIZE): a larger job gets more (:func:`timeout_for`).
    default_size: int = 512
    #: The largest size this process's memory allows (stylebot/hostmem.py); a job above it paints at it.
    max_size: int | None = None
    #: Told when the disk refuses the result file (the worker then probes until it takes writes).
    health: Health | None = None
    #: The style gallery, for the credit line of a gallery style in the caption (None: the shipped one).
    styles_dir: Path | None = None
    #: Where a sent result is noted at once, needing no free disk space (None: RQ workers, Redis has no disk).
    ledger: Ledger | None = None
    #: The draft network's first look (jobs/first_look.FirstLooks); None: no draft in this process.
    first_looks: Any = None
    #: Quick mode's engine (engine/quick.QuickEngine over the draft) for jobs marked quick; None: paint them.
    quick: Any = None

    def timeout_for(self, job: Job) -> float:
        """``job_timeout`` scaled with the job's work (jobs/quota.py): a 1024 px job gets 4x a 512 px one's."""
        return scaled_timeout(self.job_timeout, job.size, self.default_size)


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
    if ctx.max_size is not None and job.size > ctx.max_size:  # queued before a smaller limit, or elsewhere
        log.warning(
            "job %s: %d px does not fit this process's memory; painting at %d px", job.id, job.size, ctx.max_size
        )
        job.size = ctx.max_size
    reporter = StatusReporter(ctx, job, stop)
    started = time.monotonic()
    try:
        reporter.start()
        frames = FrameRecorder()  # "How it was painted": small snapshots along the way
        result = _paint(ctx, job, stop, reporter, frames)
        if result is None:  # an image could not be used; its user was told
            reporter.close()
            reporter.finish(None)
            return
        reporter.close()
        if reporter.error is not None:
            raise reporter.error
        # The status message (and its preview) goes first, then the result, then DONE at once: from the
        # moment the result shows, only the ledger write stands between it and a user free to start the
        # next job (a new photo and style right after a result were refused while a slow tidy-up ran).
        _finish_quietly(reporter, None)
        reporter.message_id = None
        _deliver(ctx, job, result, frames)
        _note_delivered(ctx, job)
    except Exception as exc:
        reporter.close()
        _ended_badly(ctx, job, stop, reporter, exc)
        return
    finally:
        reporter.close()
    # A press on the result's buttons before DONE is not refused either: the handlers know the job
    # whose result is on screen (``Handlers.submit(shown_from=...)``).
    try:
        _record(job, lambda: ctx.store.set_status(job.id, JobStatus.DONE))
    finally:
        sweep_now_and_then(ctx.results_dir)
    log.info("job %s done in %.1f s", job.id, time.monotonic() - started)


def _paint(ctx: Context, job: Job, stop: Stop, reporter: StatusReporter, frames: FrameRecorder) -> Any:
    """Fetch the job's images and paint them; None when one of them cannot be used (its user is told)."""
    content = _fetch(ctx, job, job.content_file_id, "bad_content_later")
    style = _fetch(ctx, job, job.style_file_id, "bad_style_later") if content is not None else None
    # Mixed styles: the second style too; the engine mixes both in one objective (job.mix via ctx.params).
    style2 = (
        _fetch(ctx, job, job.style2_file_id, "bad_style_later") if job.style2_file_id and style is not None else None
    )
    if content is None or style is None or (job.style2_file_id and style2 is None):
        return None
    quick = job.speed == QUICK and ctx.quick is not None  # the draft (no torch), else the painted engine
    return (ctx.quick if quick else ctx.engine).stylize(
        content,
        style,
        ctx.params(job),
        on_progress=frames.along(reporter.on_progress),
        cancel=stop.event,
        **({"style2": style2} if style2 is not None else {}),
    )


def _record(job: Job, write: Callable[[], None]) -> None:
    """Write a job's outcome; a store that refuses for the machine's reasons becomes ``OutcomeNotRecorded``."""
    try:
        write()
    except Exception as exc:
        if resource_trouble(exc) is None:
            raise
        log.warning("job %s: outcome not recorded yet: %s", job.id, exc)
        raise OutcomeNotRecorded(job.id, write, exc) from exc


def _note_delivered(ctx: Context, job: Job) -> None:
    """Note the sent result in the ledger, so a SIGKILL before ``DONE`` is written never sends it twice."""
    if ctx.ledger is None:
        return
    try:
        ctx.ledger.record(job.id)
    except OSError as exc:
        log.warning("job %s: delivery not noted in the ledger: %s", job.id, exc)


def _tell(ctx: Context, job: Job, key: str, **values: Any) -> None:
    """A message to the job's user that must not turn one failure into two."""
    try:
        ctx.tg.send_text(job.chat_id, texts.t(job.lang, key, **values), reply_to=job.reply_to_message_id)
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
    from_engine_cancel = isinstance(exc, Cancelled)
    store = ctx.store
    trouble = resource_trouble(exc)
    if from_engine_cancel and stop.shutdown:
        _record(job, lambda: store.requeue(job.id))
        log.info("job %s interrupted by shutdown; back in the queue", job.id)
    elif from_engine_cancel and stop.timed_out:
        limit = ctx.timeout_for(job)
        log.warning("job %s stopped: over its %.0f s limit", job.id, limit)
        _finish_quietly(reporter, None)
        _tell(ctx, job, "job_timed_out", limit=texts.duration(job.lang, limit))
        error = f"timed out after {limit:.0f} s"
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
    elif (upstream := upstream_failure(exc)) is not None:
        log.warning("job %s failed upstream (%s): %s", job.id, upstream, exc)
        _finish_quietly(reporter, None)
        _tell(ctx, job, upstream)
        _record(job, lambda: store.set_status(job.id, JobStatus.FAILED, error=f"{upstream}: {exc}"))
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
        # Through the first look's shared downloads when there is one: each file is fetched once per job.
        looks = ctx.first_looks
        data = ctx.tg.download(file_id) if looks is None else looks.downloads.get(job.id, file_id)
        # Decode only what the engine can use, inside the shared decode budget (waiting longer
        # than the check on arrival: the job was accepted); a 48 MP photo shrinks as it decodes.
        return images.load_image(data, max_side=max(job.size * 2, 1024), wait=images.WORKER_WAIT)
    except UserGone:
        raise
    except (BadImage, TelegramError) as exc:
        upstream = upstream_failure(exc)
        if isinstance(exc, BadImage):
            reason = texts.t(job.lang, f"bad_{exc.reason}", **exc.details)
        elif upstream is not None and upstream != "upstream_timeout":
            # A redirect or a server fault: sending the picture again now would not help, so say whose
            # trouble it is. A stalled transfer keeps "could not download it, send it again": that is
            # one file's trouble, often gone on a resend.
            reason = texts.t(job.lang, upstream)
        else:
            reason = texts.t(job.lang, "bad_server_file" if isinstance(exc, UnsafeFile) else "bad_download")
        role = "style" if failure_key == "bad_style_later" else "content"  # never the file id (issue 18)
        log.info("job %s: cannot use its %s image: %s", job.id, role, exc)
        ctx.store.set_status(job.id, JobStatus.FAILED, error=f"bad input: {exc}")
        text = texts.t(job.lang, failure_key, reason=reason)
        ctx.delivery.refuse_input(job, keep_photo=failure_key == "bad_style_later", text=text)
        return None


def _deliver(ctx: Context, job: Job, result, frames: FrameRecorder | None = None) -> None:
    """Send the result as a photo (or a document if it's beyond sendPhoto's limits).

    The PNG for "Full quality file" is a bonus: when the disk refuses it, the
    result is still sent (from memory, without that button) and health says why.
    """
    png = images.to_png(result)
    saved = True
    try:
        results.write_file(result_path(ctx.results_dir, job.id), png)  # via the module: tests fill the disk there
    except OSError as exc:
        saved = False
        trouble = resource_trouble(exc) or f"cannot save results ({type(exc).__name__})"
        log.warning("job %s: result file not saved (%s); sending it from memory", job.id, exc)
        if ctx.health is not None:
            ctx.health.degrade(trouble)
    jpeg = images.to_jpeg(result)
    caption = result_caption(job, result.size, ctx.styles_dir)
    # The timelapse only beside a saved result (a full disk skips it); its failure never fails the job.
    lapse = saved and timelapse.save(ctx.results_dir, job.id, frames, result)
    photo = jpeg if images.fits_send_photo(result.size, len(jpeg)) else None
    ctx.delivery.send_result(job, Rendered(png=png, jpeg=photo, caption=caption, full=saved, lapse=lapse))

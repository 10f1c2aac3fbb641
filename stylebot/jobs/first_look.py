"""first_look: the draft network's picture in the live preview message, seconds before the painting.

As soon as a job is queued (both images in hand), :class:`FirstLooks` draws the draft
(:mod:`stylebot.engine.draft`, onnxruntime, no torch) on a pool of its own (one thread, a few pending at
most), so it never waits for the painting queue and never takes more than one core from the painter.
Where the draft goes depends on where the job is by then:

* the job is already painting: its :class:`~stylebot.jobs.status.StatusReporter` shows it at once as the
  live preview (the painting's own previews then replace it, as before);
* the job is still waiting: it is sent as a photo of its own under the "in the queue" message (which the
  position updates keep editing); the reporter adopts that photo as its preview message when the job
  starts, and a /cancel before that removes it;
* the job already ended: it is dropped.

Process-local: the polling app's worker threads. The webhook/RQ split has no first look yet (DESIGN.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from stylebot import images, texts
from stylebot.errors import TelegramError, UserGone
from stylebot.jobs.job import Job, JobStatus
from stylebot.tg import Telegram

log = logging.getLogger(__name__)

#: Drafts waiting for the pool beyond this are skipped: a burst of jobs must not build a backlog of
#: first looks that would arrive after their paintings.
MAX_PENDING = 4


class _Ended(Exception):
    """The job ended while its draft was being drawn."""


class _Recent:
    """The last few thousand job ids seen ending: bounded, so a bot up for months does not grow with them."""

    def __init__(self, keep: int = 4096) -> None:
        self.keep = keep
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, job_id: str) -> None:
        self._ids[job_id] = None
        while len(self._ids) > self.keep:
            self._ids.popitem(last=False)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids


class SharedDownloads:
    """Each of a job's files downloaded once for both its first look and its worker (whoever asks first).

    Keyed by (job id, file id) and dropped when the job ends, so a later job with the same file ids (Stronger,
    a new mix) downloads afresh as before; at most ``max_bytes`` are kept, the oldest going first.
    """

    def __init__(self, tg: Telegram, max_bytes: int = 32 << 20) -> None:
        self.tg, self.max_bytes = tg, max_bytes
        self._cond = threading.Condition()
        self._data: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._inflight: set[tuple[str, str]] = set()
        #: A download that failed, kept for the job's other reader: the worker must meet the same answer the
        #: first look did (a hostile getFile path fails the job), not a second, different one.
        self._failed: dict[tuple[str, str], Exception] = {}
        self._total = 0
        self._gone = _Recent()

    def get(self, job_id: str, file_id: str, only_if_live: bool = False) -> bytes:
        """The file's bytes; with ``only_if_live`` (the first look), :class:`_Ended` instead of a download for
        a job that already ended, decided atomically with :meth:`forget`."""
        key = (job_id, file_id)
        with self._cond:
            while key in self._inflight:
                self._cond.wait()
            if key in self._data:
                return self._data[key]
            if key in self._failed:
                raise self._failed[key]
            if only_if_live and job_id in self._gone:
                raise _Ended()
            self._inflight.add(key)
        data = b""
        try:
            data = self.tg.download(file_id)
        except Exception as exc:
            with self._cond:
                if job_id not in self._gone:
                    self._failed[key] = exc
                    while len(self._failed) > 256:  # bounded, whatever ends a job
                        del self._failed[next(iter(self._failed))]
            raise
        finally:
            with self._cond:
                self._inflight.discard(key)
                if data:
                    self._data[key] = data
                    self._total += len(data)
                    while self._total > self.max_bytes and self._data:
                        self._total -= len(self._data.popitem(last=False)[1])
                self._cond.notify_all()
        return data

    def forget(self, job_id: str) -> None:
        with self._cond:
            self._gone.add(job_id)
            for key in [k for k in self._data if k[0] == job_id]:
                self._total -= len(self._data.pop(key))
            for key in [k for k in self._failed if k[0] == job_id]:
                del self._failed[key]


class Previewing(Protocol):
    """What :class:`FirstLooks` needs of a running job's status reporter."""

    def show_first_look(self, jpeg: bytes) -> None: ...

    def adopt_photo(self, message_id: int) -> None: ...


class FirstLooks:
    """Draws each job's draft off the painting queue and puts it where the job's user will see it first."""

    def __init__(self, draft: Any, tg: Telegram, store: Any, threads: int = 1) -> None:
        """
        :param draft: a loaded :class:`stylebot.engine.draft.DraftModel` (its sessions limit their threads).
        :param threads: the pool's size; 1 keeps the draft from competing with the painter for cores.
        """
        self.draft, self.tg, self.store = draft, tg, store
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="first-look")
        self._lock = threading.Lock()
        self._pending = 0
        self._reporters: dict[str, Previewing] = {}
        self._posted: dict[str, tuple[int, int]] = {}  # job id -> (chat id, message id) of a draft sent alone
        self._ended = _Recent()
        #: The job's images, fetched once for the draft and the painting (``jobs/run.py`` reads through it).
        self.downloads = SharedDownloads(tg)

    # --- the queue side ------------------------------------------------------------------------------------
    def offer(self, job: Job) -> None:
        """Draw ``job``'s draft soon, unless the pool is already behind."""
        with self._lock:
            if self._pending >= MAX_PENDING:
                log.info("job %s: no first look (%d drafts pending)", job.id, self._pending)
                return
            self._pending += 1
        try:
            self._pool.submit(self._draw, job)
        except RuntimeError:  # shut down
            with self._lock:
                self._pending -= 1

    def cancelled(self, job_id: str) -> None:
        """The job was cancelled while waiting: its lone draft photo goes too."""
        with self._lock:
            self._ended.add(job_id)
            posted = self._posted.pop(job_id, None)
        self.downloads.forget(job_id)
        if posted is not None:
            self.tg.delete(*posted)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- the reporter side ---------------------------------------------------------------------------------
    def attach(self, job_id: str, reporter: Previewing) -> None:
        """A job starts painting: its reporter takes over the draft (already sent, or still to come)."""
        with self._lock:
            self._reporters[job_id] = reporter
            posted = self._posted.pop(job_id, None)
            if posted is not None:
                reporter.adopt_photo(posted[1])

    def detach(self, job_id: str) -> None:
        """The job ended: a draft that comes later is dropped."""
        with self._lock:
            self._reporters.pop(job_id, None)
            self._ended.add(job_id)
        self.downloads.forget(job_id)

    # --- the pool ------------------------------------------------------------------------------------------
    def _draw(self, job: Job) -> None:
        try:
            with self._lock:
                if job.id in self._ended:
                    return
            current = self.store.get_job(job.id)
            if current is None or current.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                return
            t0 = time.monotonic()
            jpeg = self._jpeg(job)
            t1 = time.monotonic()
            self._deliver(job, jpeg)
            log.info("job %s: first look drawn in %.2f s, shown in %.2f s", job.id, t1 - t0, time.monotonic() - t1)
        except (UserGone, _Ended):
            pass
        except Exception as exc:  # the painting reports bad images itself; the first look just doesn't come
            log.info("job %s: no first look: %s", job.id, exc)
        finally:
            with self._lock:
                self._pending -= 1

    def _jpeg(self, job: Job) -> bytes:
        """The draft at the content's aspect (the result's), as a preview-sized JPEG."""

        def get(file_id: str) -> bytes:
            with self._lock:  # a job that ended meanwhile must not cost another download
                if job.id in self._ended:
                    raise _Ended()
            return self.downloads.get(job.id, file_id, only_if_live=True)

        content = images.load_image(get(job.content_file_id), max_side=1024)
        style = images.load_image(get(job.style_file_id), max_side=1024)
        style2 = images.load_image(get(job.style2_file_id), max_side=1024) if job.style2_file_id else None
        picture = self.draft.stylize(content, style, job.strength, style2=style2, mix=job.mix)
        return images.preview_jpeg(picture)

    def _deliver(self, job: Job, jpeg: bytes) -> None:
        # Under the lock, so a reporter attaching now either finds the photo sent or gets it handed over.
        with self._lock:
            if job.id in self._ended:
                return
            reporter = self._reporters.get(job.id)
            if reporter is not None:
                reporter.show_first_look(jpeg)
                return
            caption = texts.t(job.lang, "first_look")
            try:
                message = self.tg.send_photo(job.chat_id, jpeg, caption=caption, reply_to=job.reply_to_message_id)
            except TelegramError as exc:
                log.info("job %s: first look not sent: %s", job.id, exc.description)
                return
            self._posted[job.id] = (job.chat_id, message.message_id)
        log.info("job %s: first look sent while it waits", job.id)


class WithFirstLook:
    """A job queue that offers each submitted job's first look; everything else goes to the queue inside."""

    def __init__(self, queue: Any, looks: FirstLooks) -> None:
        self._queue, self._looks = queue, looks

    def submit(self, job: Job, announce: Any = None) -> int:
        position = self._queue.submit(job, announce)
        self._looks.offer(job)
        return position

    def cancel(self, job_id: str) -> bool:
        done = bool(self._queue.cancel(job_id))
        if done:
            self._looks.cancelled(job_id)
        return done

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)

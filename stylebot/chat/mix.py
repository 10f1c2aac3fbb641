"""mix: mixed styles in the dialog (issue 14, point 3).

Three ways to a mixed job, all ending in ONE job with ``style2_file_id`` and ``mix`` set (the engine
mixes both styles' statistics in one objective; see ``Engine.stylize(..., style2=...)``):

* an album of three images: the photo, then two styles (two images stay photo + style);
* "Mix with another style" under a one-style result: the dialog waits (``STEP_MIX``) for one more style,
  with the result's photo and style kept in it; the next picture (or a recent or gallery pick) mixes;
* the ratio buttons under a mixed result (25/50/75 % of the second style) paint the same three images
  again with another share, by file id, like Stronger/Weaker.

Why albums wait: Telegram delivers an album as separate updates and never says how many are coming, so
after the second image we cannot know whether a third follows. :class:`AlbumCollector` takes the album
as complete once no new image arrived for :data:`ALBUM_SETTLE` seconds. The handler cannot just sleep:
the next image of the album waits behind it in the same user's queue (see ``Dispatcher``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from telebot import types
from telebot.callback_data import CallbackData

from stylebot import texts
from stylebot.chat import keyboards
from stylebot.chat.filters import Incoming, incoming_image, sender
from stylebot.errors import UserGone
from stylebot.jobs.job import Job
from stylebot.store.base import STEP_MIX, AlbumItem, Dialog, StateStore
from stylebot.tg import Telegram

log = logging.getLogger(__name__)

#: Seconds without a new image after which an album is taken as complete (Telegram sends an album's
#: images within a fraction of a second; each is also downloaded and checked before it is counted).
ALBUM_SETTLE = 2.0
#: The share of the second style a new mix starts with.
DEFAULT_MIX = 0.5


class Host(Protocol):
    """What the mix dialog uses of :class:`~stylebot.chat.handlers.Handlers` (no import: no cycle)."""

    store: StateStore
    tg: Telegram

    def lang(self, user: types.User | None) -> str: ...

    def check_image(self, message: types.Message, image: Incoming) -> bool: ...

    def not_an_image(self, message: types.Message) -> None: ...

    def content(self, message: types.Message) -> None: ...

    def own_job(self, call: types.CallbackQuery, factory: CallbackData) -> Job | None: ...

    def answer(self, call: types.CallbackQuery, text: str | None = None) -> None: ...

    def stale(self, call: types.CallbackQuery) -> None: ...

    @property
    def submit(self) -> Callable[..., bool]: ...  # Handlers.submit: (chat, user, content, style, **options)


class AlbumCollector:
    """Debounces an album's images: ``done(items)`` runs once, :data:`ALBUM_SETTLE` s after the last one.

    Images arriving after that (a very slow download) are ignored with a log line: the album was answered.
    """

    def __init__(self, settle: float = ALBUM_SETTLE) -> None:
        self.settle = settle
        self._lock = threading.Lock()
        #: key -> (generation, items, timer) of albums still collecting
        self._open: dict[tuple[int, str], tuple[int, list[AlbumItem], threading.Timer]] = {}
        self._closed: dict[tuple[int, str], float] = {}  # key -> when answered (kept an hour)
        self._generation = 0

    def add(self, key: tuple[int, str], items: list[AlbumItem], done: Callable[[list[AlbumItem]], None]) -> None:
        """``items``: every image of the album seen so far (the store's answer to the newest one)."""
        with self._lock:
            now = time.monotonic()
            self._closed = {k: t for k, t in self._closed.items() if now - t < 3600}
            if key in self._closed:
                log.info("album %s: an image arrived after the album was answered; ignored", key[1])
                return
            previous = self._open.get(key)
            if previous is not None:
                previous[2].cancel()
                if len(previous[1]) > len(items):
                    items = previous[1]
            self._generation += 1
            timer = threading.Timer(self.settle, self._fire, (key, self._generation, done))
            timer.daemon = True
            self._open[key] = (self._generation, items, timer)
            timer.start()

    def _fire(self, key: tuple[int, str], generation: int, done: Callable[[list[AlbumItem]], None]) -> None:
        with self._lock:
            entry = self._open.get(key)
            if entry is None or entry[0] != generation:  # a newer image restarted the wait
                return
            del self._open[key]
            self._closed[key] = time.monotonic()
        done(entry[1])

    def cancel_all(self) -> None:
        """Drop albums still collecting (shutdown)."""
        with self._lock:
            for _, _, timer in self._open.values():
                timer.cancel()
            self._open.clear()


class MixDialog:
    """The mixed-styles part of the dialog; ``h`` is the bot's :class:`Handlers`."""

    def __init__(self, h: Host, settle: float = ALBUM_SETTLE) -> None:
        self.h = h
        self.albums = AlbumCollector(settle)

    # --- albums ----------------------------------------------------------
    def album_item(self, message: types.Message, items: list[AlbumItem]) -> None:
        """One checked image of an album is stored; answer the album once it is complete."""
        chat, user = message.chat.id, sender(message)
        group = message.media_group_id or ""
        self.albums.add((chat, group), items, lambda done: self._guarded(chat, user, self.album_done, done))

    def album_done(self, chat_id: int, user: types.User, items: list[AlbumItem]) -> None:
        """2 images: photo + style; 3: photo + two styles mixed 50/50; more: say what an album may hold."""
        if len(items) < 2:  # one usable image (the other was refused, and the user told why)
            return
        if len(items) > 3:
            self.h.tg.send_text(chat_id, texts.t(self.h.lang(user), "album_too_many", count=len(items)))
            return
        content, style, *more = items
        style2 = more[0] if more else None
        options: dict[str, Any] = {"style2_file_id": style2.file_id, "mix": DEFAULT_MIX} if style2 else {}
        if self.h.submit(chat_id, user, content.file_id, style.file_id, **options):
            for s in (style, style2):
                if s is not None:
                    self.h.store.remember_style(user.id, s.file_id, s.thumb_file_id)
            self.h.store.reset_dialog(user.id, chat_id)

    def _guarded(self, chat_id: int, user: types.User, fn: Callable[..., None], *args: Any) -> None:
        """Timer threads have no routing guard: log a failure and tell the user, as ``guarded`` does."""
        try:
            fn(chat_id, user, *args)
        except UserGone:
            log.info("album: user blocked the bot")
        except Exception:
            log.exception("album failed")
            try:
                self.h.tg.send_text(chat_id, texts.t(self.h.lang(user), "handler_failed"))
            except Exception:
                log.exception("could not report the failure")

    # --- "Mix with another style" and the second style -------------------
    def on_mix_with(self, call: types.CallbackQuery) -> None:
        """Keep the result's photo and style in the dialog and ask for the style to mix in."""
        job = self.h.own_job(call, keyboards.MIX_WITH)
        if job is None:
            return
        self.h.answer(call)
        self.h.store.set_dialog(
            Dialog(call.from_user.id, STEP_MIX, job.content_file_id, job.chat_id, style_file_id=job.style_file_id)
        )
        text = texts.t(self.h.lang(call.from_user), "mix_ask")
        if job.chat_id != job.user_id:  # a group: a ForceReply, so the picture reaches us under privacy mode
            self.h.tg.send_text(job.chat_id, text, types.ForceReply(selective=True), reply_to=job.reply_to_message_id)
            return
        gallery = getattr(self.h, "gallery", None)  # the gallery sheet carries the prompt when there is one
        if gallery is None or not gallery.show(
            job.chat_id, self.h.lang(call.from_user), text, reply_to=job.reply_to_message_id
        ):
            self.h.tg.send_text(job.chat_id, text, reply_to=job.reply_to_message_id)

    def second_style(self, message: types.Message) -> None:
        """A picture while the dialog waits for the second style (``STEP_MIX``): the mixed job."""
        image = incoming_image(message)
        if image is None:  # routing sends only images here
            self.h.not_an_image(message)
            return
        user, chat = sender(message), message.chat.id
        dialog = self.h.store.get_dialog(user.id, chat)
        if not self.h.check_image(message, image):
            return
        if not dialog.content_file_id or not dialog.style_file_id:  # a stale step: treat it as the photo
            self.h.content(message)
            return
        reply_to = None if message.chat.type == "private" else message.message_id  # groups: answer this message
        if self.submit_mix(chat, user, dialog, image.file_id, reply_to=reply_to):
            self.h.store.remember_style(user.id, image.file_id, image.thumb_file_id)
            self.h.store.reset_dialog(user.id, chat)

    def submit_mix(
        self,
        chat_id: int,
        user: types.User,
        dialog: Dialog,
        style2_file_id: str,
        style2_slug: str | None = None,
        reply_to: int | None = None,
    ) -> bool:
        """The dialog's photo and first style with ``style2_file_id``, 50/50 (recent and gallery picks too)."""
        assert dialog.content_file_id and dialog.style_file_id
        options: dict[str, Any] = {"style2_file_id": style2_file_id, "mix": DEFAULT_MIX, "reply_to": reply_to}
        gallery = getattr(self.h, "gallery", None)  # the first style may be a gallery style: keep its credit
        slug = gallery.slug_of(dialog.style_file_id) if gallery is not None else None
        if slug:
            options["style_slug"] = slug
        if style2_slug:
            options["style2_slug"] = style2_slug
        return self.h.submit(chat_id, user, dialog.content_file_id, dialog.style_file_id, **options)

    # --- ratio buttons ---------------------------------------------------
    def on_mix(self, call: types.CallbackQuery) -> None:
        """25/50/75 under a mixed result: the same three images with another share of the second style."""
        job = self.h.own_job(call, keyboards.MIX)
        if job is None:
            return
        share = (keyboards.parse(keyboards.MIX, call.data) or {}).get("share", "")
        if job.style2_file_id is None or share not in keyboards.MIX_SHARES:
            self.h.stale(call)
            return
        mix = int(share) / 100
        if abs(mix - job.mix) < 1e-6:
            self.h.answer(call, texts.t(self.h.lang(call.from_user), "mix_same"))
            return
        self.h.answer(call)
        self.h.submit(
            job.chat_id,
            call.from_user,
            job.content_file_id,
            job.style_file_id,
            strength=job.strength,
            size=job.size,
            keep_colors=job.keep_colors,
            reply_to=job.reply_to_message_id,
            style_slug=job.style_slug,
            style2_file_id=job.style2_file_id,
            style2_slug=job.style2_slug,
            mix=mix,
            speed=job.speed,  # a quick result's ratios stay quick
            shown_from=job.id,
        )

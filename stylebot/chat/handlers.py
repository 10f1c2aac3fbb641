"""bot: the chat itself — handlers, dialog, keyboards.

Handlers stay short: read the message, consult the store, enqueue a job or
answer, and return at once. They never paint and never hold tensors; the
worker does that. Every reply is a key in :mod:`texts`.

Routing is by sibling handlers split by custom filters (``step``,
``image``, ``album``) rather than ``if`` chains, in the order telebot tries them:
commands, albums, usable images by dialog step, unusable files, and a last
catch-all so every message gets an answer.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import telebot
from telebot import custom_filters, types

from stylebot import images
from stylebot import texts
from stylebot.images import BadImage
from stylebot.jobs.job import Job, JobQueue, resource_trouble
from stylebot.jobs.run import RESULT_HOURS, result_path
from stylebot.store.sqlite_store import STEP_CONTENT, STEP_STYLE, Dialog, Store, UserSettings
from stylebot.tg import Telegram, TelegramError, UserGone

log = logging.getLogger(__name__)

#: Style strengths offered by the buttons, weakest to strongest.
STRENGTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: The three named in /settings.
NAMED_STRENGTHS = {"weak": 0.5, "normal": 1.0, "strong": 2.0}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".avif", ".bmp", ".gif", ".tif", ".tiff")
COMMANDS = ("start", "help", "cancel", "settings", "forget")


@dataclass
class Incoming:
    """An image a user sent, as Telegram describes it (nothing downloaded yet)."""

    file_id: str
    thumb_file_id: str | None
    file_size: int | None
    width: int | None = None
    height: int | None = None


def incoming_image(message: types.Message) -> Incoming | None:
    """The usable image in ``message``: the largest ``PhotoSize``, or an image file."""
    if message.photo:
        largest = max(message.photo, key=lambda p: p.width * p.height)
        smallest = min(message.photo, key=lambda p: p.width * p.height)
        return Incoming(largest.file_id, smallest.file_id, largest.file_size, largest.width, largest.height)
    document = message.document
    if document is not None and is_image_document(document):
        thumb = getattr(document, "thumbnail", None) or getattr(document, "thumb", None)
        return Incoming(document.file_id, thumb.file_id if thumb else None, document.file_size)
    return None


def is_image_document(document: types.Document) -> bool:
    mime = (document.mime_type or "").lower()
    name = (document.file_name or "").lower()
    return mime.startswith("image/") or name.endswith(IMAGE_EXTENSIONS)


class StepFilter(custom_filters.AdvancedCustomFilter):
    """``step="style"``: the user's dialog in this chat is at that step (read from the store)."""

    key = "step"

    def __init__(self, store: Store) -> None:
        self.store = store

    def check(self, message: types.Message, step: str) -> bool:
        return self.store.get_dialog(message.from_user.id, message.chat.id).step == step


class ImageFilter(custom_filters.SimpleCustomFilter):
    """``image=True``: a photo, or a document with an image type."""

    key = "image"

    def check(self, message: types.Message) -> bool:
        return incoming_image(message) is not None


class AlbumFilter(custom_filters.SimpleCustomFilter):
    """``album=True``: one image of a media group (an album)."""

    key = "album"

    def check(self, message: types.Message) -> bool:
        return message.media_group_id is not None


class LogErrors(telebot.ExceptionHandler):
    """The last line of defence: an exception in a handler is logged, never fatal."""

    def handle(self, exception: Exception) -> bool:
        log.error("handler failed: %s", exception, exc_info=exception)
        return True


class Handlers:
    """The dialog. One instance per bot; all state is in ``store``."""

    def __init__(
        self,
        bot: telebot.TeleBot,
        store: Store,
        queue: JobQueue,
        tg: Telegram,
        results_dir: Path,
        default_size: int,
        size_choices: list[int],
        rate_limit: int,
    ) -> None:
        self.bot, self.store, self.queue, self.tg = bot, store, queue, tg
        self.results_dir = results_dir
        self.default_size = default_size
        self.size_choices = size_choices
        self.rate_limit = rate_limit

    @classmethod
    def for_config(cls, bot: telebot.TeleBot, store: Store, queue: JobQueue, tg: Telegram, config, gpu: bool):
        """The handlers as every entry point builds them (polling app, webhook process)."""
        return cls(
            bot,
            store,
            queue,
            tg,
            results_dir=config.results_dir,
            default_size=config.image_size,
            size_choices=config.size_choices(gpu),
            rate_limit=config.rate_limit,
        )

    # --- helpers -------------------------------------------------------
    @staticmethod
    def lang(user: types.User | None) -> str:
        return texts.lang_of(user.language_code if user else None)

    def reply(self, message: types.Message, key: str, markup=None, **values) -> types.Message | None:
        text = texts.t(self.lang(message.from_user), key, **values)
        return self.tg.send_text(message.chat.id, text, markup)

    def settings_for(self, user_id: int) -> UserSettings:
        settings = self.store.get_settings(user_id)
        if settings.size is None or settings.size not in self.size_choices:
            settings.size = self.default_size
        return settings

    def check_image(self, message: types.Message, image: Incoming) -> bool:
        """Download to memory and decode; on failure tell the user why and keep the dialog.

        Nothing is written to disk: the bytes are dropped as soon as they are
        checked; the job downloads them again when it starts.
        """
        try:
            if image.file_size and image.file_size > images.MAX_FILE_BYTES:
                raise BadImage("too_big_file")
            if image.width and image.height:
                images.check_size(image.width, image.height)
            try:
                data = self.tg.download(image.file_id)
            except UserGone:
                raise
            except TelegramError as exc:
                if "too big" in exc.description:
                    raise BadImage("too_big_file") from None
                self.reply(message, "bad_download")
                return False
            images.load_image(data, max_side=256)
            return True
        except BadImage as exc:
            log.info("user %s sent an unusable image: %s", message.from_user.id, exc)
            self.reply(message, f"bad_{exc.reason}", **exc.details)
            return False

    # --- commands ------------------------------------------------------
    def start(self, message: types.Message) -> None:
        self.store.reset_dialog(message.from_user.id, message.chat.id)
        self.reply(message, "start")

    def help(self, message: types.Message) -> None:
        size = self.settings_for(message.from_user.id).size
        self.reply(message, "help", size=size, hours=RESULT_HOURS)

    def cancel(self, message: types.Message) -> None:
        user, chat = message.from_user.id, message.chat.id
        job = self.store.active_job(user)  # one job per user, whichever chat it paints for
        dialog = self.store.get_dialog(user, chat)
        self.store.reset_dialog(user, chat)
        if job is not None and self.queue.cancel(job.id):
            self.reply(message, "cancelled_job")
        elif dialog.step != STEP_CONTENT or dialog.content_file_id:
            self.reply(message, "cancelled_dialog")
        else:
            self.reply(message, "nothing_to_cancel")

    def forget(self, message: types.Message) -> None:
        """Delete the user's rows (all chats) and results before saying so.

        A running job is cancelled and waited for (briefly), so its worker cannot
        write a result file after it was deleted.
        """
        user = message.from_user.id
        job = self.store.active_job(user)
        if job is not None:
            self.queue.cancel(job.id)
            running = getattr(self.queue, "running_ids", None)
            deadline = time.monotonic() + 15
            while running is not None and job.id in running() and time.monotonic() < deadline:
                time.sleep(0.05)
        for job_id in self.store.forget_user(user):
            result_path(self.results_dir, job_id).unlink(missing_ok=True)
        self.reply(message, "forgotten")

    def settings(self, message: types.Message) -> None:
        lang = self.lang(message.from_user)
        markup = self.settings_keyboard(lang, self.settings_for(message.from_user.id))
        self.tg.send_text(message.chat.id, texts.t(lang, "settings"), markup)

    def unknown_command(self, message: types.Message) -> None:
        self.reply(message, "unknown_command")

    def not_an_image(self, message: types.Message) -> None:
        if message.document is not None:
            self.reply(message, "bad_not_image")
        else:
            self.reply(message, "text_instead_of_image")

    # --- images --------------------------------------------------------
    def content(self, message: types.Message) -> None:
        image = incoming_image(message)
        if not self.check_image(message, image):
            return
        user = message.from_user.id
        self.store.set_dialog(Dialog(user, STEP_STYLE, image.file_id, message.chat.id))
        self.ask_style(message.chat.id, message.from_user)

    def style(self, message: types.Message) -> None:
        image = incoming_image(message)
        user, chat = message.from_user.id, message.chat.id
        dialog = self.store.get_dialog(user, chat)
        if not self.check_image(message, image):
            return
        if dialog.content_file_id is None:  # a stale step: treat this as the photo
            self.content(message)
            return
        if self.submit(chat, message.from_user, dialog.content_file_id, image.file_id):
            self.store.remember_style(user, image.file_id, image.thumb_file_id)
            self.store.reset_dialog(user, chat)

    def album(self, message: types.Message) -> None:
        """Two images sent together: the first is the photo, the second the style."""
        image = incoming_image(message)
        if image is None:
            self.not_an_image(message)
            return
        if not self.check_image(message, image):
            return
        user, chat = message.from_user.id, message.chat.id
        items = self.store.add_album_item(
            message.media_group_id, user, message.message_id, image.file_id, image.thumb_file_id, chat_id=chat
        )
        if len(items) == 2:
            content, style = items
            if self.submit(chat, message.from_user, content.file_id, style.file_id):
                self.store.remember_style(user, style.file_id, style.thumb_file_id)
                self.store.reset_dialog(user, chat)
        elif len(items) == 3:
            self.reply(message, "album_extra")

    def ask_style(self, chat_id: int, user: types.User) -> None:
        lang = self.lang(user)
        recent = self.store.recent_styles(user.id)
        if not recent:
            self.tg.send_text(chat_id, texts.t(lang, "ask_style"))
            return
        thumbs = [s.thumb_file_id or s.file_id for s in recent]
        try:
            if len(thumbs) == 1:
                self.tg.call(self.bot.send_photo, chat_id, thumbs[0], caption="1")
            else:
                media = [types.InputMediaPhoto(f, caption=str(n)) for n, f in enumerate(thumbs, 1)]
                self.tg.call(self.bot.send_media_group, chat_id, media)
        except UserGone:
            raise
        except TelegramError as exc:  # an expired thumbnail must not block the dialog
            log.info("recent styles preview failed: %s", exc.description)
        markup = types.InlineKeyboardMarkup(row_width=5)
        markup.add(
            *[
                types.InlineKeyboardButton(texts.t(lang, "recent_style_button", n=n), callback_data=f"style:{n}")
                for n in range(1, len(recent) + 1)
            ]
        )
        self.tg.send_text(chat_id, texts.t(lang, "ask_style_recent"), markup)

    def submit(
        self,
        chat_id: int,
        user: types.User,
        content_file_id: str,
        style_file_id: str,
        strength: float | None = None,
        size: int | None = None,
        keep_colors: bool | None = None,
    ) -> bool:
        """Queue a job if the user may have one now; answer either way."""
        lang = self.lang(user)
        health = getattr(self.queue, "health", None)  # jobs.Health: a full disk takes no new jobs
        if health is not None and not health.ok:
            self.tg.send_text(chat_id, texts.t(lang, "busy_try_later"))
            return False
        if self.store.active_job(user.id) is not None:
            self.tg.send_text(chat_id, texts.t(lang, "already_queued"))
            return False
        wait = self.rate_limited_for(user.id)
        if wait is not None:
            self.tg.send_text(chat_id, texts.t(lang, "rate_limited", limit=self.rate_limit, minutes=wait))
            return False
        settings = self.settings_for(user.id)
        job = Job(
            user_id=user.id,
            chat_id=chat_id,
            content_file_id=content_file_id,
            style_file_id=style_file_id,
            size=size or settings.size,
            strength=strength if strength is not None else settings.strength,
            keep_colors=settings.keep_colors if keep_colors is None else keep_colors,
            lang=lang,
        )

        def announce(position: int) -> int | None:
            key = "queued_next" if position == 1 else "queued"
            return self.tg.send_text(chat_id, texts.t(lang, key, position=position)).message_id

        self.queue.submit(job, announce)
        log.info("user %s queued job %s", user.id, job.id)
        return True

    def rate_limited_for(self, user_id: int) -> int | None:
        """Minutes until the user may queue again, or ``None`` if they may now."""
        if self.rate_limit <= 0:
            return None
        hour_ago = time.time() - 3600
        recent = self.store.jobs_created_since(user_id, hour_ago)
        if len(recent) < self.rate_limit:
            return None
        oldest_that_counts = recent[len(recent) - self.rate_limit]
        return max(1, int((oldest_that_counts - hour_ago) / 60 + 0.999))

    # --- buttons -------------------------------------------------------
    def settings_keyboard(self, lang: str, s: UserSettings) -> types.InlineKeyboardMarkup:
        def mark(text: str, on: bool) -> str:
            return f"✓ {text}" if on else text

        markup = types.InlineKeyboardMarkup()
        markup.row(
            *[
                types.InlineKeyboardButton(mark(f"{size} px", size == s.size), callback_data=f"set:size:{size}")
                for size in self.size_choices
            ]
        )
        markup.row(
            *[
                types.InlineKeyboardButton(
                    mark(texts.t(lang, f"strength_{name}"), abs(value - s.strength) < 1e-6),
                    callback_data=f"set:strength:{name}",
                )
                for name, value in NAMED_STRENGTHS.items()
            ]
        )
        colors = "settings_colors_on" if s.keep_colors else "settings_colors_off"
        markup.row(types.InlineKeyboardButton(texts.t(lang, colors), callback_data=f"set:colors:{int(not s.keep_colors)}"))
        return markup

    def on_settings(self, call: types.CallbackQuery) -> None:
        # "set:" or "set:size" (an old or forged button) falls through to the stale answer.
        _, what, value = ((call.data or "").split(":", 2) + ["", ""])[:3]
        lang = self.lang(call.from_user)
        settings = self.settings_for(call.from_user.id)
        if what == "size" and value.isdigit() and int(value) in self.size_choices:
            settings.size = int(value)
        elif what == "strength" and value in NAMED_STRENGTHS:
            settings.strength = NAMED_STRENGTHS[value]
        elif what == "colors" and value in ("0", "1"):
            settings.keep_colors = value == "1"
        else:
            self.answer(call, texts.t(lang, "stale_button"))
            return
        self.store.save_settings(settings)
        self.answer(call, texts.t(lang, "settings_saved"))
        if call.message is not None:
            self.tg.call(
                self.bot.edit_message_reply_markup,
                call.message.chat.id,
                call.message.message_id,
                reply_markup=self.settings_keyboard(lang, settings),
            )

    def on_result_button(self, call: types.CallbackQuery) -> None:
        kind, _, rest = (call.data or "").partition(":")
        job_id, _, direction = rest.partition(":")
        lang = self.lang(call.from_user)
        job = self.store.get_job(job_id) if job_id else None
        # Both the user and the chat must match: a button acts only where its job painted.
        if job is None or job.user_id != call.from_user.id or call.message is None \
                or job.chat_id != call.message.chat.id:
            self.answer(call, texts.t(lang, "stale_button"))
            return
        chat_id = job.chat_id
        if kind == "rerun":
            strength = next_strength(job.strength, +1 if direction == "stronger" else -1)
            if strength is None:
                which = "strongest" if direction == "stronger" else "weakest"
                self.answer(call, texts.t(lang, "strength_limit", which=texts.t(lang, which)))
                return
            self.answer(call)
            self.submit(chat_id, call.from_user, job.content_file_id, job.style_file_id,
                        strength=strength, size=job.size, keep_colors=job.keep_colors)
        elif kind == "restyle":
            self.answer(call)
            self.store.set_dialog(Dialog(call.from_user.id, STEP_STYLE, job.content_file_id, chat_id))
            if self.store.recent_styles(call.from_user.id):
                self.ask_style(chat_id, call.from_user)
            else:
                self.tg.send_text(chat_id, texts.t(lang, "another_style"))
        elif kind == "full":
            self.answer(call)
            path = result_path(self.results_dir, job.id)
            if path.is_file():
                self.tg.send_document(chat_id, path.read_bytes(), f"stylized-{job.id}.png")
            else:
                self.tg.send_text(chat_id, texts.t(lang, "full_quality_gone", hours=RESULT_HOURS))

    def on_recent_style(self, call: types.CallbackQuery) -> None:
        lang = self.lang(call.from_user)
        user = call.from_user.id
        if call.message is None:  # no chat to act in
            self.answer(call, texts.t(lang, "stale_button"))
            return
        chat_id = call.message.chat.id
        # Recent styles are the user's own; the photo comes from this chat's dialog only.
        dialog = self.store.get_dialog(user, chat_id)
        recent = self.store.recent_styles(user)
        n = (call.data or "").partition(":")[2]
        if dialog.step != STEP_STYLE or not dialog.content_file_id or not n.isdigit() or not 1 <= int(n) <= len(recent):
            self.answer(call, texts.t(lang, "stale_button"))
            return
        self.answer(call)
        style = recent[int(n) - 1]
        if self.submit(chat_id, call.from_user, dialog.content_file_id, style.file_id):
            self.store.remember_style(user, style.file_id, style.thumb_file_id)
            self.store.reset_dialog(user, chat_id)

    def answer(self, call: types.CallbackQuery, text: str | None = None) -> None:
        try:
            self.tg.call(self.bot.answer_callback_query, call.id, text)
        except TelegramError as exc:  # too old to answer: the user just sees a spinner stop
            log.info("answer_callback_query: %s", exc.description)


class Dispatcher:
    """Runs each sender's updates strictly in order, and different senders in parallel.

    telebot's own thread pool would run a user's photo and style, sent a
    moment apart, at the same time, and both would see the dialog's old
    step. Fixed shards (user id modulo N) kept order but let one user's
    stalled download hold up every user on the same shard. So each sender
    has its own FIFO (keyed by user: that orders each (chat, user) dialog and
    also the per-user state, active job and rate limit, across chats), and a pool
    of threads serves the senders that have work: a sender is taken by one
    thread at a time (order), any free thread can take any sender, and the
    pool grows up to ``max_threads`` when all threads are busy, so a stalled
    sender holds only its own thread.
    """

    def __init__(self, bot: telebot.TeleBot, shards: int = 4, max_threads: int = 32) -> None:
        self.bot = bot
        self.max_threads = max(shards, max_threads)
        self._lock = threading.Lock()
        self._pending: dict[object, deque[types.Update]] = {}   # sender -> updates not yet run
        self._ready: queue.Queue = queue.Queue()                   # senders with work, none taken yet
        self._idle = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []
        with self._lock:
            for _ in range(shards):
                self._spawn()

    def dispatch(self, updates: list[types.Update]) -> None:
        for update in updates:
            key = _sender(update)
            with self._lock:
                if self._stopping:
                    return
                waiting = self._pending.get(key)
                if waiting is not None:  # queued or being run: its thread will get to it
                    waiting.append(update)
                    continue
                self._pending[key] = deque([update])
                if self._idle == 0 and len(self._threads) < self.max_threads:
                    self._spawn()
                self._idle -= 1  # reserve a thread (may go negative: the work waits its turn)
            self._ready.put(key)

    def stop(self) -> None:
        """Updates already taken finish; threads then exit (updates not started are dropped)."""
        with self._lock:
            self._stopping = True
            count = len(self._threads)
        for _ in range(count):
            self._ready.put(None)

    def _spawn(self) -> None:
        """Start one more thread; the caller holds the lock."""
        thread = threading.Thread(target=self._run, name=f"updates-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        self._idle += 1
        thread.start()

    def _run(self) -> None:
        while (key := self._ready.get()) is not None:
            while True:
                with self._lock:
                    waiting = self._pending[key]
                    if not waiting or self._stopping:
                        del self._pending[key]
                        self._idle += 1
                        break
                    update = waiting.popleft()
                try:
                    self.bot.process_new_updates([update])
                except Exception:  # handlers are guarded; this is telebot itself failing
                    log.exception("update %s failed", update.update_id)


def _sender(update: types.Update) -> object:
    """Whose updates must stay in order: the user's (per-user state spans their chats)."""
    for part in (update.message, update.callback_query, update.edited_message):
        if part is not None and part.from_user is not None:
            return part.from_user.id
    return ("update", update.update_id)  # no sender: nothing to keep in order


def next_strength(current: float, direction: int) -> float | None:
    """The next step up or down the strength ladder, or ``None`` at its end."""
    ladder = sorted(set(STRENGTHS) | {current})
    index = ladder.index(current) + direction
    if not 0 <= index < len(ladder):
        return None
    return ladder[index]


def guarded(handler: Callable[..., None], tg: Telegram) -> Callable[..., None]:
    """Log a handler's failure with its traceback and still answer the user.

    A user who blocked the bot gets nothing (there is no one to answer).
    """

    @functools.wraps(handler)
    def run(update, *args, **kwargs):
        try:
            handler(update, *args, **kwargs)
        except UserGone:
            log.info("%s: user blocked the bot", getattr(handler, "__name__", "handler"))
        except Exception as exc:
            trouble = resource_trouble(exc)  # a full disk or a lost database: not the user's fault
            if trouble:
                log.warning("%s: %s; told the user to try later", getattr(handler, "__name__", "handler"), trouble)
            else:
                log.exception("%s failed", getattr(handler, "__name__", "handler"))
            message = update.message if isinstance(update, types.CallbackQuery) else update
            if message is None:
                return
            lang = texts.lang_of(update.from_user.language_code if update.from_user else None)
            try:
                tg.send_text(message.chat.id, texts.t(lang, "busy_try_later" if trouble else "handler_failed"))
            except Exception:
                log.exception("could not report the failure")

    return run


def commands(lang: str) -> list[types.BotCommand]:
    return [types.BotCommand(c, texts.t(lang, f"cmd_{c}")) for c in COMMANDS]


def announce_commands(bot: telebot.TeleBot, stopping: threading.Event, attempts: int = 5) -> None:
    """``set_my_commands`` in both languages; retried with backoff, never fatal (the menu is cosmetic)."""
    for attempt in range(attempts):
        try:
            bot.set_my_commands(commands(texts.EN))
            bot.set_my_commands(commands(texts.RU), language_code=texts.RU)
            return
        except Exception as exc:  # noqa: BLE001 - any failure just means "try again later"
            log.warning("set_my_commands failed (%s); retrying", type(exc).__name__)
            if stopping.wait(2 ** attempt):
                return


def register(bot: telebot.TeleBot, h: Handlers) -> None:
    """Attach the handlers in routing order (telebot uses the first that matches)."""
    bot.add_custom_filter(StepFilter(h.store))
    bot.add_custom_filter(ImageFilter())
    bot.add_custom_filter(AlbumFilter())
    media = ["photo", "document"]
    g = functools.partial(guarded, tg=h.tg)
    on = bot.register_message_handler
    on(g(h.start), commands=["start"])
    on(g(h.help), commands=["help"])
    on(g(h.cancel), commands=["cancel"])
    on(g(h.settings), commands=["settings"])
    on(g(h.forget), commands=["forget"])
    on(g(h.unknown_command), func=lambda m: (m.text or "").startswith("/"))
    on(g(h.album), content_types=media, album=True)
    on(g(h.style), content_types=media, image=True, step=STEP_STYLE)
    on(g(h.content), content_types=media, image=True)
    on(g(h.not_an_image), func=lambda m: True, content_types=telebot.util.content_type_media)
    cb = bot.register_callback_query_handler
    cb(g(h.on_settings), func=lambda c: (c.data or "").startswith("set:"))
    cb(g(h.on_recent_style), func=lambda c: (c.data or "").startswith("style:"))
    cb(g(h.on_result_button), func=lambda c: (c.data or "").startswith(("rerun:", "restyle:", "full:")))
    cb(g(lambda c: h.answer(c, texts.t(h.lang(c.from_user), "stale_button"))), func=lambda c: True)

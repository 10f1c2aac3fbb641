"""handlers: the dialog — what the bot does with each message and button press.

Handlers stay short: read the message, consult the store, enqueue a job or
answer, and return at once. They never paint and never hold tensors; the
worker does that. Every reply is a key in :mod:`stylebot.texts`, every keyboard
comes from :mod:`stylebot.chat.keyboards`, and which handler runs is decided in
:mod:`stylebot.chat.routing`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Self

import telebot
from telebot import types
from telebot.callback_data import CallbackData

from stylebot import images, texts
from stylebot.chat import keyboards
from stylebot.chat.dispatcher import job_id_for_update
from stylebot.chat.filters import Incoming, incoming_image, sender
from stylebot.chat.gallery import Gallery
from stylebot.chat.keyboards import NAMED_STRENGTHS
from stylebot.chat.mix import MixDialog
from stylebot.chat.owners import not_yours, picker_reply_to
from stylebot.chat.speed import SpeedRule, rule_for
from stylebot.config import Config
from stylebot.errors import BadImage, TelegramError, UnsafeFile, UserGone
from stylebot.gallery.catalog import DEFAULT_DIR as DEFAULT_STYLES_DIR
from stylebot.jobs import quota
from stylebot.jobs.job import Job, JobQueue
from stylebot.jobs.results import RESULT_HOURS, result_path, timelapse_path
from stylebot.logs import who
from stylebot.store.base import STEP_CONTENT, STEP_MIX, STEP_STYLE, Dialog, StateStore, UserSettings
from stylebot.tg import Telegram

log = logging.getLogger(__name__)

#: Style strengths offered by the buttons, weakest to strongest.
STRENGTHS = (0.25, 0.5, 1.0, 2.0, 4.0)


class Handlers:
    """The dialog. One instance per bot; all state is in ``store``."""

    def __init__(
        self,
        bot: telebot.TeleBot,
        store: StateStore,
        queue: JobQueue,
        tg: Telegram,
        results_dir: Path,
        default_size: int,
        size_choices: list[int],
        rate_limit: int,
        styles_dir: Path | None = None,
        speed: SpeedRule | None = None,
    ) -> None:
        self.bot, self.store, self.queue, self.tg = bot, store, queue, tg
        self.speed = speed or SpeedRule()  # Quick or Painted per job (chat/speed.py)
        self.gallery = Gallery(tg, store, styles_dir if styles_dir is not None else DEFAULT_STYLES_DIR)
        self.mix = MixDialog(self)  # mixed styles: 3-image albums, "Mix with another style", ratio buttons
        self.results_dir = results_dir
        self.default_size = default_size
        self.size_choices = size_choices
        self.rate_limit = rate_limit

    @classmethod
    def for_config(
        cls,
        bot: telebot.TeleBot,
        store: StateStore,
        queue: JobQueue,
        tg: Telegram,
        config: Config,
        gpu: bool,
        quick: bool = False,
    ) -> Self:
        """The handlers as every entry point builds them (polling app, webhook process); ``quick``: the draft runs."""
        return cls(
            bot,
            store,
            queue,
            tg,
            results_dir=config.results_dir,
            default_size=config.image_size,
            size_choices=config.size_choices(gpu),
            rate_limit=config.rate_limit,
            styles_dir=config.styles_dir,
            speed=rule_for(config.engine, quick, config.auto_quick_wait, config.image_size, config.workers),
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
                self.reply(message, "bad_server_file" if isinstance(exc, UnsafeFile) else "bad_download")
                return False
            images.verify(data)  # one full decode inside the shared decode budget; nothing kept
            return True
        except BadImage as exc:
            log.info("%s sent an unusable image: %s", who(self.store, sender(message).id), exc)
            self.reply(message, f"bad_{exc.reason}", **exc.details)
            return False

    # --- commands ------------------------------------------------------
    def start(self, message: types.Message) -> None:
        self.store.reset_dialog(sender(message).id, message.chat.id)
        self.reply(message, "start")

    def help(self, message: types.Message) -> None:
        size = self.settings_for(sender(message).id).size
        self.reply(message, "help", size=size, hours=RESULT_HOURS)

    def cancel(self, message: types.Message) -> None:
        user, chat = sender(message).id, message.chat.id
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
        user = sender(message).id
        job = self.store.active_job(user)
        if job is not None:
            self.queue.cancel(job.id)
            running = getattr(self.queue, "running_ids", None)
            deadline = time.monotonic() + 15
            while running is not None and job.id in running() and time.monotonic() < deadline:
                time.sleep(0.05)
        for job_id in self.store.forget_user(user):
            result_path(self.results_dir, job_id).unlink(missing_ok=True)
            timelapse_path(self.results_dir, job_id).unlink(missing_ok=True)
        self.reply(message, "forgotten")

    def settings(self, message: types.Message) -> None:
        lang = self.lang(message.from_user)
        markup = self.settings_keyboard(lang, self.settings_for(sender(message).id))
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
        if image is None:  # routing sends only images here (the ``image`` filter)
            self.not_an_image(message)
            return
        if not self.check_image(message, image):
            return
        user = sender(message).id
        self.store.set_dialog(Dialog(user, STEP_STYLE, image.file_id, message.chat.id))
        self.ask_style(message.chat.id, sender(message))

    def style(self, message: types.Message) -> None:
        image = incoming_image(message)
        if image is None:  # routing sends only images here (the ``image`` filter)
            self.not_an_image(message)
            return
        user, chat = sender(message).id, message.chat.id
        dialog = self.store.get_dialog(user, chat)
        if not self.check_image(message, image):
            return
        if dialog.content_file_id is None:  # a stale step: treat this as the photo
            self.content(message)
            return
        if self.submit(chat, sender(message), dialog.content_file_id, image.file_id):
            self.store.remember_style(user, image.file_id, image.thumb_file_id)
            self.store.reset_dialog(user, chat)

    def album(self, message: types.Message) -> None:
        """Images sent together: the photo, then one style (or two to mix; see :mod:`.mix`)."""
        image = incoming_image(message)
        group = message.media_group_id
        if image is None or group is None:
            self.not_an_image(message)
            return
        if not self.check_image(message, image):
            return
        user, chat = sender(message).id, message.chat.id
        items = self.store.add_album_item(
            group, user, message.message_id, image.file_id, image.thumb_file_id, chat_id=chat
        )
        self.mix.album_item(message, items)  # answered once the album is complete (2, 3 or too many)

    def ask_style(self, chat_id: int, user: types.User) -> None:
        lang = self.lang(user)
        recent = self.store.recent_styles(user.id)
        if not recent:
            # The gallery sheet carries the prompt as its caption; without one, the prompt is words only.
            if not self.gallery.show(chat_id, lang, texts.t(lang, "ask_style")):
                self.tg.send_text(chat_id, texts.t(lang, "ask_style_no_gallery"))
            return
        # The gallery first: the recent styles and their buttons end the prompt.
        self.gallery.show(chat_id, lang, texts.t(lang, "gallery_caption"))
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
        markup = keyboards.recent_style_buttons(lang, len(recent))
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
        reply_to: int | None = None,
        style_slug: str | None = None,
        style2_file_id: str | None = None,
        style2_slug: str | None = None,
        mix: float = 0.5,
        speed: str | None = None,
        shown_from: str | None = None,
    ) -> bool:
        """Queue a job if the user may have one now; answer either way.

        ``reply_to``: in a group, the user's message that every answer and the result reply to.
        """
        lang = self.lang(user)
        job_id = job_id_for_update()
        if job_id is not None and self.store.get_job(job_id) is not None:
            # This update was handled before a crash (replayed at start-up): its job exists and its
            # user was told (or is told by the start-up's "back in the queue"); nothing to do twice.
            log.info("%s: job %s was submitted before the restart; not again", who(self.store, user.id), job_id)
            return True
        health = getattr(self.queue, "health", None)  # jobs.Health: a full disk takes no new jobs
        if health is not None and not health.ok:
            self.tg.send_text(chat_id, texts.t(lang, "busy_try_later"), reply_to=reply_to)
            return False
        # ``shown_from``: the job whose result's button asked; its result is on screen, so while it tidies up
        # (status message, DONE) it is not "a job in the queue" (a press there was refused under load).
        active = self.store.active_job(user.id)
        if active is not None and active.id != shown_from:
            self.tg.send_text(chat_id, texts.t(lang, "already_queued"), reply_to=reply_to)
            return False
        settings = self.settings_for(user.id)
        size = self.allowed_size(size or settings.size or self.default_size, chat_id, lang, reply_to)
        wait = self.rate_limited_for(user.id, size)
        if wait is not None:
            self.tell_rate_limited(chat_id, user.id, lang, size, wait, reply_to)
            return False
        job = Job(
            user_id=user.id,
            chat_id=chat_id,
            content_file_id=content_file_id,
            style_file_id=style_file_id,
            size=size,
            strength=strength if strength is not None else settings.strength,
            keep_colors=settings.keep_colors if keep_colors is None else keep_colors,
            lang=lang,
            reply_to_message_id=reply_to,
            style_slug=style_slug,
            style2_file_id=style2_file_id,
            style2_slug=style2_slug,
            mix=mix,
            speed=speed or self.speed.for_job(settings.speed, self.store),  # a rerun keeps its job's speed
        )
        if job_id is not None:
            job.id = job_id

        def announce(position: int) -> int | None:
            key = "queued_next" if position == 1 else "queued"
            return self.tg.send_text(chat_id, texts.t(lang, key, position=position), reply_to=reply_to).message_id

        self.queue.submit(job, announce)
        log.info("%s queued job %s", who(self.store, user.id, chat_id), job.id)
        return True

    def allowed_size(self, size: int, chat_id: int, lang: str, reply_to: int | None) -> int:
        """``size``, or the largest size this host offers when it is above them (a rerun of an old job,
        a setting from before a smaller limit), with a word to the user: its memory would not fit."""
        largest = max(self.size_choices, default=self.default_size)
        if size <= largest:
            return size
        log.info("a %d px job clamped to %d px: the host's memory limit", size, largest)
        self.tg.send_text(chat_id, texts.t(lang, "size_clamped", asked=size, size=largest), reply_to=reply_to)
        return largest

    def rate_limited_for(self, user_id: int, size: int | None = None) -> int | None:
        """Minutes until the user may queue a job of ``size`` (work, jobs/quota.py), or ``None`` if now."""
        if self.rate_limit <= 0:
            return None
        now = time.time()
        spent = self.store.work_since(user_id, now - quota.WINDOW, self.default_size)
        cost = quota.job_cost(size or self.default_size, self.default_size)
        return quota.quota_wait(spent, cost, self.rate_limit, now)

    def tell_rate_limited(
        self, chat_id: int, user_id: int, lang: str, size: int, wait: int, reply_to: int | None
    ) -> None:
        """The old message when even a default job would not fit; else say that this size costs more."""
        cost = quota.job_cost(size, self.default_size)
        if cost <= 1 or self.rate_limited_for(user_id, self.default_size) is not None:
            text = texts.t(lang, "rate_limited", limit=self.rate_limit, minutes=wait)
        else:
            text = texts.t(
                lang, "rate_limited_size", size=size, cost=f"{cost:g}", default=self.default_size, minutes=wait
            )
        self.tg.send_text(chat_id, text, reply_to=reply_to)

    # --- buttons -------------------------------------------------------
    def settings_keyboard(self, lang: str, s: UserSettings) -> types.InlineKeyboardMarkup:
        speed = self.speed.ticked(s.speed) if self.speed.offered else "off"
        return keyboards.settings_keyboard(lang, s, self.size_choices, speed)

    def stale(self, call: types.CallbackQuery) -> None:
        """A press that no longer means anything (old layout, forged, or out of its chat)."""
        self.answer(call, texts.t(self.lang(call.from_user), "stale_button"))

    def on_settings(self, call: types.CallbackQuery) -> None:
        data = keyboards.parse(keyboards.SETTINGS, call.data)
        what, value = (data["what"], data["value"]) if data else ("", "")
        lang = self.lang(call.from_user)
        settings = self.settings_for(call.from_user.id)
        if what == "size" and value.isdigit() and int(value) in self.size_choices:
            settings.size = int(value)
        elif what == "strength" and value in NAMED_STRENGTHS:
            settings.strength = NAMED_STRENGTHS[value]
        elif what == "colors" and value in ("0", "1"):
            settings.keep_colors = value == "1"
        elif what == "speed" and self.speed.chosen(value):
            settings.speed = value
        else:
            self.stale(call)
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

    def own_job(self, call: types.CallbackQuery, factory: CallbackData) -> Job | None:
        """The job a result button names, if it is this user's and was painted in this chat.

        Anything else (malformed data, a job gone after /forget, a button replayed
        elsewhere) is answered as stale and gives ``None``.
        """
        data = keyboards.parse(factory, call.data)
        job = self.store.get_job(data["job_id"]) if data and data["job_id"] else None
        # Both the user and the chat must match: a button acts only where its job painted.
        if (
            job is None
            or job.user_id != call.from_user.id
            or call.message is None
            or job.chat_id != call.message.chat.id
        ):
            in_chat = job is not None and call.message is not None and job.chat_id == call.message.chat.id
            if in_chat and job is not None:  # someone else's result in a group: say whose, do nothing
                self.answer(call, not_yours(self.lang(call.from_user), call.message))
                return None
            self.stale(call)
            return None
        return job

    def on_rerun(self, call: types.CallbackQuery) -> None:
        """ "Stronger"/"Weaker": the same pair again, one step along the strength ladder."""
        job = self.own_job(call, keyboards.RERUN)
        if job is None:
            return
        lang = self.lang(call.from_user)
        direction = (keyboards.parse(keyboards.RERUN, call.data) or {}).get("direction")
        if direction not in keyboards.DIRECTIONS:
            self.stale(call)
            return
        strength = next_strength(job.strength, +1 if direction == "stronger" else -1)
        if strength is None:
            which = "strongest" if direction == "stronger" else "weakest"
            self.answer(call, texts.t(lang, "strength_limit", which=texts.t(lang, which)))
            return
        self.answer(call)
        self.submit(
            job.chat_id,
            call.from_user,
            job.content_file_id,
            job.style_file_id,
            strength=strength,
            size=job.size,
            keep_colors=job.keep_colors,
            reply_to=job.reply_to_message_id,
            style_slug=job.style_slug,
            style2_file_id=job.style2_file_id,
            style2_slug=job.style2_slug,
            mix=job.mix,
            speed=job.speed,
            shown_from=job.id,
        )

    def on_restyle(self, call: types.CallbackQuery) -> None:
        """ "Another style": keep the photo, ask for a style again."""
        job = self.own_job(call, keyboards.RESTYLE)
        if job is None:
            return
        self.answer(call)
        self.store.set_dialog(Dialog(call.from_user.id, STEP_STYLE, job.content_file_id, job.chat_id))
        if self.store.recent_styles(call.from_user.id):
            self.ask_style(job.chat_id, call.from_user)
        elif not self.gallery.show(
            job.chat_id, self.lang(call.from_user), texts.t(self.lang(call.from_user), "another_style_gallery")
        ):
            self.tg.send_text(job.chat_id, texts.t(self.lang(call.from_user), "another_style"))

    def on_full(self, call: types.CallbackQuery) -> None:
        """ "Full quality file": the PNG kept on disk, or why it is gone."""
        job = self.own_job(call, keyboards.FULL)
        if job is None:
            return
        self.answer(call)
        path = result_path(self.results_dir, job.id)
        if path.is_file():
            self.tg.send_document(
                job.chat_id, path.read_bytes(), f"stylized-{job.id}.png", reply_to=job.reply_to_message_id
            )
        else:
            self.tg.send_text(
                job.chat_id,
                texts.t(self.lang(call.from_user), "full_quality_gone", hours=RESULT_HOURS),
                reply_to=job.reply_to_message_id,
            )

    def on_timelapse(self, call: types.CallbackQuery) -> None:
        """ "How it was painted": the timelapse GIF kept beside the result, or why it is gone."""
        job = self.own_job(call, keyboards.LAPSE)
        if job is None:
            return
        self.answer(call)
        path = timelapse_path(self.results_dir, job.id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # swept after RESULT_HOURS, or forgotten
            self.tg.send_text(
                job.chat_id,
                texts.t(self.lang(call.from_user), "timelapse_gone", hours=RESULT_HOURS),
                reply_to=job.reply_to_message_id,
            )
            return
        self.tg.send_animation(job.chat_id, data, f"painting-{job.id}.gif", reply_to=job.reply_to_message_id)

    def on_recent_style(self, call: types.CallbackQuery) -> None:
        user = call.from_user.id
        if call.message is None:  # no chat to act in
            self.stale(call)
            return
        chat_id = call.message.chat.id
        # Recent styles are the user's own; the photo comes from this chat's dialog only.
        dialog = self.store.get_dialog(user, chat_id)
        recent = self.store.recent_styles(user)
        n = (keyboards.parse(keyboards.RECENT_STYLE, call.data) or {}).get("n", "")
        if (
            dialog.step not in (STEP_STYLE, STEP_MIX)
            or not dialog.content_file_id
            or not n.isdigit()
            or not 1 <= int(n) <= len(recent)
        ):
            self.stale(call)
            return
        self.answer(call)
        style = recent[int(n) - 1]
        if dialog.step == STEP_MIX:  # the second style of a mix
            if self.mix.submit_mix(chat_id, call.from_user, dialog, style.file_id, self.gallery.slug_of(style.file_id)):
                self.store.remember_style(user, style.file_id, style.thumb_file_id)
                self.store.reset_dialog(user, chat_id)
            return
        if self.submit(
            chat_id,
            call.from_user,
            dialog.content_file_id,
            style.file_id,
            style_slug=self.gallery.slug_of(style.file_id),  # a gallery style keeps its credit
            reply_to=picker_reply_to(call),
        ):
            self.store.remember_style(user, style.file_id, style.thumb_file_id)
            self.store.reset_dialog(user, chat_id)

    def on_gallery_pick(self, call: types.CallbackQuery) -> None:
        """A gallery style picked: it becomes the style of the presser's own dialog in this chat.

        Whose sheet it was does not matter (in a group anyone may pick for their own photo); a press
        with no photo waiting in this chat, or naming a style no longer in the gallery, is stale.
        """
        if call.message is None:
            self.stale(call)
            return
        user, chat_id = call.from_user.id, call.message.chat.id
        slug = (keyboards.parse(keyboards.GALLERY, call.data) or {}).get("slug", "")
        style = self.gallery.style(slug)
        dialog = self.store.get_dialog(user, chat_id)
        if style is None or dialog.step not in (STEP_STYLE, STEP_MIX) or not dialog.content_file_id:
            self.stale(call)
            return
        self.answer(call)
        lang = self.lang(call.from_user)
        reply_to = picker_reply_to(call)
        file_id, thumb = self.gallery.style_file_id(chat_id, lang, style, reply_to=reply_to)
        mixing = dialog.step == STEP_MIX  # the second style of a mix
        if (
            self.mix.submit_mix(chat_id, call.from_user, dialog, file_id, style.slug)
            if mixing
            else self.submit(
                chat_id, call.from_user, dialog.content_file_id, file_id, style_slug=style.slug, reply_to=reply_to
            )
        ):
            self.store.remember_style(user, file_id, thumb)
            self.store.reset_dialog(user, chat_id)

    def on_gallery_page(self, call: types.CallbackQuery) -> None:
        """◀ ▶ under the gallery sheet: the same message shows another page."""
        page = (keyboards.parse(keyboards.GALLERY_PAGE, call.data) or {}).get("page", "")
        if call.message is None or not page.isdigit() or not 0 <= int(page) < self.gallery.pages():
            self.stale(call)
            return
        self.answer(call)
        self.gallery.turn(
            call.message.chat.id, call.message.message_id, call.message.caption, self.lang(call.from_user), int(page)
        )

    def answer(self, call: types.CallbackQuery, text: str | None = None) -> None:
        try:
            self.tg.call(self.bot.answer_callback_query, call.id, text)
        except TelegramError as exc:  # too old to answer: the user just sees a spinner stop
            log.info("answer_callback_query: %s", exc.description)


def next_strength(current: float, direction: int) -> float | None:
    """The next step up or down the strength ladder, or ``None`` at its end."""
    ladder = sorted(set(STRENGTHS) | {current})
    index = ladder.index(current) + direction
    if not 0 <= index < len(ladder):
        return None
    return ladder[index]

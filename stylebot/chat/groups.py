"""groups: the dialog in group chats, within Telegram's privacy mode.

Why a flow of its own: in a group the bot sees only commands, replies to its own
messages and mentions of it, so the private "send a photo, then a style" cannot
work there. Instead a user replies ``/style`` to a photo (or captions a photo
``/style``); the bot answers with a ``ForceReply(selective=True)`` prompt replying
to that user, whose reply (the style picture) is then delivered to the bot. Every
answer and the result reply to the user's own message, and only that user's
presses act on their buttons. Dialogs are per (chat, user) as everywhere.

:mod:`stylebot.chat.routing` registers these handlers before the private ones.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import telebot
from telebot import types

from stylebot import texts
from stylebot.chat import keyboards
from stylebot.chat.filters import incoming_image, sender
from stylebot.chat.handlers import Handlers, not_yours
from stylebot.errors import TelegramError, UserGone
from stylebot.jobs.results import RESULT_HOURS
from stylebot.store.base import STEP_MIX, STEP_STYLE, Dialog

log = logging.getLogger(__name__)

#: Telegram's chat types where the group flow applies.
GROUP_CHATS = ["group", "supergroup"]
#: The command that starts the group flow; a contract (users type it).
STYLE_COMMAND = "style"

_COMMAND = re.compile(r"^/(\w+)(?:@(\w+))?")


def in_group(message: types.Message | types.InaccessibleMessage | None) -> bool:
    return message is not None and message.chat.type in GROUP_CHATS


def is_group_call(call: types.CallbackQuery) -> bool:
    """A button press on a message in a group (routing: the group variants of some buttons)."""
    return in_group(call.message)


def command_of(message: types.Message) -> tuple[str, str | None] | None:
    """``(command, addressee)`` of a text or a caption starting with ``/command[@bot]``, lower-cased."""
    match = _COMMAND.match(message.text or message.caption or "")
    if match is None:
        return None
    return match.group(1).lower(), (match.group(2) or "").lower() or None


class GroupHandlers:
    """Group-chat handlers over the shared :class:`Handlers` (its store, queue, Telegram and submit)."""

    def __init__(self, h: Handlers) -> None:
        self.h = h
        self._username: str | None = None

    # --- helpers -------------------------------------------------------
    def username(self) -> str:
        """The bot's @username, lower-cased (getMe once; telebot caches it)."""
        if self._username is None:
            try:
                self._username = (self.h.bot.user.username or "").lower()
            except Exception as exc:  # no answer now: treat every addressee as someone else, ask again later
                log.info("getMe failed: %s", exc)
                return ""
        return self._username

    def for_another_bot(self, message: types.Message) -> bool:
        """``/cmd@otherbot``: Telegram delivers it only to an admin bot; it is never ours to answer."""
        command = command_of(message)
        return in_group(message) and command is not None and command[1] is not None and command[1] != self.username()

    def is_style_command(self, message: types.Message) -> bool:
        command = command_of(message)
        return in_group(message) and command is not None and command[0] == STYLE_COMMAND

    def replies_to_us(self, message: types.Message) -> bool:
        """A reply to one of the bot's own messages (a prompt, a result, a hint)."""
        replied = message.reply_to_message
        return (
            replied is not None
            and replied.from_user is not None
            and replied.from_user.is_bot
            and (replied.from_user.username or "").lower() == self.username()
        )

    def mentions_us(self, message: types.Message) -> bool:
        return bool(self.username()) and f"@{self.username()}" in (message.text or message.caption or "").lower()

    def addressed(self, message: types.Message) -> bool:
        """Worth a hint: a mention of the bot, or a picture sent in reply to it (a style gone astray).

        A plain reply to the bot's message is chatter ("thanks bot" to a result, "lol" to an old
        prompt): people answer each other under the bot's messages, and a hint to each would flood
        the group, so such replies get no answer.
        """
        if self.mentions_us(message):
            return True
        return self.replies_to_us(message) and incoming_image(message) is not None

    def reply(self, message: types.Message, key: str, markup=None, **values: object) -> types.Message | None:
        text = texts.t(self.h.lang(message.from_user), key, **values)
        return self.h.tg.send_text(message.chat.id, text, markup, reply_to=message.message_id)

    # --- commands ------------------------------------------------------
    def ignore(self, message: types.Message) -> None:
        """Someone else's business (another bot's command, a chat message not for us): no answer."""

    def start(self, message: types.Message) -> None:
        self.h.store.reset_dialog(sender(message).id, message.chat.id)
        self.reply(message, "group_start")

    def help(self, message: types.Message) -> None:
        size = self.h.settings_for(sender(message).id).size
        self.reply(message, "group_help", size=size, hours=RESULT_HOURS)

    def settings(self, message: types.Message) -> None:
        """Settings are per user; a keyboard in a group would be everyone's to press, so: privately."""
        self.reply(message, "group_settings_private")

    def forget(self, message: types.Message) -> None:
        """``/forget`` in a group: not done in public (the confirmation would tell the group), but privately.

        The README promises /forget in a private chat; here the user is only pointed there, and nothing
        is deleted, so a stray ``/forget`` in a busy group cannot wipe anyone's data unasked.
        """
        self.reply(message, "group_forget_private")

    def unknown_command(self, message: types.Message) -> None:
        """Every bot in a group sees a bare ``/cmd``; answer only one addressed to us by name."""
        command = command_of(message)
        if command is not None and command[1] is not None:
            self.reply(message, "unknown_command")

    def style(self, message: types.Message) -> None:
        """``/style`` as a reply to a photo, or as a photo's caption: that photo is this user's content."""
        target = message if incoming_image(message) is not None else message.reply_to_message
        image = incoming_image(target) if target is not None else None
        if image is None:
            self.reply(message, "group_style_howto")
            return
        if not self.h.check_image(message, image):
            return
        user = sender(message)
        self.h.store.set_dialog(Dialog(user.id, STEP_STYLE, image.file_id, message.chat.id))
        self.prompt_style(message.chat.id, user, message.message_id)

    def prompt_style(self, chat_id: int, user: types.User, reply_to: int | None) -> None:
        """Ask this user (only) for the style: a ForceReply, so their answer reaches us under privacy mode.

        Then the pickers (recent styles; the gallery hooks in here too), replying to the same message
        so their buttons carry their owner (see :func:`not_yours`).
        """
        lang = self.h.lang(user)
        markup = types.ForceReply(selective=True)
        self.h.tg.send_text(
            chat_id, texts.t(lang, "group_style_prompt", name=user.first_name), markup, reply_to=reply_to
        )
        # The gallery: anyone may pick from a sheet, for their own photo (Handlers.on_gallery_pick).
        self.h.gallery.show(chat_id, lang, texts.t(lang, "gallery_caption"), reply_to=reply_to)
        recent = self.h.store.recent_styles(user.id)
        if recent:
            self._recent_picker(chat_id, lang, recent, reply_to)

    def _recent_picker(self, chat_id: int, lang: str, recent: list, reply_to: int | None) -> None:
        thumbs = [s.thumb_file_id or s.file_id for s in recent]
        replying = (
            {}
            if reply_to is None
            else {"reply_parameters": types.ReplyParameters(reply_to, allow_sending_without_reply=True)}
        )
        try:
            if len(thumbs) == 1:
                self.h.tg.call(self.h.bot.send_photo, chat_id, thumbs[0], caption="1", **replying)
            else:
                media = [types.InputMediaPhoto(f, caption=str(n)) for n, f in enumerate(thumbs, 1)]
                self.h.tg.call(self.h.bot.send_media_group, chat_id, media, **replying)
        except UserGone:
            raise
        except TelegramError as exc:  # an expired thumbnail must not block the dialog
            log.info("recent styles preview failed: %s", exc.description)
        markup = keyboards.recent_style_buttons(lang, len(recent))
        self.h.tg.send_text(chat_id, texts.t(lang, "ask_style_recent"), markup, reply_to=reply_to)

    # --- images and the rest ---------------------------------------------
    def style_reply(self, message: types.Message) -> None:
        """The user's style picture (a reply to the prompt): a job whose answers reply to this message."""
        image = incoming_image(message)
        user, chat = sender(message), message.chat.id
        dialog = self.h.store.get_dialog(user.id, chat)
        if image is None or dialog.content_file_id is None:
            self.other(message)
            return
        if not self.h.check_image(message, image):
            return
        if self.h.submit(chat, user, dialog.content_file_id, image.file_id, reply_to=message.message_id):
            self.h.store.remember_style(user.id, image.file_id, image.thumb_file_id)
            self.h.store.reset_dialog(user.id, chat)

    def other(self, message: types.Message) -> None:
        """Anything else in a group: quiet, unless it was said to us; then a short hint (never the
        private-chat texts, which would tell a whole group to "send a photo")."""
        if not self.addressed(message):
            return
        dialog = self.h.store.get_dialog(sender(message).id, message.chat.id)
        if dialog.step == STEP_STYLE and dialog.content_file_id:
            self.reply(message, "group_send_picture")
        else:
            self.reply(message, "group_style_howto")

    # --- buttons -------------------------------------------------------
    def on_restyle(self, call: types.CallbackQuery) -> None:
        """ "Another style" in a group: keep the photo, prompt this user again with a ForceReply."""
        job = self.h.own_job(call, keyboards.RESTYLE)
        if job is None:
            return
        self.h.answer(call)
        self.h.store.set_dialog(Dialog(call.from_user.id, STEP_STYLE, job.content_file_id, job.chat_id))
        self.prompt_style(job.chat_id, call.from_user, job.reply_to_message_id)

    def someone_elses(self, call: types.CallbackQuery) -> bool:
        """A picker in a group replies to its owner's message: a press by anyone else is told whose it is."""
        replied: types.Message | None = getattr(call.message, "reply_to_message", None)
        if replied is not None and replied.from_user is not None and replied.from_user.id != call.from_user.id:
            self.h.answer(call, not_yours(self.h.lang(call.from_user), call.message))
            return True
        return False

    def on_recent_style(self, call: types.CallbackQuery) -> None:
        """A recent-style picker in a group shows its owner's styles: only they may pick from it."""
        if not self.someone_elses(call):
            self.h.on_recent_style(call)  # replies to the owner's message (``picker_reply_to``)

    def on_gallery_pick(self, call: types.CallbackQuery) -> None:
        """A gallery sheet in a group is its owner's, like every other button there (not "out of date")."""
        if not self.someone_elses(call):
            self.h.on_gallery_pick(call)

    def on_gallery_page(self, call: types.CallbackQuery) -> None:
        """Turning someone else's sheet would turn it for them too: only its owner may."""
        if not self.someone_elses(call):
            self.h.on_gallery_page(call)


def register_groups(
    bot: telebot.TeleBot,
    h: Handlers,
    guard: Callable[[Callable[..., None]], Callable[..., None]],
    commands: tuple[str, ...],
) -> None:
    """The group handlers, registered before the private ones (telebot uses the first match).

    ``commands``: the bot's commands; those without a group handler here (/cancel) fall
    through to the shared handlers, any other is answered only when addressed to the bot by name.
    """
    gh = GroupHandlers(h)
    media = ["photo", "document"]
    everything = list(telebot.util.content_type_media)
    on = bot.register_message_handler
    on(guard(gh.ignore), chat_types=GROUP_CHATS, func=gh.for_another_bot, content_types=everything)
    on(guard(gh.start), chat_types=GROUP_CHATS, commands=["start"])
    on(guard(gh.help), chat_types=GROUP_CHATS, commands=["help"])
    on(guard(gh.settings), chat_types=GROUP_CHATS, commands=["settings"])
    on(guard(gh.forget), chat_types=GROUP_CHATS, commands=["forget"])
    on(guard(gh.style), chat_types=GROUP_CHATS, func=gh.is_style_command, content_types=["text", *media])
    on(
        guard(gh.unknown_command),
        chat_types=GROUP_CHATS,
        func=lambda m: (m.text or "").startswith("/") and (command_of(m) or ("", None))[0] not in commands,
    )
    on(guard(gh.style_reply), chat_types=GROUP_CHATS, content_types=media, image=True, step=STEP_STYLE)
    on(guard(h.mix.second_style), chat_types=GROUP_CHATS, content_types=media, image=True, step=STEP_MIX)
    on(
        guard(gh.other),
        chat_types=GROUP_CHATS,
        func=lambda m: not (m.text or "").startswith("/"),
        content_types=everything,
    )
    cb = bot.register_callback_query_handler
    cb(guard(gh.on_restyle), is_group_call, button=keyboards.RESTYLE.filter())
    cb(guard(gh.on_recent_style), is_group_call, button=keyboards.RECENT_STYLE.filter())
    cb(guard(gh.on_gallery_pick), is_group_call, button=keyboards.GALLERY.filter())
    cb(guard(gh.on_gallery_page), is_group_call, button=keyboards.GALLERY_PAGE.filter())

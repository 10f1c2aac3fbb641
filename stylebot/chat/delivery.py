"""delivery: the chat layer's side of :class:`stylebot.jobs.ports.Delivery`.

Jobs hand over a finished, encoded painting or a refusal; this module chooses the message kind,
adds the result's buttons (``keyboards.result_buttons``) and moves the user's dialog, so that the
worker knows nothing of keyboards or dialog steps.
"""

from __future__ import annotations

from stylebot.chat.keyboards import result_buttons
from stylebot.jobs.job import Job
from stylebot.jobs.ports import Rendered
from stylebot.store.base import STEP_STYLE, Dialog, StateStore
from stylebot.tg import Telegram


class ChatDelivery:
    """Implements :class:`stylebot.jobs.ports.Delivery` over the Bot API and the store's dialogs."""

    def __init__(self, tg: Telegram, store: StateStore) -> None:
        self.tg = tg
        self.store = store

    def send_result(self, job: Job, rendered: Rendered) -> None:
        markup = result_buttons(job, full=rendered.full, lapse=rendered.lapse)
        reply_to = job.reply_to_message_id
        if rendered.jpeg is not None:
            self.tg.send_photo(job.chat_id, rendered.jpeg, caption=rendered.caption, markup=markup, reply_to=reply_to)
        else:
            name = f"stylized-{job.id}.png"
            self.tg.send_document(
                job.chat_id, rendered.png, name, caption=rendered.caption, markup=markup, reply_to=reply_to
            )

    def refuse_input(self, job: Job, keep_photo: bool, text: str) -> None:
        if keep_photo:
            self.store.set_dialog(Dialog(job.user_id, STEP_STYLE, job.content_file_id, job.chat_id))
        else:
            self.store.reset_dialog(job.user_id, job.chat_id)
        self.tg.send_text(job.chat_id, text, reply_to=job.reply_to_message_id)

"""The Dispatcher: each sender's updates strictly in order; a stalled sender holds up no one else.

In-process: the dispatcher only calls ``bot.process_new_updates``, so a small recorder stands in
for the bot. Waits use threading.Event with generous timeouts; no sleep decides a result.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator

import pytest
from telebot import types

from stylebot.chat.dispatcher import Dispatcher

WAIT = 10.0


def update(update_id: int, user_id: int, text: str) -> types.Update:
    return types.Update.de_json(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 0,
                "chat": {"id": user_id, "type": "private"},
                "from": {"id": user_id, "is_bot": False, "first_name": "U"},
                "text": text,
            },
        }
    )


class Recorder:
    """Stands in for telebot: records each sender's texts in the order they were run."""

    def __init__(self, expected: int, hook: Callable[[types.Message], None] | None = None) -> None:
        self.seen: dict[int, list[str]] = defaultdict(list)
        self.expected = expected
        self.done = threading.Event()
        self.hook = hook
        self._lock = threading.Lock()
        self._count = 0

    def process_new_updates(self, updates: list[types.Update]) -> None:
        for u in updates:
            message = u.message
            assert message is not None and message.from_user is not None
            if self.hook is not None:
                self.hook(message)
            with self._lock:
                self.seen[message.from_user.id].append(message.text or "")
                self._count += 1
                if self._count >= self.expected:
                    self.done.set()


@pytest.fixture
def dispatchers() -> Iterator[list[Dispatcher]]:
    made: list[Dispatcher] = []
    yield made
    for d in made:
        d.stop()


def test_each_sender_strictly_in_order_with_many_senders_interleaved(dispatchers: list[Dispatcher]) -> None:
    senders, per_sender = 40, 25
    rng = random.Random(12)

    def jitter(_message: types.Message) -> None:  # vary the work so threads overtake each other
        sum(range(rng.randrange(0, 20_000)))

    bot = Recorder(senders * per_sender, jitter)
    dispatcher = Dispatcher(bot, shards=4, max_threads=8)  # type: ignore[arg-type]
    dispatchers.append(dispatcher)
    counters = dict.fromkeys(range(1, senders + 1), 0)
    batch: list[types.Update] = []
    update_id = 0
    while any(n < per_sender for n in counters.values()):
        user = rng.choice([u for u, n in counters.items() if n < per_sender])
        update_id += 1
        batch.append(update(update_id, user, str(counters[user])))
        counters[user] += 1
        if len(batch) >= rng.randrange(1, 6):  # batches of various sizes, as getUpdates returns them
            dispatcher.dispatch(batch)
            batch = []
    dispatcher.dispatch(batch)
    assert bot.done.wait(WAIT), f"only {sum(map(len, bot.seen.values()))} updates ran"
    assert set(bot.seen) == set(counters)
    for user, texts in bot.seen.items():
        assert texts == [str(n) for n in range(per_sender)], f"sender {user} out of order: {texts}"


def test_a_blocked_sender_does_not_block_another(dispatchers: list[Dispatcher]) -> None:
    stalled, release = threading.Event(), threading.Event()
    other_ran = threading.Event()

    def hook(message: types.Message) -> None:
        if message.text == "stall":
            stalled.set()
            assert release.wait(WAIT)
        elif message.from_user is not None and message.from_user.id == 2:
            other_ran.set()

    bot = Recorder(expected=3, hook=hook)
    dispatcher = Dispatcher(bot, shards=1, max_threads=4)  # type: ignore[arg-type]
    dispatchers.append(dispatcher)
    dispatcher.dispatch([update(1, 1, "stall"), update(2, 1, "after")])
    assert stalled.wait(WAIT)
    dispatcher.dispatch([update(3, 2, "hello")])  # the only thread is busy: the pool grows for sender 2
    assert other_ran.wait(WAIT), "sender 2 waited behind sender 1's stalled update"
    assert bot.seen[1] == []  # sender 1's second update still waits its turn behind the first
    release.set()
    assert bot.done.wait(WAIT)
    assert bot.seen[1] == ["stall", "after"] and bot.seen[2] == ["hello"]


def photo_update(update_id: int, user_id: int, caption: str) -> types.Update:
    """A message with a photo: the heavy lane's kind of work (it is checked and decoded)."""
    message = {
        "message_id": update_id,
        "date": 0,
        "chat": {"id": user_id, "type": "private"},
        "from": {"id": user_id, "is_bot": False, "first_name": "U"},
        "caption": caption,
        "photo": [{"file_id": f"p{update_id}", "file_unique_id": f"u{update_id}", "width": 9, "height": 9}],
    }
    return types.Update.de_json({"update_id": update_id, "message": message})


def test_a_command_is_not_held_behind_a_burst_of_pictures(dispatchers: list[Dispatcher]) -> None:
    """Every picture thread held (decodes waiting for the budget): a new sender's /start still runs,
    and a picture sender's own command still waits behind its picture (order kept across lanes)."""
    held, release, start_ran = threading.Barrier(3), threading.Event(), threading.Event()

    def hook(message: types.Message) -> None:
        if message.photo:
            held.wait(WAIT)  # both heavy threads taken
            assert release.wait(WAIT)
        elif message.text == "/start":
            start_ran.set()

    bot = Recorder(expected=4, hook=hook)
    dispatcher = Dispatcher(bot, shards=1, max_threads=2)  # type: ignore[arg-type]
    dispatchers.append(dispatcher)
    dispatcher.dispatch([photo_update(1, 1, "a"), photo_update(2, 2, "b"), update(3, 1, "/help")])
    held.wait(WAIT)
    dispatcher.dispatch([update(4, 3, "/start")])
    assert start_ran.wait(WAIT), "a /start waited behind the pictures"
    assert bot.seen[1] == []  # sender 1's /help waits for its own picture
    release.set()
    assert bot.done.wait(WAIT)
    assert bot.seen[1] == ["", "/help"] and bot.seen[3] == ["/start"]

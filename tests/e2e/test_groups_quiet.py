"""Groups stay quiet and private (issue 18): chatter replying to the bot's messages gets no answer,
someone else's gallery sheet says whose it is, and /forget in a group only points to the private chat.

Driven like tests/e2e/test_groups.py: the emulator delivers what privacy mode delivers, the real bot
answers over HTTP. "No answer" is checked by message id against a later message that is answered.
"""

from __future__ import annotations

from botkit import User, picture, wait_until

from stylebot import texts
from stylebot.playground.emulator import BotAPIEmulator

GROUP = -100888
ANN, BOB = 3201, 3202
HOWTO = texts.t("en", "group_style_howto")


def group_messages(api: BotAPIEmulator) -> list[dict]:
    return api.bot_messages(GROUP)


def reply_to(api: BotAPIEmulator, message: dict, fragment: str = "", photo: bool = False) -> dict:
    """The bot's message in the group replying to ``message`` (containing ``fragment``; a photo if asked)."""

    def find() -> dict | None:
        for m in group_messages(api):
            if (
                (m.get("reply_to_message") or {}).get("message_id") == message["message_id"]
                and fragment in (m.get("text") or m.get("caption") or "")
                and (m.get("photo") is not None) >= photo
            ):
                return m
        return None

    return wait_until(find, 90, what=f"a reply to message {message['message_id']} with {fragment!r}", api=api)


def answers(api: BotAPIEmulator) -> list[str]:
    return [c.params.get("text") or "" for c in api.calls("answerCallbackQuery") if c.status == 200]


def last_id(api: BotAPIEmulator) -> int:
    return max((m["message_id"] for m in group_messages(api)), default=0)


def quiet_since(api: BotAPIEmulator, since: int, user: int) -> None:
    """Nothing the bot sent after ``since`` but the answer to ``user``'s /help, sent now as a marker."""
    marker = api.send_text(user, "/help", chat_id=GROUP, first_name="Marker")
    reply_to(api, marker, "/style")
    sent = [m for m in group_messages(api) if m["message_id"] > since]
    assert len(sent) == 1, [m.get("text") or m.get("caption") for m in sent]


def test_chatter_replying_to_the_bot_gets_no_answer(make_bot, emulator: BotAPIEmulator) -> None:
    app = make_bot()
    api = emulator
    photo = api.send_photo(ANN, picture((120, 80)), caption="/style", chat_id=GROUP, first_name="Ann")
    prompt = reply_to(api, photo, "Got the photo, Ann")
    before = last_id(api)
    # "lol" to the prompt (hers and someone else's), "thanks" under it: chatter, no answer.
    api.send_text(ANN, "lol", chat_id=GROUP, reply_to=prompt["message_id"], first_name="Ann")
    api.send_text(BOB, "thanks bot", chat_id=GROUP, reply_to=prompt["message_id"], first_name="Bob")
    quiet_since(api, before, BOB)

    # Her picture in reply to her prompt still makes a job, and its result replies to her.
    style = api.send_photo(
        ANN, picture((60, 60), (20, 20, 220)), chat_id=GROUP, reply_to=prompt["message_id"], first_name="Ann"
    )
    result = reply_to(api, style, photo=True, fragment="px")
    before = last_id(api)
    api.send_text(ANN, "thanks bot", chat_id=GROUP, reply_to=result["message_id"], first_name="Ann")
    api.send_text(BOB, "lol", chat_id=GROUP, reply_to=prompt["message_id"], first_name="Bob")  # an old prompt
    quiet_since(api, before, ANN)
    assert len(app.store.jobs_created_since(ANN, 0)) == 1 and not app.store.jobs_created_since(BOB, 0)

    # A mention, a command, or a picture sent in reply to the bot is still answered.
    mention = api.send_text(BOB, "hey @style_test_bot how?", chat_id=GROUP)
    reply_to(api, mention, HOWTO)
    picture_reply = api.send_photo(
        BOB, picture((60, 40)), chat_id=GROUP, reply_to=result["message_id"], first_name="Bob"
    )
    reply_to(api, picture_reply, HOWTO)
    command = api.send_text(BOB, "/start", chat_id=GROUP, reply_to=result["message_id"], first_name="Bob")
    reply_to(api, command, "In a group")


def test_someone_elses_gallery_sheet_says_whose_it_is(make_bot, emulator: BotAPIEmulator) -> None:
    app = make_bot()
    api = emulator
    photo = api.send_photo(ANN, picture((120, 80)), caption="/style", chat_id=GROUP, first_name="Ann")
    sheet = reply_to(api, photo, texts.t("en", "gallery_caption"), photo=True)
    # Bob, with no photo waiting, and then with his own: Ann's sheet is hers either way.
    pick = User(api, BOB).button(sheet, "gal:")
    api.press_button(BOB, sheet["message_id"], pick, chat_id=GROUP)
    wait_until(lambda: "These buttons belong to Ann." in answers(api), 60, what="Bob's answer", api=api)
    bob_photo = api.send_photo(BOB, picture((64, 96)), caption="/style", chat_id=GROUP, first_name="Bob")
    reply_to(api, bob_photo, "Got the photo, Bob")
    api.press_button(BOB, sheet["message_id"], pick, chat_id=GROUP)
    api.press_button(BOB, sheet["message_id"], User(api, BOB).button(sheet, "galp:"), chat_id=GROUP)
    wait_until(
        lambda: answers(api).count("These buttons belong to Ann.") == 3, 60, what="two more answers naming Ann", api=api
    )
    assert texts.t("en", "stale_button") not in answers(api)
    assert not api.calls("editMessageMedia")  # the sheet was not turned for Ann
    assert not app.store.jobs_created_since(BOB, 0)
    # Ann's own press paints for her.
    api.press_button(ANN, sheet["message_id"], pick, chat_id=GROUP)
    wait_until(lambda: app.store.jobs_created_since(ANN, 0), 60, what="Ann's job", api=api)


def test_forget_in_a_group_points_to_the_private_chat_and_deletes_nothing(make_bot, emulator: BotAPIEmulator) -> None:
    app = make_bot()
    api = emulator
    photo = api.send_photo(ANN, picture((120, 80)), caption="/style", chat_id=GROUP, first_name="Ann")
    reply_to(api, photo, "Got the photo, Ann")
    forget = api.send_text(ANN, "/forget", chat_id=GROUP, first_name="Ann")
    answer = reply_to(api, forget, "private chat")
    assert answer["text"] == texts.t("en", "group_forget_private")
    assert texts.t("en", "forgotten") not in [m.get("text") for m in group_messages(api)]
    assert app.store.get_dialog(ANN, GROUP).content_file_id == photo["photo"][-1]["file_id"]
    # In the private chat it acts, as the README says.
    api.send_text(ANN, "/forget")
    User(api, ANN).wait_text(texts.t("en", "forgotten"))
    assert app.store.get_dialog(ANN, GROUP).content_file_id is None

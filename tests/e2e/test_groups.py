"""Group chats under Telegram's privacy mode, over HTTP: /style on a photo, a ForceReply prompt,
the style as a reply, results replying to their own user, buttons only for their owner."""

from __future__ import annotations

import json

from botkit import REPLY_S, User, picture, wait_until

from stylebot.playground.emulator import BotAPIEmulator

GROUP = -100777
ANN, BOB = 3101, 3102


def group_messages(api: BotAPIEmulator) -> list[dict]:
    return api.bot_messages(GROUP)


def reply_to(api: BotAPIEmulator, message: dict, fragment: str = "") -> dict:
    """Wait for the bot's message in the group that replies to ``message`` (and contains ``fragment``)."""

    def find() -> dict | None:
        for m in group_messages(api):
            if (m.get("reply_to_message") or {}).get("message_id") == message["message_id"] and fragment in (
                m.get("text") or m.get("caption") or ""
            ):
                return m
        return None

    return wait_until(find, 60, what=f"a reply to message {message['message_id']} with {fragment!r}", api=api)


def group_results(api: BotAPIEmulator) -> list[dict]:
    return [
        m
        for m in group_messages(api)
        if m.get("photo")
        and any(
            (b.get("callback_data") or "").startswith("rerun:")
            for row in (m.get("reply_markup") or {}).get("inline_keyboard", [])
            for b in row
        )
    ]


def delivered_message_ids(api: BotAPIEmulator) -> set[int]:
    """Group message ids the bot got as updates (from the answers to its getUpdates)."""
    ids = set()
    for call in api.calls("getUpdates"):
        for update in call.response.get("result", []) or []:
            message = update.get("message")
            if message and message["chat"]["id"] == GROUP:
                ids.add(message["message_id"])
    return ids


def answers(api: BotAPIEmulator) -> list[str]:
    return [c.params.get("text") or "" for c in api.calls("answerCallbackQuery") if c.status == 200]


def test_emulator_privacy_mode_delivers_only_what_is_addressed_to_the_bot(emulator: BotAPIEmulator):
    """No bot running: what reaches getUpdates is exactly Telegram's privacy-mode set."""
    api = emulator
    plain = api.send_photo(ANN, picture((60, 40)), chat_id=GROUP)
    chat = api.send_text(ANN, "nice one", chat_id=GROUP, reply_to=plain["message_id"])
    command = api.send_text(ANN, "/style", chat_id=GROUP, reply_to=plain["message_id"])
    other_bot = api.send_text(ANN, "/start@another_bot", chat_id=GROUP)
    ours = api.send_text(ANN, "/help@Style_Test_Bot", chat_id=GROUP)
    captioned = api.send_photo(ANN, picture((60, 40)), caption="/style", chat_id=GROUP)
    mention = api.send_text(ANN, "hey @style_test_bot", chat_id=GROUP)
    prompt = api.handle(
        "sendMessage",
        {
            "chat_id": str(GROUP),
            "text": "reply to me",
            "reply_parameters": json.dumps({"message_id": command["message_id"]}),
        },
        {},
    )
    answer = api.send_photo(BOB, picture((50, 50)), chat_id=GROUP, reply_to=prompt[1]["result"]["message_id"])
    private = api.send_photo(ANN, picture((60, 40)))

    updates = api.handle("getUpdates", {"timeout": "0"}, {})[1]["result"]
    got = [u["message"]["message_id"] for u in updates if u["message"]["chat"]["id"] == GROUP]
    assert got == [
        command["message_id"],
        ours["message_id"],
        captioned["message_id"],
        mention["message_id"],
        answer["message_id"],
    ]
    assert plain["message_id"] not in got and chat["message_id"] not in got and other_bot["message_id"] not in got
    assert any(u["message"]["message_id"] == private["message_id"] for u in updates if u["message"]["chat"]["id"] > 0)
    # Replies embed the whole replied-to message (one level deep); captions get their command entity.
    by_id = {u["message"]["message_id"]: u["message"] for u in updates}
    assert by_id[command["message_id"]]["reply_to_message"]["photo"] == plain["photo"]
    assert by_id[answer["message_id"]]["reply_to_message"]["from"]["is_bot"] is True
    assert "reply_to_message" not in by_id[answer["message_id"]]["reply_to_message"]
    assert by_id[captioned["message_id"]]["caption_entities"][0]["type"] == "bot_command"
    # Everything stays in the chat's history, delivered or not.
    assert {plain["message_id"], chat["message_id"], other_bot["message_id"]} <= {
        m["message_id"] for m in api.chat_history(GROUP)
    }


def test_two_users_interleaving_in_a_group_each_get_only_their_own_result(make_bot, emulator: BotAPIEmulator):
    app = make_bot()
    api = emulator
    ann_content, bob_content = (120, 80), (64, 96)  # landscape vs portrait: whose is whose shows in the result
    # Ann posts a photo (the bot does not see it), then replies /style to it.
    ann_photo = api.send_photo(ANN, picture(ann_content), chat_id=GROUP, first_name="Ann")
    ann_cmd = api.send_text(ANN, "/style", chat_id=GROUP, reply_to=ann_photo["message_id"], first_name="Ann")
    # Bob sends his photo with the caption /style (addressed by name).
    bob_photo = api.send_photo(
        BOB, picture(bob_content, (40, 200, 40)), caption="/style@style_test_bot", chat_id=GROUP, first_name="Bob"
    )
    ann_prompt = reply_to(api, ann_cmd, "Got the photo, Ann")
    bob_prompt = reply_to(api, bob_photo, "Got the photo, Bob")
    # The prompts ask only their own user to reply (ForceReply, selective).
    prompts = [
        json.loads(c.params["reply_markup"])
        for c in api.calls("sendMessage")
        if "force_reply" in str(c.params.get("reply_markup"))
    ]
    assert len(prompts) == 2 and all(p == {"force_reply": True, "selective": True} for p in prompts)
    assert ann_photo["message_id"] not in delivered_message_ids(api)

    # Bob answers first, then Ann, each by replying to their own prompt.
    bob_style = api.send_photo(
        BOB, picture((50, 50), (20, 20, 220)), chat_id=GROUP, reply_to=bob_prompt["message_id"], first_name="Bob"
    )
    ann_style = api.send_photo(
        ANN, picture((60, 60), (220, 120, 20)), chat_id=GROUP, reply_to=ann_prompt["message_id"], first_name="Ann"
    )
    wait_until(lambda: len(group_results(api)) >= 2, 180, what="two results in the group", api=api)
    # A third result (a mix-up) would be delivered before its job is recorded done: wait until
    # neither user has a job queued or running, then none may have come.
    wait_until(lambda: all(app.store.active_job(uid) is None for uid in (ANN, BOB)), REPLY_S, "both jobs to end", api)
    results = group_results(api)
    assert len(results) == 2
    by_user = {r["reply_to_message"]["from"]["id"]: r for r in results}
    assert set(by_user) == {ANN, BOB}
    assert by_user[ANN]["reply_to_message"]["message_id"] == ann_style["message_id"]
    assert by_user[BOB]["reply_to_message"]["message_id"] == bob_style["message_id"]
    for uid, (cw, ch) in ((ANN, ann_content), (BOB, bob_content)):
        image = User(api, uid).result_image(by_user[uid])
        assert abs(image.width / image.height - cw / ch) < 0.1, (uid, image.size)
        job = app.store.last_job(uid)
        assert job.chat_id == GROUP and len(app.store.jobs_created_since(uid, 0)) == 1
    assert app.store.last_job(ANN).content_file_id == ann_photo["photo"][-1]["file_id"]
    assert app.store.last_job(BOB).content_file_id == bob_photo["photo"][-1]["file_id"]
    assert not api.bot_messages(ANN) and not api.bot_messages(BOB)  # nothing in private chats

    # Bob pressing Ann's buttons: a short answer naming her, no job, no message.
    ann_job = app.store.last_job(ANN)
    # Counted by id, not by length: a job's status message may still be deleted after its result.
    last_id = max(m["message_id"] for m in group_messages(api))
    for data in (f"rerun:{ann_job.id}:stronger", f"restyle:{ann_job.id}", f"full:{ann_job.id}"):
        api.press_button(BOB, by_user[ANN]["message_id"], data, chat_id=GROUP)
    wait_until(
        lambda: sum("belong to Ann" in a for a in answers(api)) >= 3, REPLY_S, what="three short answers", api=api
    )
    # A later message of Bob's is answered: anything the presses caused would have been sent before it.
    bob_help = api.send_text(BOB, "/help", chat_id=GROUP, first_name="Bob")
    reply_to(api, bob_help, "/style")
    sent_since = [m for m in group_messages(api) if m["message_id"] > last_id]
    assert len(sent_since) == 1, sent_since  # the answer to Bob's /help, nothing from the presses
    assert len(app.store.jobs_created_since(ANN, 0)) == 1 and len(app.store.jobs_created_since(BOB, 0)) == 1

    # Ann's own "Another style" asks her again, under her message, with a ForceReply.
    api.press_button(ANN, by_user[ANN]["message_id"], f"restyle:{ann_job.id}", chat_id=GROUP)
    reply_to(api, ann_style, "Got the photo, Ann")
    # ... and a recent-style picker under her message, which Bob can't use.
    picker = reply_to(api, ann_style, "recent styles")
    api.press_button(BOB, picker["message_id"], "style:1", chat_id=GROUP)
    wait_until(
        lambda: sum("belong to Ann" in a for a in answers(api)) >= 4, REPLY_S, what="the picker's answer", api=api
    )
    assert len(app.store.jobs_created_since(BOB, 0)) == 1


def test_group_commands_hints_and_silence(make_bot, emulator: BotAPIEmulator):
    make_bot()
    api = emulator
    # Chatter not addressed to the bot: not even an update, so no answer.
    plain = api.send_photo(ANN, picture((60, 40)), chat_id=GROUP)
    api.send_text(ANN, "look at this", chat_id=GROUP, reply_to=plain["message_id"])
    api.send_text(ANN, "/start@another_bot", chat_id=GROUP)
    # /style with no photo: a short how-to, replying to the command.
    bare = api.send_text(ANN, "/style", chat_id=GROUP)
    howto = reply_to(api, bare, "Reply /style to a photo")
    start = api.send_text(ANN, "/start", chat_id=GROUP)
    assert "In a group" in reply_to(api, start, "/style")["text"]
    settings = api.send_text(ANN, "/settings", chat_id=GROUP)
    reply_to(api, settings, "private chat")
    # A picture that replies to the bot but with no dialog: a short hint, never the private-chat text.
    stray = api.send_photo(ANN, picture((60, 40)), chat_id=GROUP, reply_to=howto["message_id"])
    reply_to(api, stray, "Reply /style to a photo")
    # A bare unknown command is every bot's; no answer. The same addressed to us gets one.
    api.send_text(ANN, "/weather", chat_id=GROUP)
    named = api.send_text(ANN, "/weather@style_test_bot", chat_id=GROUP)
    reply_to(api, named, "don't know that command")
    texts = [m.get("text") or "" for m in group_messages(api)]
    assert len(texts) == 5, texts  # howto, start, settings, hint, unknown: nothing else
    assert not any("Send me the photo" in t or "Please send an image" in t for t in texts)
    assert plain["message_id"] not in delivered_message_ids(api)
    # Private /start stays the private text.
    api.send_text(ANN, "/start")
    User(api, ANN).wait_text("Send me the photo")


def test_gallery_pick_in_a_group_replies_to_its_user(make_bot, emulator: BotAPIEmulator):
    app = make_bot()
    api = emulator
    photo = api.send_photo(ANN, picture((120, 80)), caption="/style", chat_id=GROUP, first_name="Ann")
    reply_to(api, photo, "Got the photo, Ann")
    sheet = wait_until(
        lambda: next(
            (
                m
                for m in group_messages(api)
                if m.get("photo") and (m.get("reply_to_message") or {}).get("message_id") == photo["message_id"]
            ),
            None,
        ),
        60,
        what="the gallery sheet under Ann's photo",
        api=api,
    )
    pick = User(api, ANN).button(sheet, "gal:")
    api.press_button(ANN, sheet["message_id"], pick, chat_id=GROUP)
    wait_until(lambda: group_results(api), 120, what="the result of the gallery pick", api=api)
    result = group_results(api)[0]
    assert result["reply_to_message"]["message_id"] == photo["message_id"]
    job = app.store.last_job(ANN)
    assert job.chat_id == GROUP and job.style_slug == pick.split(":", 1)[1]
    assert job.reply_to_message_id == photo["message_id"]


def test_mix_with_another_style_works_in_a_group(make_bot, emulator: BotAPIEmulator):
    """Mixing in a group: the prompt is a selective ForceReply (so the picture reaches the bot under
    privacy mode) and the mixed result replies to the second style's message."""
    app = make_bot()
    api = emulator
    photo = api.send_photo(ANN, picture((120, 80)), caption="/style", chat_id=GROUP, first_name="Ann")
    prompt = reply_to(api, photo, "Got the photo, Ann")
    api.send_photo(ANN, picture((60, 60), (220, 120, 20)), chat_id=GROUP, reply_to=prompt["message_id"])
    wait_until(lambda: len(group_results(api)) >= 1, 180, what="the first result", api=api)
    first = group_results(api)[0]
    api.press_button(ANN, first["message_id"], User(api, ANN).button(first, "mixwith:"), chat_id=GROUP)
    ask = wait_until(
        lambda: next(
            (
                m
                for m in group_messages(api)
                if m["message_id"] > first["message_id"] and "mix" in (m.get("text") or "")
            ),
            None,
        ),
        60,
        what="the mix prompt",
        api=api,
    )
    sent = [c for c in api.calls("sendMessage") if "mix" in (c.params.get("text") or "")]
    assert json.loads(sent[-1].params["reply_markup"]) == {"force_reply": True, "selective": True}
    second = api.send_photo(ANN, picture((60, 60), (20, 200, 220)), chat_id=GROUP, reply_to=ask["message_id"])
    wait_until(lambda: len(group_results(api)) >= 2, 180, what="the mixed result", api=api)
    mixed = group_results(api)[1]
    assert mixed["reply_to_message"]["message_id"] == second["message_id"]
    job = app.store.last_job(ANN)
    assert job.style2_file_id == second["photo"][-1]["file_id"] and job.chat_id == GROUP
    assert not api.bot_messages(ANN)

"""Bad input, end to end: whatever a user sends, the bot answers kindly and the dialog stays put.

The real bot (``stylebot.app.App`` at ``STYLEBOT_IMAGE_SIZE=48``) talks HTTP to the
emulator; the user sends broken, huge, tiny, thin and non-image things, as
the photo and as the style, and then something good to show that the dialog
is still where it was. Odd-but-valid images (CMYK, 16-bit, alpha, palette,
animated, EXIF-rotated, HEIC, WebP) sent as files go all the way to a result.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from contextlib import contextmanager

import pytest
from botkit import REPLY_S, RESULT_S, TEST_SIZE, User, picture, wait_until
from PIL import Image

from stylebot import images
from stylebot.playground.emulator import BotAPIEmulator

#: "A clear, friendly reply within seconds": about a second when idle. As a deadline it is a hang
#: detector, sized for a busy 2-core machine where the previous job's painting competes (botkit).
REPLY_WITHIN = REPLY_S


# --- inputs --------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def noisy(size: tuple[int, int], fmt: str = "JPEG") -> bytes:
    """Noise compresses badly, so cutting the file cuts into the pixels."""
    return encode(Image.effect_noise(size, 60).convert("RGB"), fmt)


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def png_claiming(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose header claims ``width``×``height``: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def solid(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    return encode(Image.new("RGB", size, (200, 40, 40)), fmt)


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
OVER_20_MB = solid((64, 64)) + b"\0" * (20 * 1024 * 1024)

# (what, how it is sent, the English fragment of the answer)
BAD_FILES = [
    ("pdf", (PDF, "report.pdf", "application/pdf"), "not an image"),
    ("txt", (b"just some text\n", "notes.txt", "text/plain"), "not an image"),
    ("random bytes named .jpg", (bytes(range(256)) * 40, "photo.jpg", "image/jpeg"), "not an image"),
    ("empty file", (b"", "empty.png", "image/png"), "not an image"),
    (
        "svg",
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>', "logo.svg", "image/svg+xml"),
        "not an image",
    ),
    ("postscript", (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", "art.eps", "image/x-eps"), "not an image"),
    ("truncated jpeg", (truncated(noisy((200, 150))), "cut.jpg", "image/jpeg"), "broken or incomplete"),
    ("truncated png", (truncated(noisy((200, 150), "PNG")), "cut.png", "image/png"), "broken or incomplete"),
    ("over 20 MB", (OVER_20_MB, "huge.png", "image/png"), "larger than 20 MB"),
    ("bomb 400 MP", (png_claiming(20_000, 20_000), "bomb.png", "image/png"), "too large (400 megapixels)"),
    ("bomb 56 MP", (png_claiming(8_000, 7_000), "bomb2.png", "image/png"), "too large (56 megapixels)"),
    ("1x1", (solid((1, 1)), "dot.png", "image/png"), "too small (1×1)"),
    ("2000x10", (solid((2000, 10)), "line.png", "image/png"), "too small (2000×10)"),
    ("1000x100", (solid((1000, 100)), "strip.png", "image/png"), "too long and thin (1000×100)"),
]

# Sent as photos: Telegram gives the bot PhotoSizes (checked first) and the file.
BAD_PHOTOS = [
    ("truncated jpeg photo", truncated(noisy((200, 150))), "broken or incomplete"),
    ("1x1 photo", solid((1, 1), "JPEG"), "too small (1×1)"),
    ("thin photo", solid((1200, 100), "JPEG"), "too long and thin (1200×100)"),
    ("bomb photo", png_claiming(8_000, 7_000), "too large (56 megapixels)"),
]


# --- conversation helpers ------------------------------------------------------------------


@contextmanager
def replies(user: User, fragment: str, what: str = ""):
    """``with replies(user, "not an image"): user.file(...)``: within seconds the bot shows that text."""
    before = len(user.seen())  # every text ever shown: append-only, unlike the chat (deletes)
    yield
    try:
        wait_until(
            lambda: any(fragment in t for t in user.seen()[before:]), REPLY_WITHIN, what=what or fragment, api=user.api
        )
    except AssertionError:
        raise AssertionError(f"{what or 'reply'}: expected {fragment!r}, the bot said {user.seen()[before:]}") from None


def send_other(api: BotAPIEmulator, user: User, content: dict) -> None:
    """A message the emulator has no public helper for (sticker, voice, location, a sizeless document…)."""
    api._user_message(user.id, content, user.lang)


STICKER = {
    "sticker": {
        "file_id": "STK-1",
        "file_unique_id": "stk1",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": "🙂",
    }
}
VOICE = {"voice": {"file_id": "VOI-1", "file_unique_id": "voi1", "duration": 2, "mime_type": "audio/ogg"}}
# A GIF sent in a Telegram app arrives as an MP4 "animation" (with a document part for old clients).
ANIMATION = {
    "animation": {"file_id": "ANI-1", "file_unique_id": "ani1", "width": 64, "height": 64, "duration": 1},
    "document": {"file_id": "ANI-1", "file_unique_id": "ani1", "file_name": "cat.mp4", "mime_type": "video/mp4"},
}
LOCATION = {"location": {"latitude": 55.75, "longitude": 37.62}}


def still_polling(user: User) -> None:
    with replies(user, "Hi!", "a final /start"):
        user.say("/start")


def assert_photo_taken_once(user: User) -> None:
    """Only the good image at the end was taken as the photo: none of the bad ones moved the dialog on."""
    assert sum("Got the photo" in t for t in user.seen()) == 1


def no_failures(user: User, caplog) -> None:
    """Nothing reached the last line of defence: no handler failed, no "something went wrong"."""
    assert not any("something went wrong" in t for t in user.seen())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.fixture(autouse=True)
def _capture_errors(caplog):
    caplog.set_level(logging.INFO)


# --- bad content ---------------------------------------------------------------------------


def test_bad_files_as_content_keep_asking_for_the_photo(make_bot, emulator: BotAPIEmulator, user: User, caplog):
    make_bot()
    with replies(user, "Send me the photo"):
        user.say("/start")
    for what, (data, name, mime), fragment in BAD_FILES:
        with replies(user, fragment, what):
            user.file(data, name, mime)
    # A document that does not state its size: only getFile's 400 "file is too big" tells.
    unsized = emulator._store_document(OVER_20_MB, "huge.png", "image/png")
    del unsized["file_size"]
    with replies(user, "larger than 20 MB", "over 20 MB, size unknown until getFile"):
        send_other(emulator, user, {"document": unsized})
    # Still waiting for the photo: a good one is taken as the photo, not as a style.
    with replies(user, "Got the photo"):
        user.file(solid((90, 60)), "good.png", "image/png")
    assert_photo_taken_once(user)
    still_polling(user)
    no_failures(user, caplog)


def test_bad_photos_as_content(make_bot, user: User, caplog):
    make_bot()
    with replies(user, "Send me the photo"):
        user.say("/start")
    for what, data, fragment in BAD_PHOTOS:
        with replies(user, fragment, what):
            user.photo(data)
    with replies(user, "Got the photo"):
        user.photo(picture())
    assert_photo_taken_once(user)
    no_failures(user, caplog)


def test_non_image_messages_get_a_helpful_reply(make_bot, emulator: BotAPIEmulator, user: User, caplog):
    make_bot()
    with replies(user, "Please send an image"):
        user.say("hello there")
    with replies(user, "Please send an image", "sticker"):
        send_other(emulator, user, STICKER)
    with replies(user, "Please send an image", "voice"):
        send_other(emulator, user, VOICE)
    with replies(user, "Please send an image", "location"):
        send_other(emulator, user, LOCATION)
    with replies(user, "not an image", "animation (mp4)"):
        send_other(emulator, user, ANIMATION)
    with replies(user, "don't know that command"):
        user.say("/paint")
    with replies(user, "Got the photo"):
        user.photo(picture())
    assert_photo_taken_once(user)
    no_failures(user, caplog)


def test_russian_user_gets_russian_bad_input_texts(make_bot, emulator: BotAPIEmulator):
    make_bot()
    ivan = User(emulator, 2002, lang="ru")
    with replies(ivan, "не похож на изображение"):
        ivan.file(PDF, "doc.pdf", "application/pdf")
    with replies(ivan, "слишком маленькое (1×1)"):
        ivan.file(solid((1, 1)), "dot.png", "image/png")
    with replies(ivan, "Пришлите изображение"):
        ivan.say("привет")


# --- bad style -----------------------------------------------------------------------------


def test_bad_styles_keep_the_photo_and_a_good_style_still_paints(
    make_bot, emulator: BotAPIEmulator, user: User, caplog
):
    make_bot()
    with replies(user, "Send me the photo"):
        user.say("/start")
    with replies(user, "Got the photo"):
        user.photo(picture((120, 80)))
    subset = {"pdf", "random bytes named .jpg", "truncated jpeg", "over 20 MB", "bomb 400 MP", "1x1", "1000x100"}
    for what, (data, name, mime), fragment in BAD_FILES:
        if what in subset:
            with replies(user, fragment, f"{what} as style"):
                user.file(data, name, mime)
    for what, data, fragment in BAD_PHOTOS:
        with replies(user, fragment, f"{what} as style"):
            user.photo(data)
    with replies(user, "Please send an image"):
        user.say("what now?")
    with replies(user, "Please send an image", "sticker as style"):
        send_other(emulator, user, STICKER)
    assert not any("queue" in t for t in user.seen())  # nothing was queued along the way

    user.photo(picture((64, 64), (20, 60, 220)))
    result = user.wait_result()
    assert user.result_image(result).size == (TEST_SIZE, 32)  # the photo kept from before the bad styles
    still_polling(user)
    no_failures(user, caplog)


def test_bad_image_in_an_album_then_a_good_photo(make_bot, emulator: BotAPIEmulator, user: User, caplog):
    make_bot()
    emulator.send_album(user.id, [truncated(noisy((200, 150))), picture()])
    user.wait_text("broken or incomplete", timeout=REPLY_WITHIN)
    with replies(user, "Got the photo"):
        user.photo(picture((100, 100)))
    no_failures(user, caplog)


# --- odd but valid: painted like any photo ------------------------------------------------


def cmyk_jpeg(size):
    return encode(Image.open(io.BytesIO(picture(size))).convert("CMYK"), "JPEG", quality=90)


def sixteen_bit_png(size):
    grey = Image.new("I;16", size)
    grey.putdata([(x * 65535) // size[0] for _ in range(size[1]) for x in range(size[0])])
    return encode(grey, "PNG")


def rgba_png(size):
    image = Image.open(io.BytesIO(picture(size, fmt="PNG"))).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize(size))
    return encode(image, "PNG")


def palette_gif(size):
    image = Image.open(io.BytesIO(picture(size, fmt="PNG"))).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return encode(image, "GIF", transparency=0)


def animated(size, fmt):
    frames = [Image.new("RGB", size, c) for c in ((200, 40, 40), (40, 200, 40), (40, 40, 200))]
    frames[0] = Image.open(io.BytesIO(picture(size, fmt="PNG"))).convert("RGB")
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=80, loop=0)


def exif_rotated_jpeg(size):
    """Stored landscape with EXIF Orientation=6: a phone's portrait photo."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.open(io.BytesIO(picture(size))), "JPEG", exif=exif.tobytes(), quality=90)


def heic(size):
    return encode(Image.open(io.BytesIO(picture(size))), "HEIF", quality=80)


# (file name, MIME type, bytes, the result's size at 48 px)
def odd_files():
    """HEIC only where pillow-heif is installed (images.HEIF); the rest always."""
    files = [
        ("cmyk.jpg", "image/jpeg", cmyk_jpeg((120, 80)), (48, 32)),
        ("gradient16.png", "image/png", sixteen_bit_png((100, 60)), (48, 29)),
        ("alpha.png", "image/png", rgba_png((80, 80)), (48, 48)),
        ("palette.gif", "image/gif", palette_gif((90, 60)), (48, 32)),
        ("animated.gif", "image/gif", animated((60, 90), "GIF"), (32, 48)),
        ("animated.webp", "image/webp", animated((100, 50), "WEBP"), (48, 24)),
        ("portrait.jpg", "image/jpeg", exif_rotated_jpeg((120, 60)), (24, 48)),  # EXIF turns it upright
        ("photo.webp", "image/webp", encode(Image.open(io.BytesIO(picture((64, 40)))), "WEBP"), (48, 30)),
    ]
    if images.HEIF:
        files.append(("IMG_0001.HEIC", "image/heic", heic((96, 64)), (48, 32)))
    return files


def result_or_refusal(user: User, count: int, what: str) -> dict | str:
    """Result number ``count``, or the bot's "could not read" text if a job refused its input."""

    def outcome():
        results = user.results()
        if len(results) >= count:
            return results[count - 1]
        return next((t for t in user.texts() if "could not read" in t), None)

    return wait_until(outcome, RESULT_S, what=what, api=user.api)


def test_odd_but_valid_files_are_painted_at_the_right_size(make_bot, emulator: BotAPIEmulator, caplog):
    """Each odd file is the photo of one job and the style of the next (so every one is used both ways)."""
    make_bot(rate_limit=0)
    files = odd_files()
    user = User(emulator, 5005)
    with replies(user, "Send me the photo"):
        user.say("/start")
    for n, (name, mime, data, size) in enumerate(files):
        style_name, style_mime, style, _ = files[(n + 1) % len(files)]
        with replies(user, "Got the photo", name):
            user.file(data, name, mime)
        user.file(style, style_name, style_mime)
        result = result_or_refusal(user, n + 1, what=f"the result for {name} (style {style_name})")
        assert isinstance(result, dict), f"{name} / {style_name}: {result}"
        image = user.result_image(result)
        assert image.size == size, name
    still_polling(user)
    no_failures(user, caplog)


# --- the polling loop itself ---------------------------------------------------------------


def test_an_update_telebot_cannot_parse_does_not_stop_polling(make_bot, emulator: BotAPIEmulator, user: User):
    make_bot()
    # A sticker without the "type" field Bot API 6.2 made required: telebot's parser raises on it.
    # (Stands for any update shape a telebot version does not expect.)
    send_other(emulator, user, {"sticker": {"file_id": "STK-2", "file_unique_id": "stk2", "width": 512, "height": 512}})
    with replies(user, "Hi!", "/start after an unparsable update"):
        user.say("/start")

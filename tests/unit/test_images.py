"""images.py: untrusted bytes in, 8-bit RGB out, or a BadImage with a reason the bot can explain.

Every input is built here with Pillow (or by hand, for headers that lie), small
enough that the whole file runs in about a second.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image

from stylebot import images, texts
from stylebot.images import BadImage


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` (1-bit grey): a decompression bomb's shape.

    Only the first rows are actually there; a loader that trusts the header
    and allocates first is what this catches.
    """

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 + (width + 7) // 8) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def reason_of(data: bytes, **kwargs) -> BadImage:
    with pytest.raises(BadImage) as caught:
        images.load_image(data, **kwargs)
    return caught.value


def assert_explainable(error: BadImage) -> str:
    """The bot turns the reason into ``bad_<reason>``: that text must exist and take the details."""
    return texts.t(texts.EN, f"bad_{error.reason}", **error.details)


# --- every BadImage reason ---------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"%PDF-1.4\n1 0 obj <<>> endobj\n",
        "привет, это текст".encode(),
        bytes(random.Random(7).getrandbits(8) for _ in range(4096)),
    ],
    ids=["empty", "pdf", "text", "random"],
)
def test_not_an_image(data):
    error = reason_of(data)
    assert error.reason == "not_image"
    assert "not an image" in assert_explainable(error)


def test_postscript_is_not_handed_to_ghostscript():
    # Pillow can open EPS (via Ghostscript); untrusted bytes never reach that decoder.
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n"
    assert reason_of(eps).reason == "not_image"


def test_more_than_20_mb_is_refused_before_decoding():
    data = encode(Image.new("RGB", (64, 64)), "PNG")
    data += b"\0" * (images.MAX_FILE_BYTES + 1 - len(data))
    error = reason_of(data)
    assert error.reason == "too_big_file"
    assert "20 MB" in assert_explainable(error)
    # Exactly 20 MB is still allowed (it decodes: PNG ignores trailing bytes).
    assert images.load_image(data[: images.MAX_FILE_BYTES]).size == (64, 64)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_image_is_corrupt(fmt):
    noise = Image.effect_noise((200, 150), 60).convert("RGB")  # noise: the pixel data is most of the file
    data = encode(noise, fmt)
    error = reason_of(data[: len(data) * 2 // 3])
    assert error.reason == "corrupt"
    assert "broken or incomplete" in assert_explainable(error)


def test_damaged_png_checksum_is_corrupt():
    data = bytearray(encode(Image.new("RGB", (40, 40), (10, 20, 30)), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 6] ^= 0xFF  # flip bits inside the compressed pixels
    assert reason_of(bytes(data)).reason == "corrupt"


def test_only_a_header_is_corrupt():
    assert reason_of(encode(Image.new("RGB", (64, 64)), "JPEG")[:200]).reason == "corrupt"


@pytest.mark.parametrize("size", [(20_000, 20_000), (8_000, 7_000)], ids=["400MP", "56MP"])
def test_decompression_bomb_is_refused_without_decoding(size):
    data = png_claiming(*size)
    assert len(data) < 1000
    error = reason_of(data)
    assert error.reason == "too_many_pixels"
    megapixels = round(size[0] * size[1] / 1e6)
    assert error.details["megapixels"] == megapixels  # a real figure, never "?"
    text = assert_explainable(error)
    assert f"{megapixels} megapixels" in text and f"under {images.MAX_PIXELS // 1_000_000}" in text


def test_bomb_inside_a_jpeg_header_too():
    # JPEG's frame header is edited to claim 30000×30000 over a 64×64 body.
    data = bytearray(encode(Image.new("RGB", (64, 64)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 30_000, 30_000)
    assert reason_of(bytes(data)).reason == "too_many_pixels"


def test_largest_allowed_size_passes_check_size():
    images.check_size(7_000, 7_000)  # 49 MP: a phone camera
    with pytest.raises(BadImage):
        images.check_size(7_100, 7_100)


@pytest.mark.parametrize("size", [(1, 1), (15, 200), (200, 15)])
def test_too_small(size):
    error = reason_of(encode(Image.new("RGB", size, "red"), "PNG"))
    assert error.reason == "too_small"
    text = assert_explainable(error)
    assert f"{size[0]}×{size[1]}" in text and f"{images.MIN_SIDE} px" in text


@pytest.mark.parametrize("size", [(2000, 10), (1000, 100), (100, 1000)])
def test_extreme_aspect_ratio(size):
    error = reason_of(encode(Image.new("RGB", size, "red"), "PNG"))
    assert error.reason in ("aspect", "too_small")  # 2000×10 breaks both rules
    assert_explainable(error)
    if min(size) >= images.MIN_SIDE:
        assert error.reason == "aspect"
        assert f"{int(images.MAX_ASPECT)}:1" in assert_explainable(error)


def test_aspect_limit_is_inclusive():
    assert images.load_image(encode(Image.new("RGB", (800, 100)), "PNG")).size == (800, 100)


def test_every_reason_has_an_english_and_russian_text():
    for reason in ("not_image", "too_big_file", "corrupt", "too_many_pixels", "too_small", "aspect"):
        details = {"megapixels": 99, "width": 1, "height": 1, **images.limits()}
        for lang in (texts.EN, texts.RU):
            assert texts.t(lang, f"bad_{reason}", **details)
        assert f"bad_{reason}" in texts._RU, f"bad_{reason} has no Russian text"


# --- unusual but valid: always 8-bit RGB ---------------------------------------------


def test_cmyk_jpeg():
    data = encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG", quality=95)  # pure red in CMYK
    image = images.load_image(data)
    assert image.mode == "RGB" and image.size == (40, 30)
    r, g, b = image.getpixel((20, 15))
    assert r > 230 and g < 30 and b < 30


def test_16_bit_png_keeps_its_tones():
    grey = Image.new("I;16", (64, 16))
    grey.putdata([[0, 16384, 32768, 65535][x // 16] for _ in range(16) for x in range(64)])
    data = encode(grey, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    image = images.load_image(data)
    assert image.mode == "RGB"
    tones = [image.getpixel((x, 8))[0] for x in (8, 24, 40, 56)]
    assert tones == pytest.approx([0, 64, 128, 255], abs=2)  # not clipped to white, not stretched


def test_dark_16_bit_png_stays_dark():
    grey = Image.new("I;16", (32, 32), 2000)  # about 3 % grey
    assert images.load_image(encode(grey, "PNG")).getpixel((5, 5))[0] < 12


def test_rgba_onto_white():
    image = Image.new("RGBA", (40, 40), (0, 0, 255, 0))  # fully transparent blue
    image.paste((255, 0, 0, 255), (0, 0, 20, 40))  # opaque red left half
    out = images.load_image(encode(image, "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((5, 5)) == (255, 0, 0)
    assert out.getpixel((30, 5)) == (255, 255, 255)


def test_half_transparent_black_becomes_grey():
    out = images.load_image(encode(Image.new("RGBA", (32, 32), (0, 0, 0, 128)), "PNG"))
    assert out.getpixel((3, 3))[0] == pytest.approx(127, abs=2)


def test_la_onto_white():
    image = Image.new("LA", (32, 32), (0, 0))
    image.paste((0, 255), (0, 0, 16, 32))
    out = images.load_image(encode(image, "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((4, 4)) == (0, 0, 0) and out.getpixel((28, 4)) == (255, 255, 255)


def test_palette_with_transparency():
    image = Image.new("P", (32, 32), 0)
    image.putpalette([0, 255, 0] + [255, 0, 0] * 255)
    image.paste(1, (16, 0, 32, 32))
    data = encode(image, "PNG", transparency=0)  # index 0 (green) is transparent
    out = images.load_image(data)
    assert out.mode == "RGB"
    assert out.getpixel((4, 4)) == (255, 255, 255)
    assert out.getpixel((28, 4)) == (255, 0, 0)


def test_palette_gif_without_transparency():
    out = images.load_image(encode(Image.new("RGB", (32, 32), (0, 0, 255)).convert("P"), "GIF"))
    assert out.mode == "RGB" and out.getpixel((1, 1)) == (0, 0, 255)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])  # PNG: APNG
def test_animated_takes_the_first_frame(fmt):
    frames = [Image.new("RGB", (40, 30), color) for color in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    options = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **options)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    out = images.load_image(data)
    assert out.mode == "RGB" and out.size == (40, 30)
    r, g, b = out.getpixel((20, 15))
    assert r > 240 and g < 15 and b < 15


def exif_jpeg(size: tuple[int, int], orientation: int) -> bytes:
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, size[0] // 4, size[1]))  # a red band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif.tobytes(), quality=95)


def test_exif_orientation_6_is_applied():
    out = images.load_image(exif_jpeg((80, 40), 6))  # stored landscape, shown rotated 90° clockwise
    assert out.size == (40, 80)
    assert out.getpixel((20, 5))[0] > 200  # the red band is now along the top
    assert out.getpixel((20, 75))[2] > 200


def test_exif_orientation_3_keeps_size_flips_content():
    out = images.load_image(exif_jpeg((80, 40), 3))
    assert out.size == (80, 40)
    assert out.getpixel((75, 20))[0] > 200  # the red band moved to the right edge


def test_exif_orientation_with_max_side_keeps_the_upright_aspect():
    out = images.load_image(exif_jpeg((1200, 400), 8), max_side=300)
    assert out.size == (100, 300)


def test_broken_or_odd_exif_is_ignored_not_fatal():
    bad_orientation = Image.Exif()
    bad_orientation[0x0112] = 9  # not an orientation
    for exif in (bad_orientation.tobytes(), b"Exif\x00\x00" + bytes(range(200))):
        out = images.load_image(encode(Image.new("RGB", (40, 30)), "JPEG", exif=exif))
        assert out.size == (40, 30)


def test_multi_picture_jpeg_from_a_phone():
    frames = [Image.new("RGB", (1600, 1200), (90, 120, 150)), Image.new("RGB", (1600, 1200), (0, 0, 0))]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    out = images.load_image(data, max_side=400)
    assert out.size == (400, 300)
    assert out.getpixel((200, 150)) == pytest.approx((90, 120, 150), abs=4)


def test_webp():
    out = images.load_image(encode(Image.new("RGB", (60, 45), (10, 200, 30)), "WEBP", lossless=True))
    assert out.size == (60, 45) and out.getpixel((30, 20)) == (10, 200, 30)


def test_heic_round_trip():
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is not installed: HEIC unsupported here")
    pillow_heif.register_heif_opener()
    assert images.HEIF
    data = encode(Image.new("RGB", (64, 48), (10, 200, 30)), "HEIF", quality=90)
    out = images.load_image(data)
    assert out.mode == "RGB" and out.size == (64, 48)
    assert out.getpixel((32, 24)) == pytest.approx((10, 200, 30), abs=8)


def test_heic_with_alpha():
    pytest.importorskip("pillow_heif", reason="pillow-heif is not installed: HEIC unsupported here")
    data = encode(Image.new("RGBA", (64, 48), (0, 0, 0, 0)), "HEIF", quality=90)
    out = images.load_image(data)
    assert out.mode == "RGB" and out.getpixel((10, 10))[0] > 240


def test_tiff_and_bmp():
    for fmt in ("TIFF", "BMP"):
        assert images.load_image(encode(Image.new("RGB", (33, 21), "white"), fmt)).size == (33, 21)


def test_to_rgb_on_every_common_mode():
    for mode in ("1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LA", "PA", "I", "I;16", "F", "LAB", "HSV"):
        out = images.to_rgb(Image.new(mode, (20, 20)))
        assert out.mode == "RGB" and out.size == (20, 20), mode


# --- max_side: decode only what is needed ----------------------------------------------


@pytest.mark.parametrize(
    "size, max_side, expected",
    [
        ((4000, 3000), 256, (256, 192)),
        ((3000, 4000), 256, (192, 256)),
        ((1001, 333), 256, (256, 85)),  # 85.16
        ((999, 997), 500, (500, 499)),  # 498.998: rounded, not truncated
        ((120, 80), 256, (120, 80)),  # never enlarged
    ],
)
def test_max_side_downscales_keeping_the_aspect(size, max_side, expected):
    data = encode(Image.new("RGB", size, (90, 120, 150)), "JPEG", quality=80)
    out = images.load_image(data, max_side=max_side)
    assert out.size == expected
    assert out.getpixel((out.width // 2, out.height // 2)) == pytest.approx((90, 120, 150), abs=4)


def test_max_side_on_png():
    out = images.load_image(encode(Image.new("RGB", (900, 300)), "PNG"), max_side=90)
    assert out.size == (90, 30)


def test_max_side_on_a_big_phone_sized_jpeg():
    """12 MP decodes through the JPEG draft (1/4 scale here) and still lands on the exact size."""
    data = encode(Image.new("RGB", (4032, 3024), (90, 120, 150)), "JPEG", quality=80)
    assert images.load_image(data, max_side=512).size == (512, 384)
    assert images.load_image(data, max_side=1000).size == (1000, 750)


# --- output helpers -----------------------------------------------------------------


def test_round_trips_and_send_photo_limits():
    image = Image.new("RGB", (30, 20), (1, 2, 3))
    assert images.load_image(images.to_png(image)).getpixel((0, 0)) == (1, 2, 3)
    assert images.load_image(images.to_jpeg(image)).size == (30, 20)
    assert max(Image.open(io.BytesIO(images.preview_jpeg(Image.new("RGB", (1000, 500))))).size) == 320
    assert images.fits_send_photo((5000, 5000), 1000)
    assert not images.fits_send_photo((5000, 5001), 1000)
    assert not images.fits_send_photo((100, 100), images.PHOTO_MAX_BYTES + 1)

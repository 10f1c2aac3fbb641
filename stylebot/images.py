"""images: untrusted bytes → a safe RGB ``PIL.Image``, and back to bytes.

Everything a user sends passes through :func:`load_image` before anything
else looks at it. It refuses what would hurt us (decompression bombs, broken
files, 1×1 or absurdly thin images) with :class:`BadImage`, whose ``reason``
is a stable code the bot turns into a friendly message, and it normalises
what is merely unusual (CMYK, 16-bit, alpha, palettes, animation, EXIF
rotation) so that the engine only ever sees 8-bit RGB.
"""

from __future__ import annotations

import io
import re
import warnings

from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from stylebot.errors import BadImage

try:  # HEIC/HEIF from phones; optional so that a minimal install still runs.
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF = True
except ImportError:  # pragma: no cover - depends on the environment
    HEIF = False

# A truncated file must fail loudly rather than come back half grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

#: Telegram lets bots download files up to 20 MB (getFile).
MAX_FILE_BYTES = 20 * 1024 * 1024
#: 50 MP covers every phone camera; a "bomb" PNG claims billions.
MAX_PIXELS = 50_000_000
MIN_SIDE = 16
MAX_ASPECT = 8.0
#: Telegram's sendPhoto limits.
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES_SUM = 10_000
#: The decoders we let near untrusted bytes. Pillow would otherwise try every
#: plugin it has, EPS among them, which hands the file to Ghostscript.
#: (Multi-picture JPEGs from phones open through the JPEG plugin as "MPO".)
Image.init()
FORMATS = tuple(f for f in ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF") if f in Image.OPEN)
#: EXIF orientations that swap width and height (rotations by 90°/270°).
_TRANSPOSING = (5, 6, 7, 8)


def limits() -> dict[str, object]:
    """The figures quoted in user messages, so texts never hard-code them."""
    return {
        "limit": MAX_PIXELS // 1_000_000,
        "minimum": MIN_SIDE,
        "ratio": int(MAX_ASPECT),
    }


def check_size(width: int, height: int) -> None:
    """Reject sizes we can't paint, from dimensions alone (no pixels decoded)."""
    if width * height > MAX_PIXELS:
        raise BadImage("too_many_pixels", {"megapixels": round(width * height / 1e6), **limits()})
    if min(width, height) < MIN_SIDE:
        raise BadImage("too_small", {"width": width, "height": height, **limits()})
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise BadImage("aspect", {"width": width, "height": height, **limits()})


def load_image(data: bytes, max_side: int | None = None) -> Image.Image:
    """Decode untrusted ``data`` into an RGB image, at most ``max_side`` on its long side.

    ``max_side`` lets JPEG decode at a reduced scale (``draft``), which keeps a
    48 MP phone photo from costing 150 MB when we only need 1024 px of it. The
    downscaled size is computed from the full, upright size, so the aspect ratio
    is the original's to the pixel whatever scale the draft decoded at.

    Any failure to decode is a :class:`BadImage`; nothing else escapes.
    """
    if len(data) > MAX_FILE_BYTES:
        raise BadImage("too_big_file")
    if not data:
        raise BadImage("not_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Typed as the base class: after exif_transpose/to_rgb it is no longer an ImageFile.
            image: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            check_size(width, height)
            if image.getexif().get(ExifTags.Base.Orientation) in _TRANSPOSING:
                width, height = height, width
            image.seek(0)  # animated GIF/WebP/APNG: the first frame
            if max_side and image.format in ("JPEG", "MPO"):
                image.draft("RGB", _fit(image.size, max_side * 2))
            image.load()
            image = ImageOps.exif_transpose(image)
            image = to_rgb(image)
            if max_side and max(width, height) > max_side:
                image = image.resize(_fit((width, height), max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
            return image
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage("too_many_pixels", {"megapixels": _bomb_megapixels(exc), **limits()}) from None
    except UnidentifiedImageError:
        raise BadImage("not_image") from None
    except Exception as exc:  # untrusted input: every decoder failure is "corrupt"
        # Pillow reports truncation and bad chunks as OSError, SyntaxError,
        # ValueError, EOFError, struct.error…; plugins add their own.
        raise BadImage("corrupt", {"error": type(exc).__name__}) from None


def _bomb_megapixels(exc: Exception) -> object:
    """The size Pillow's bomb check saw (its message says "Image size (N pixels) …")."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return round(int(found.group(1)) / 1e6) if found else "?"


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB; transparency is flattened onto white.

    White, not black: most transparent images (logos, stickers, drawings)
    are designed to sit on a light page.
    """
    if image.mode.startswith("I;16"):
        # 16-bit greyscale: 0..65535 → 0..255, instead of clipping at 255 (all white).
        image = image.convert("I").point(lambda v: v / 257).convert("L")
    elif image.mode in ("I", "F"):
        # 32-bit greyscale: usually 16-bit samples widened; scale by the range they use.
        top = image.getextrema()[1]  # one band, so (min, max) are numbers; the stub also allows per-band tuples
        peak = top if isinstance(top, int | float) else 0
        scale = 1.0 if peak <= 255 else 1 / 257 if peak <= 65535 else 255.0 / peak
        image = image.point(lambda v: v * scale).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def _fit(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """``size`` scaled so its long side is ``long_side``, keeping the aspect ratio."""
    width, height = size
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_jpeg(image: Image.Image, quality: int = 92) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


def to_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "PNG", optimize=False, compress_level=6)
    return out.getvalue()


def preview_jpeg(image: Image.Image, long_side: int = 320) -> bytes:
    """A small, cheap JPEG for the live preview; a few KB, encoded in milliseconds."""
    if max(image.size) > long_side:
        image = image.resize(_fit(image.size, long_side), Image.Resampling.BILINEAR)
    return to_jpeg(image, quality=80)


def fits_send_photo(size: tuple[int, int], n_bytes: int) -> bool:
    """Whether Telegram's sendPhoto accepts it (10 MB, width + height ≤ 10000)."""
    return n_bytes <= PHOTO_MAX_BYTES and sum(size) <= PHOTO_MAX_SIDES_SUM

"""images: untrusted bytes → a safe RGB ``PIL.Image``, and back to bytes.

Everything a user sends passes through :func:`load_image` before anything
else looks at it. It refuses what would hurt us (decompression bombs, broken
files, 1×1 or absurdly thin images) with :class:`BadImage`, whose ``reason``
is a stable code the bot turns into a friendly message, and it normalises
what is merely unusual (CMYK, 16-bit, alpha, palettes, animation, EXIF
rotation) so that the engine only ever sees 8-bit RGB.

Memory is bounded: the header is read first, and the pixels are decoded only
inside the process-wide :mod:`stylebot.decode_budget`, reduced and flattened
without full-size copies (see :func:`load_image`, DESIGN.md "Bounded decoding").
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import re
import time
import warnings

from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from stylebot import decode_budget
from stylebot.errors import BadImage

try:  # HEIC/HEIF from phones; optional so that a minimal install still runs.
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF = True
except ImportError:  # pragma: no cover - depends on the environment
    HEIF = False

# A truncated file must fail loudly rather than come back half grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
#: Pillow's allocation unit for image memory (process-wide). Its default, 16 MB blocks, splits a
#: decoded image into blocks glibc serves by mmap (given back on free) plus a remainder block from the
#: decoding thread's malloc arena, which keeps it: with dozens of handler threads, 32 decodes of a
#: 7000×7000 PNG one after the other grew the bot's RSS by 150 MB of memory already freed. One block
#: per image (up to the largest we accept, 49 MP × 4 bytes) is a single allocation: above 32 MB always
#: an mmap, returned whole the moment the image is freed.
IMAGE_BLOCK_BYTES = 256 * 1024 * 1024
Image.core.set_block_size(IMAGE_BLOCK_BYTES)

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
#: EXIF orientation → the transpose that makes the picture upright.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
MB = 1024 * 1024
#: Documents up to this many pixels are always decoded (alone, if the budget is smaller than their cost).
ALWAYS_PIXELS = 16_000_000
#: How long the check on arrival waits for room in the decode budget before it says "busy".
ARRIVAL_WAIT = 90.0
#: How long a job's decode waits: the job was accepted, so it waits longer before it fails.
WORKER_WAIT = 300.0
#: Threads that decode (see :func:`_in_decoder_thread`): no more than the CPUs, at most 2.
DECODE_THREADS = max(1, min(2, os.cpu_count() or 1))
_DECODERS = concurrent.futures.ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode")


def _new_decoders_after_fork() -> None:
    """A forked child (an RQ work horse) has none of the parent's threads: a fresh pool, or its decodes would hang."""
    global _DECODERS
    _DECODERS = concurrent.futures.ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode")


os.register_at_fork(after_in_child=_new_decoders_after_fork)
#: The JPEG draft scale of the check on arrival: the whole entropy stream is read, into a small buffer.
VERIFY_SIDE = 256
#: Formats whose decoder fills its own full-size buffer and then copies it into Pillow's.
_COPYING_DECODERS = ("WEBP", "HEIF", "AVIF", "TIFF")
#: Source rows per band when reducing and flattening (about this many bytes of RGBA).
BAND_BYTES = 4 * MB


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


def load_image(
    data: bytes,
    max_side: int | None = None,
    wait: float = ARRIVAL_WAIT,
    budget: decode_budget.DecodeBudget | None = None,
) -> Image.Image:
    """Decode untrusted ``data`` into an RGB image, at most ``max_side`` on its long side.

    The header is read first (size checks, and the decode's cost); the pixels
    are decoded only inside the shared :mod:`stylebot.decode_budget`, waiting up
    to ``wait`` seconds for room. JPEG decodes at a reduced scale (``draft``);
    every other format is decoded once at full size (Pillow cannot shrink them
    while reading) and then reduced and flattened in bands of rows, so the only
    full-size buffer is the decoder's own: no full-size RGBA, RGBa or RGB copy.
    The downscaled size is computed from the full, upright size, so the aspect
    ratio is the original's to the pixel whatever scale the decode ran at.

    Any failure is a :class:`BadImage` (``over_budget`` and ``busy`` among the
    reasons); nothing else escapes.
    """
    image = _in_decoder_thread(data, max_side, wait, budget, keep=True)
    assert image is not None  # keep=True
    return image


def _in_decoder_thread(
    data: bytes, max_side: int | None, wait: float, budget: decode_budget.DecodeBudget | None, keep: bool
) -> Image.Image | None:
    """Run :func:`_decode` on one of the few decoder threads; the caller waits (up to ``wait`` for it to start).

    Why threads of their own: glibc gives each thread a malloc arena, and an
    arena keeps the top of its heap after ``free`` (``malloc_trim`` releases
    only the main arena's). An image under 32 MB (a 2560 px photo: 20-26 MB)
    comes from the decoding thread's arena, so decoding on dozens of handler
    threads kept up to one image per arena: 32 users sending 5.8 MP PNGs left
    +320 MB behind. On ``DECODE_THREADS`` threads at most that many images
    are kept, and no more than that many decodes compete for the CPU, so the
    first of many finishes first.
    """
    deadline = time.monotonic() + wait
    future = _DECODERS.submit(_decode, data, max_side, deadline, budget, keep)
    try:
        return future.result(timeout=wait)
    except concurrent.futures.TimeoutError:
        if future.cancel():  # still queued behind other decodes: it never started
            raise BadImage("busy", {"seconds": round(wait)}) from None
        return future.result()  # started (it keeps its own deadline for the budget): let it finish


def _decode(
    data: bytes, max_side: int | None, deadline: float, budget: decode_budget.DecodeBudget | None, keep: bool
) -> Image.Image | None:
    """:func:`load_image` (``keep``) or :func:`verify` (decode, check, drop)."""
    if len(data) > MAX_FILE_BYTES:
        raise BadImage("too_big_file")
    if not data:
        raise BadImage("not_image")
    budget = budget or decode_budget.shared()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
            check_size(*image.size)
            image.seek(0)  # animated GIF/WebP/APNG: the first frame
            target = _target(image.size, max_side)
            if max_side and image.format in ("JPEG", "MPO"):
                image.draft("RGB", _fit(image.size, max_side * 2))
            cost = decode_cost(image, target) if keep else decode_cost(image, None)
            with budget.reserve(_admission(image, cost, budget), max(0.0, deadline - time.monotonic())):
                image.load()
                if not keep:
                    image.close()
                    return None
                orientation = _orientation(image)  # after load: PNG's getexif() would decode the pixels itself
                image = shrink_to_rgb(image, target)
            method = _TRANSPOSE.get(orientation)
            return image.transpose(method) if method is not None else image
    except BadImage:
        raise
    except decode_budget.BudgetBusy as exc:
        raise BadImage("busy", {"seconds": round(exc.waited)}) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage("too_many_pixels", {"megapixels": _bomb_megapixels(exc), **limits()}) from None
    except UnidentifiedImageError:
        raise BadImage("not_image") from None
    except Exception as exc:  # untrusted input: every decoder failure is "corrupt"
        # Pillow reports truncation and bad chunks as OSError, SyntaxError,
        # ValueError, EOFError, struct.error…; plugins add their own.
        raise BadImage("corrupt", {"error": type(exc).__name__}) from None


def verify(data: bytes, wait: float = ARRIVAL_WAIT, budget: decode_budget.DecodeBudget | None = None) -> None:
    """The check on arrival: the header's rules, then one full decode inside the budget, nothing kept.

    Only a full decode finds a truncated or damaged file, so it is done once
    here (the worker does the other); the pixels are dropped at once, never
    reduced or flattened, since nobody uses them. Raises :class:`BadImage`.
    """
    _in_decoder_thread(data, VERIFY_SIDE, wait, budget, keep=False)  # the side only sets a JPEG's draft scale


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 when absent; Pillow ignores a broken EXIF block)."""
    value = image.getexif().get(ExifTags.Base.Orientation)
    return value if isinstance(value, int) else 1


def _target(stored: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """The output size in the stored (not yet rotated) orientation: never enlarged."""
    if not max_side or max(stored) <= max_side:
        return stored
    return _fit(stored, max_side)


def _pixel_bytes(mode: str) -> int:
    """Bytes Pillow stores per pixel of ``mode`` (RGB is kept as 4 bytes, like RGBA)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def decode_cost(image: Image.Image, target: tuple[int, int] | None) -> int:
    """Estimated peak bytes of decoding ``image`` (header read, pixels not yet) to ``target`` (None: only decode).

    The full-size buffer (as the decoder will make it: after a JPEG ``draft``;
    WebP, HEIF/AVIF and TIFF decode into their own buffer first, then copy),
    plus one band of working copies, the reduced copy and the output.
    """
    width, height = image.size
    full = width * height * _pixel_bytes(image.mode)
    if image.format in _COPYING_DECODERS:
        full *= 2
    if target is None:
        return full
    factor = _reduce_factor(image.size, target)
    reduced = -(-width // factor) * -(-height // factor) * 4
    band = min(width * height * 4, 3 * _band_rows(width, factor) * width * 4)
    return full + band + reduced + target[0] * target[1] * 4


def _admission(image: Image.Image, needed: int, budget: decode_budget.DecodeBudget) -> int:
    """What the decode reserves: its cost; an image up to 16 MP always gets in (alone if it must)."""
    if needed <= budget.total:
        return needed
    width, height = image.size
    if width * height <= ALWAYS_PIXELS:
        return budget.total
    raise BadImage(
        "over_budget",
        {
            "megapixels": round(width * height / 1e6),
            "needed": -(-needed // MB),
            "budget": budget.total // MB,
            "always": ALWAYS_PIXELS // 1_000_000,
        },
    )


def _reduce_factor(size: tuple[int, int], target: tuple[int, int]) -> int:
    """The integer box reduction that keeps the reduced copy at least ``target``."""
    return max(1, min(size[0] // max(1, target[0]), size[1] // max(1, target[1])))


def _band_rows(width: int, factor: int) -> int:
    """Rows per band: about ``BAND_BYTES`` of RGBA, a whole number of reduction blocks."""
    rows = max(1, BAND_BYTES // (4 * width))
    return max(factor, rows // factor * factor)


def shrink_to_rgb(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """A loaded image of any mode → 8-bit RGB at ``target``, without a full-size copy.

    Bands of rows are cropped, flattened onto white and box-reduced one at a
    time into a small RGB image, which is then resampled (Lanczos) to the exact
    target. Flattening before averaging equals averaging in premultiplied
    alpha and then flattening (both are linear), so edges do not pick up the
    colour of transparent pixels. The full-size image is closed at the end, so
    its memory is back before the budget is released.
    """
    if image.mode == "RGB" and image.size == target:
        return image
    width, height = image.size
    factor = _reduce_factor(image.size, target)
    peak = _integer_peak(image) if image.mode in ("I", "F") else None
    rows = _band_rows(width, factor)
    if rows >= height and factor == 1:
        small = to_rgb(image, peak)
    else:
        small = Image.new("RGB", (-(-width // factor), -(-height // factor)))
        for top in range(0, height, rows):
            band = to_rgb(image.crop((0, top, width, min(height, top + rows))), peak)
            small.paste(band.reduce(factor) if factor > 1 else band, (0, top // factor))
            del band
    if small is not image:
        image.close()
    if small.size != target:
        small = small.resize(target, Image.Resampling.LANCZOS)
    return small


def _integer_peak(image: Image.Image) -> float:
    """The brightest sample of a 32-bit greyscale image (one pass, no copy): it sets the scale to 8 bits."""
    top = image.getextrema()[1]  # one band, so (min, max) are numbers; the stub also allows per-band tuples
    return top if isinstance(top, int | float) else 0


def _bomb_megapixels(exc: Exception) -> object:
    """The size Pillow's bomb check saw (its message says "Image size (N pixels) …")."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return round(int(found.group(1)) / 1e6) if found else "?"


def to_rgb(image: Image.Image, peak: float | None = None) -> Image.Image:
    """Any Pillow mode → 8-bit RGB; transparency is flattened onto white.

    White, not black: most transparent images (logos, stickers, drawings)
    are designed to sit on a light page. ``peak``: for 32-bit greyscale, the
    brightest sample of the whole image when this is one band of it.
    """
    if image.mode.startswith("I;16"):
        # 16-bit greyscale: 0..65535 → 0..255, instead of clipping at 255 (all white).
        image = image.convert("I").point(lambda v: v / 257).convert("L")
    elif image.mode in ("I", "F"):
        # 32-bit greyscale: usually 16-bit samples widened; scale by the range they use.
        peak = _integer_peak(image) if peak is None else peak
        scale = 1.0 if peak <= 255 else 1 / 257 if peak <= 65535 else 255.0 / peak
        image = image.point(lambda v: v * scale).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba)  # colour × alpha + white × (1 − alpha)
        return white
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

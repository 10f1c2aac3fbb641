"""Bounded decoding: every decode goes through one budget of bytes, and no step keeps a full-size copy.

The budget itself (a first-come-first-served semaphore of bytes with a deadline), what
``images`` reserves for each accepted format, the policy (16 MP always, larger if it fits,
else a refusal naming the limit; "busy" after the deadline), the banded reduction against
Pillow's own, and the peak RSS of decoding a 16 MP RGBA PNG in a fresh process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw

from stylebot import decode_budget, images, texts
from stylebot.decode_budget import BudgetBusy, DecodeBudget, OverBudget
from stylebot.images import BadImage

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


class Recording(DecodeBudget):
    """A real budget that also notes each reservation (size, and how many were held at once)."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.reserved: list[int] = []
        self.threads: set[str] = set()
        self.holding = 0
        self.most_at_once = 0

    def acquire(self, needed: int, timeout: float) -> int:
        got = super().acquire(needed, timeout)
        self.reserved.append(got)
        self.threads.add(threading.current_thread().name)
        self.holding += 1
        self.most_at_once = max(self.most_at_once, self.holding)
        return got

    def release(self, reserved: int) -> None:
        self.holding -= 1
        super().release(reserved)


# --- the budget ----------------------------------------------------------------------


def test_many_at_once_wait_instead_of_stacking_up():
    budget = Recording(100)
    inside = []

    def decode() -> None:
        with budget.reserve(60, timeout=10):  # two never fit together
            inside.append(budget.used)
            time.sleep(0.01)

    threads = [threading.Thread(target=decode) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(inside) == 12 and budget.peak == 60 and budget.most_at_once == 1
    assert budget.used == 0


def test_small_ones_share_the_budget():
    budget = DecodeBudget(100)
    with budget.reserve(30, timeout=1), budget.reserve(30, timeout=1), budget.reserve(40, timeout=1):
        assert budget.used == 100
    assert budget.used == 0


def test_larger_than_the_whole_budget_is_refused_at_once():
    budget = DecodeBudget(100)
    started = time.monotonic()
    with pytest.raises(OverBudget) as caught:
        budget.acquire(101, timeout=30)
    assert time.monotonic() - started < 1 and caught.value.total == 100


def test_a_full_budget_times_out_with_busy():
    budget = DecodeBudget(100)
    with budget.reserve(80, timeout=1):
        started = time.monotonic()
        with pytest.raises(BudgetBusy):
            budget.acquire(30, timeout=0.2)
        assert 0.15 < time.monotonic() - started < 5
    assert budget.used == 80 - 80  # the timed-out request took nothing


def test_first_come_first_served_a_big_request_is_not_starved():
    budget = DecodeBudget(100)
    order: list[str] = []
    first = budget.acquire(50, timeout=1)
    big_done = threading.Event()

    def big() -> None:
        with budget.reserve(100, timeout=10):
            order.append("big")
        big_done.set()

    thread = threading.Thread(target=big)
    thread.start()
    while not budget._queue:  # the big one is waiting in line
        time.sleep(0.001)
    small = threading.Thread(target=lambda: (budget.acquire(10, timeout=10), order.append("small")))
    small.start()
    time.sleep(0.05)
    assert order == []  # 10 would fit beside the 50, but the big one came first
    budget.release(first)
    assert big_done.wait(5)
    small.join(5)
    assert order == ["big", "small"]


def test_configure_replaces_the_shared_budget():
    old = decode_budget.shared()
    try:
        new = decode_budget.configure(64 * MB)
        assert decode_budget.shared() is new and new.total == 64 * MB
    finally:
        decode_budget._shared = old
    with pytest.raises(ValueError):
        DecodeBudget(0)


# --- every format reserves before it decodes -------------------------------------------


def sixteen_bit_png(size: tuple[int, int]) -> bytes:
    grey = Image.new("I;16", size)
    grey.putdata([(x * 65535) // size[0] for _ in range(size[1]) for x in range(size[0])])
    return encode(grey, "PNG")


def formats() -> list[tuple[str, bytes]]:
    rgba = Image.linear_gradient("L").resize((300, 200)).convert("RGBA")
    frames = [Image.new("RGB", (300, 200), c) for c in ("red", "green", "blue")]
    found = [
        ("jpeg", encode(Image.new("RGB", (300, 200), "red"), "JPEG")),
        ("png rgba", encode(rgba, "PNG")),
        ("png 16-bit", sixteen_bit_png((300, 200))),
        ("png palette", encode(Image.new("RGB", (300, 200), "red").convert("P"), "PNG", transparency=0)),
        ("webp", encode(rgba, "WEBP")),
        ("gif animated", encode(frames[0], "GIF", save_all=True, append_images=frames[1:])),
        ("webp animated", encode(frames[0], "WEBP", save_all=True, append_images=frames[1:])),
        ("tiff", encode(rgba, "TIFF")),
        ("bmp", encode(frames[0], "BMP")),
    ]
    if images.HEIF:
        found.append(("heic", encode(frames[0], "HEIF")))
    return found


@pytest.mark.parametrize("what, data", formats(), ids=[name for name, _ in formats()])
def test_every_format_decodes_inside_the_budget(what, data):
    budget = Recording(256 * MB)
    out = images.load_image(data, max_side=100, budget=budget)
    assert out.mode == "RGB" and out.size == (100, 67), what
    images.verify(data, budget=budget)
    assert len(budget.reserved) == 2 and all(n >= 300 * 200 for n in budget.reserved), budget.reserved
    assert budget.used == 0
    # On the decoder threads, whose malloc arenas are the only ones to keep a freed image (images._in_decoder_thread).
    assert all(name.startswith("decode") for name in budget.threads), budget.threads


def test_the_estimate_is_the_full_buffer_plus_the_reduced_copy():
    image = Image.open(io.BytesIO(encode(Image.new("RGBA", (2000, 1000)), "PNG")))
    full = 2000 * 1000 * 4
    assert images.decode_cost(image, None) == full
    with_reduction = images.decode_cost(image, (1000, 500))
    assert full + 1000 * 500 * 4 * 2 <= with_reduction <= full + 1000 * 500 * 8 + 3 * images.BAND_BYTES + 3 * 8000


# --- the policy --------------------------------------------------------------------------


def big_png(size: tuple[int, int]) -> bytes:
    """A large, very compressible RGBA PNG (a few hundred KB, like the one in the issue)."""
    image = Image.new("RGBA", size, (255, 255, 255, 0))
    ImageDraw.Draw(image).ellipse((0, 0, size[0] // 2, size[1] // 2), fill=(200, 40, 40, 180))
    return encode(image, "PNG", compress_level=1)


def test_over_16_mp_and_over_the_budget_is_refused_naming_the_limit():
    data = big_png((4200, 4200))  # 17.6 MP, 70 MB decoded
    budget = Recording(32 * MB)
    with pytest.raises(BadImage) as caught:
        images.load_image(data, max_side=1024, budget=budget)
    error = caught.value
    assert error.reason == "over_budget" and budget.reserved == []  # refused from the header alone
    english = texts.t(texts.EN, f"bad_{error.reason}", **error.details)
    assert "18 megapixels" in english and "32 MB" in english and "16 megapixels always works" in english
    russian = texts.t(texts.RU, f"bad_{error.reason}", **error.details)
    assert "18 Мп" in russian and "32 МБ" in russian


def test_up_to_16_mp_is_always_decoded_even_over_a_small_budget():
    data = big_png((4000, 4000))  # 16 MP: 64 MB decoded, more than the whole budget
    budget = Recording(16 * MB)
    assert images.load_image(data, max_side=512, budget=budget).size == (512, 512)
    assert budget.reserved == [16 * MB]  # the whole budget: it ran alone


def test_over_16_mp_that_fits_the_budget_is_decoded():
    budget = Recording(256 * MB)
    assert images.load_image(big_png((4200, 4200)), max_side=256, budget=budget).size == (256, 256)


def test_a_taken_budget_makes_the_check_say_busy():
    budget = DecodeBudget(64 * MB)
    data = encode(Image.new("RGB", (400, 300), "red"), "PNG")
    with budget.reserve(64 * MB, timeout=1), pytest.raises(BadImage) as caught:
        images.verify(data, wait=0.2, budget=budget)
    assert caught.value.reason == "busy"
    for lang in (texts.EN, texts.RU):
        assert "0" in texts.t(lang, "bad_busy", **caught.value.details)
    images.verify(data, wait=0.2, budget=budget)  # free again: accepted


def test_the_arrival_check_still_finds_a_truncated_file():
    noise = encode(Image.effect_noise((300, 200), 60).convert("RGBA"), "PNG")
    with pytest.raises(BadImage) as caught:
        images.verify(noise[: len(noise) * 2 // 3])
    assert caught.value.reason == "corrupt"


# --- the banded reduction equals Pillow's whole-image one --------------------------------


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "I;16", "RGB", "CMYK"])
def test_banded_reduction_matches_the_whole_image_reduction(mode, monkeypatch):
    monkeypatch.setattr(images, "BAND_BYTES", 4 * 640 * 7)  # bands of 6 rows (one reduction block)
    source = Image.radial_gradient("L").resize((640, 480))
    rgba = Image.merge("RGBA", (source, source.rotate(90), source.transpose(Image.Transpose.FLIP_LEFT_RIGHT), source))
    image = {"RGBA": rgba, "LA": rgba.convert("LA"), "P": rgba.convert("RGB").convert("P"), "RGB": rgba.convert("RGB")}
    if mode == "I;16":
        original = Image.open(io.BytesIO(sixteen_bit_png((640, 480))))
    elif mode == "CMYK":
        original = rgba.convert("RGB").convert("CMYK")
    else:
        original = image[mode]
    original.load()
    assert images._reduce_factor(original.size, (100, 75)) == 6
    expected = images.to_rgb(original.copy()).reduce(6).resize((100, 75), Image.Resampling.LANCZOS)
    got = images.shrink_to_rgb(original.copy(), (100, 75))
    assert got.mode == "RGB" and got.size == (100, 75)
    difference = ImageChops.difference(got, expected).getextrema()
    assert max(high for _, high in difference) <= 2, (mode, difference)


# --- memory, in a fresh process -----------------------------------------------------------

_MEASURE = """
import io, json, sys
from PIL import Image, ImageDraw
sys.path.insert(0, sys.argv[1])
from stylebot import images

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
image = Image.new("RGBA", (4000, 4000), (255, 255, 255, 0))
ImageDraw.Draw(image).ellipse((0, 0, 3000, 2000), fill=(200, 40, 40, 180))
out = io.BytesIO()
image.save(out, "PNG", compress_level=1)
data = out.getvalue()
del image, out
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS: the peak from here on
base = hwm()
images.verify(data)  # the check on arrival
painted = images.load_image(data, max_side=1024)  # the worker (default 512 px: max(2 × 512, 1024))
print(json.dumps({"added": hwm() - base, "size": painted.size}))
"""


def test_a_16_mp_rgba_png_adds_at_most_120_mb():
    """The arrival check and the worker's decode together, as the bot runs them: ≤ 120 MB over the imports.

    Before bounded decoding this cost about 2.5× its 64 MB decoded size (RGBA and RGBa copies).
    """
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(ROOT)], capture_output=True, text=True, timeout=120, check=True
    )
    figures = json.loads(result.stdout)
    assert figures["size"] == [1024, 1024]
    assert figures["added"] <= 120 * MB, f"{figures['added'] / MB:.0f} MB"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork: POSIX only")
def test_a_forked_child_still_decodes():
    """RQ forks a work horse per job: the parent's decoder threads do not exist there, so the child gets new ones."""
    data = encode(Image.new("RGB", (64, 48), "red"), "PNG")
    images.verify(data)  # the parent's decoder pool has a thread now
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            code = 0 if images.load_image(data, wait=5).size == (64, 48) else 2
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

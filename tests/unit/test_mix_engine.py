"""Mixed styles in the engine: ONE objective whose style targets are the weighted mix of two styles' Gram
matrices (issue 14, point 3). CPU, real weights, tiny images, a handful of evaluations; nothing is timed."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import pytest
import torch
from botkit import engine_fixtures, make_content, make_style, quick_recipe
from PIL import Image, ImageDraw

from model import StyleParams
from stylebot.engine import strips

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = Path(os.environ.get("STYLEBOT_WEIGHTS") or REPO.parent / "shared" / "weights" / "vgg19_cache.pth")
if not WEIGHTS.is_file() and (REPO / "vgg19_cache.pth").is_file():
    WEIGHTS = REPO / "vgg19_cache.pth"

needs_weights = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"VGG weights not found at {WEIGHTS}")

QUICK = {"mix_quick": quick_recipe(), "mix_quick30": quick_recipe(coarse_evals=30)}


# The module's fixtures (QUICK registered for every test; a one-thread CPU engine), shared with test_model.
quick_presets, engine = engine_fixtures(WEIGHTS, QUICK, f"VGG weights not found at {WEIGHTS}")


def make_style2(size: tuple[int, int] = (48, 48)) -> Image.Image:
    """Green dots on pale yellow: colours and texture unlike :func:`make_style`'s stripes."""
    img = Image.new("RGB", size, (240, 230, 150))
    draw = ImageDraw.Draw(img)
    for y in range(0, size[1], 8):
        for x in range(0, size[0], 8):
            draw.ellipse((x + 1, y + 1, x + 5, y + 5), fill=(20, 150, 40))
    return img


def pixels(img: Image.Image) -> bytes:
    return img.tobytes()


# --- parameters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mix", [-0.1, 1.5, math.nan])
def test_mix_outside_zero_to_one_is_rejected(mix):
    with pytest.raises(ValueError, match="mix"):
        StyleParams(mix=mix)


def test_mix_defaults_to_half_and_accepts_the_ends():
    assert StyleParams().mix == 0.5
    assert StyleParams(mix=0).mix == 0 and StyleParams(mix=1).mix == 1


# --- the objective's targets --------------------------------------------------------------------------------


@needs_weights
@pytest.mark.parametrize("keep_colors", [False, True], ids=["rgb", "grey"])
def test_mixed_targets_are_the_weighted_mean_of_both_styles_grams(engine, keep_colors):
    content, s1, s2 = make_content((40, 32)), make_style(), make_style2()
    recipe = StyleParams(preset="default").recipe
    one, _ = engine._objective(recipe, content, s1, (40, 32), 1.0, 1e-3, keep_colors, exact=True)
    two, _ = engine._objective(recipe, content, s2, (40, 32), 1.0, 1e-3, keep_colors, exact=True)
    mixed, _ = engine._objective(
        recipe, content, s1, (40, 32), 1.0, 1e-3, keep_colors, exact=True, style2_img=s2, mix=0.25
    )
    for a, b, m in zip(one.style_losses, two.style_losses, mixed.style_losses):
        assert torch.allclose(m.target, 0.75 * a.target + 0.25 * b.target, rtol=1e-5, atol=1e-7)
        assert not torch.allclose(a.target, b.target)  # the two styles really differ
    # The content term does not depend on the styles.
    assert torch.equal(mixed.content_loss.target, one.content_loss.target)


@needs_weights
def test_strip_path_uses_the_mixed_targets(engine, monkeypatch):
    """Large levels run in strips; with a mix they must give the whole image's loss and gradient."""
    size = (70, 53)
    content, s1, s2 = make_content(size), make_style(), make_style2()
    recipe = dataclasses.replace(StyleParams().recipe, tiled=True)
    x = torch.rand(1, 3, size[1], size[0], generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(engine, "_bf16_ok", False)
    monkeypatch.setattr(engine, "tile_px", None)
    whole, _ = engine._objective(recipe, content, s1, size, 1.0, 1e-3, False, style2_img=s2, mix=0.5)
    monkeypatch.setattr(engine, "tile_px", size[0] * 10)
    monkeypatch.setattr(strips, "TILE_ABOVE_PX", 0)
    monkeypatch.setattr(strips, "MIN_ROWS", 1)
    tiled, _ = engine._objective(recipe, content, s1, size, 1.0, 1e-3, False, style2_img=s2, mix=0.5)
    assert tiled._tiled(x) and not whole._tiled(x)
    (l_whole, g_whole), (l_tiled, g_tiled) = whole.value_and_grad(x), tiled.value_and_grad(x)
    assert dataclasses.astuple(l_tiled) == pytest.approx(dataclasses.astuple(l_whole), rel=1e-5, abs=1e-9)
    assert float((g_whole - g_tiled).abs().max()) < 1e-4 * float(g_whole.abs().max())


# --- whole runs ---------------------------------------------------------------------------------------------


@needs_weights
def test_mix_zero_is_style_one_and_mix_one_is_style_two_exactly(engine):
    content, s1, s2 = make_content((32, 24)), make_style(), make_style2()
    params = StyleParams(size=32, preset="mix_quick")
    alone1 = engine.stylize(content, s1, params)
    alone2 = engine.stylize(content, s2, params)
    assert pixels(alone1) != pixels(alone2)
    assert pixels(engine.stylize(content, s1, dataclasses.replace(params, mix=0.0), style2=s2)) == pixels(alone1)
    assert pixels(engine.stylize(content, s1, dataclasses.replace(params, mix=1.0), style2=s2)) == pixels(alone2)


@needs_weights
def test_half_mix_lies_between_the_two_styles(engine):
    """Scored on each single style's objective, the 50/50 result is worse than that style alone and better
    than the other style alone: it took something of both."""
    content, s1, s2 = make_content((32, 32)), make_style(), make_style2()
    params = StyleParams(size=32, preset="mix_quick30")
    only1 = engine.stylize(content, s1, params)
    only2 = engine.stylize(content, s2, params)
    half = engine.stylize(content, s1, dataclasses.replace(params, mix=0.5), style2=s2)
    for style in (s1, s2):
        scores = [engine.evaluate(out, content, style, params).style for out in (only1, half, only2)]
        assert min(scores[0], scores[2]) < scores[1] < max(scores[0], scores[2]), scores
    # evaluate() knows the mixed objective too: the mix scores best on it among the three.
    mixed = [
        engine.evaluate(out, content, s1, dataclasses.replace(params, mix=0.5), style2=s2).style
        for out in (only1, half, only2)
    ]
    assert mixed[1] < min(mixed[0], mixed[2]), mixed


@needs_weights
def test_keep_colors_works_with_a_mix(engine):
    content, s1, s2 = make_content((40, 32)), make_style(), make_style2()
    params = StyleParams(size=40, preset="mix_quick", keep_colors=True)
    out = engine.stylize(content, s1, params, style2=s2)
    ref = content.resize(out.size).convert("YCbCr")
    got = out.convert("YCbCr")
    for band in (1, 2):  # chroma from the content, up to YCbCr rounding
        a = torch.frombuffer(bytearray(got.getchannel(band).tobytes()), dtype=torch.uint8).float()
        b = torch.frombuffer(bytearray(ref.getchannel(band).tobytes()), dtype=torch.uint8).float()
        assert float((a - b).abs().mean()) < 2.0
    lum_out = torch.frombuffer(bytearray(out.convert("L").tobytes()), dtype=torch.uint8).float()
    lum_in = torch.frombuffer(bytearray(content.resize(out.size).convert("L").tobytes()), dtype=torch.uint8).float()
    assert float((lum_out - lum_in).abs().mean()) > 3  # and it is still a transfer

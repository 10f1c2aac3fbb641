"""Engine tests on CPU with real weights, tiny images and few evaluations (the whole file runs in well under
a minute on 2 cores). Nothing here is timed."""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from pathlib import Path

import pytest
import torch
from botkit import engine_fixtures, make_content, make_style, quick_recipe
from PIL import Image

import model
from model import Cancelled, Engine, Progress, StyleParams, WeightsError, output_size
from stylebot.engine import engine as engine_module
from stylebot.engine import strips

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = Path(os.environ.get("STYLEBOT_WEIGHTS") or REPO.parent / "shared" / "weights" / "vgg19_cache.pth")

needs_weights = pytest.mark.skipif(
    not WEIGHTS.is_file(),
    reason=f"VGG weights not found at {WEIGHTS} (set STYLEBOT_WEIGHTS or run `python weights.py build`)",
)

# Cheap presets for tests: same objectives as the real ones, a handful of evaluations per level.
QUICK = {"quick": quick_recipe(), "quick_seed": quick_recipe("seed"), "quick30": quick_recipe(coarse_evals=30)}

# The module's fixtures (QUICK registered for every test; a one-thread CPU engine), shared with test_mix_engine.
quick_presets, engine = engine_fixtures(
    WEIGHTS, QUICK, f"VGG weights not found at {WEIGHTS} (set STYLEBOT_WEIGHTS or run `python weights.py build`)"
)


def pixels(img: Image.Image) -> torch.Tensor:
    return torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).float()


# --- sizes and validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "size", "expected"),
    [
        ((400, 300), 512, (400, 300)),  # never upscaled
        ((1000, 500), 512, (512, 256)),  # landscape
        ((300, 1000), 100, (30, 100)),  # portrait
        ((333, 333), 100, (100, 100)),  # square
        ((1001, 333), 50, (50, 17)),  # 16.63 -> 17: rounded, not a multiple of 8
        ((5000, 3), 64, (64, 1)),  # at least one pixel
    ],
)
def test_output_size(content, size, expected):
    assert output_size(content, size) == expected


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"preset": "fancy"}, "preset"),
        ({"size": 0}, "size"),
        ({"strength": -1}, "strength"),
        ({"tv_weight": -1}, "tv_weight"),
    ],
)
def test_params_validation_names_the_field(kwargs, word):
    with pytest.raises(ValueError, match=word):
        StyleParams(**kwargs)


def test_bad_device_is_rejected():
    with pytest.raises(ValueError, match="device"):
        Engine(WEIGHTS, device="tpu")


def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(WeightsError, match=r"weights\.py build"):
        Engine(tmp_path / "nope.pth", device="cpu")


@needs_weights
@pytest.mark.parametrize("content_size", [(61, 37), (37, 61), (50, 50)], ids=["landscape", "portrait", "square"])
def test_output_has_exact_size_and_aspect(engine, content_size):
    out = engine.stylize(make_content(content_size), make_style(), StyleParams(size=45, preset="quick"))
    assert out.mode == "RGB"
    assert out.size == output_size(content_size, 45)


@needs_weights
@pytest.mark.parametrize("content_size", [(1, 1), (5, 3), (3, 40)])
def test_tiny_images_keep_their_exact_size(engine, content_size):
    out = engine.stylize(make_content(content_size), make_style(), StyleParams(size=64, preset="quick"))
    assert out.size == content_size


@needs_weights
def test_any_input_mode_is_accepted(engine):
    content = make_content((40, 30)).convert("L")
    style = make_style().convert("RGBA")
    out = engine.stylize(content, style, StyleParams(size=40, preset="quick"))
    assert out.mode == "RGB" and out.size == (40, 30)


# --- optimisation -------------------------------------------------------------------------------------------


@needs_weights
@pytest.mark.parametrize("preset", ["quick", "quick_seed"])
def test_losses_go_down(engine, preset):
    content, style = make_content((64, 48)), make_style()
    params = StyleParams(size=64, preset=preset)
    seen: list[Progress] = []
    out = engine.stylize(content, style, params, on_progress=seen.append)
    before = engine.evaluate(content, content, style, params)
    after = engine.evaluate(out, content, style, params)
    assert after.total < 0.5 * before.total
    assert after.style < before.style
    # progress: once per evaluation, counted over all levels, fraction rising to 1
    assert [p.step for p in seen] == list(range(1, len(seen) + 1))
    assert seen[-1].total == len(seen)
    assert all(a.fraction <= b.fraction for a, b in itertools.pairwise(seen))
    assert seen[-1].fraction == pytest.approx(1.0)
    assert seen[-1].eta == pytest.approx(0.0, abs=1e-6)
    assert {p.scale for p in seen} == {32, 64}  # two levels: 32 px, then 64 px


@needs_weights
def test_render_gives_the_current_image(engine):
    images: list[Image.Image] = []

    def on_progress(p: Progress) -> None:
        if p.step in (1, p.total):
            images.append(p.render())

    content = make_content((64, 40))
    out = engine.stylize(content, make_style(), StyleParams(size=64, preset="quick"), on_progress=on_progress)
    first, last = images
    assert first.size == (32, 20) and last.size == out.size


@needs_weights
def test_strength_moves_style_loss_monotonically(engine):
    content, style = make_content((32, 32)), make_style()
    probe = StyleParams(size=32, preset="quick30")  # measure every output on the same (strength 1) objective
    losses = []
    for strength in (0.001, 0.01, 0.1):
        out = engine.stylize(content, style, dataclasses.replace(probe, strength=strength))
        losses.append(engine.evaluate(out, content, style, probe))
    style_losses = [x.style for x in losses]
    assert style_losses[0] > style_losses[1] > style_losses[2]


@needs_weights
def test_keep_colors_keeps_content_chroma(engine):
    content, style = make_content((56, 40)), make_style()
    params = StyleParams(size=56, preset="quick")

    def chroma_error(out: Image.Image) -> float:
        ref = content.resize(out.size).convert("YCbCr")
        got = out.convert("YCbCr")
        diff = [(pixels(got.getchannel(i)) - pixels(ref.getchannel(i))).abs().mean() for i in (1, 2)]
        return float(sum(diff) / 2)

    kept = engine.stylize(content, style, dataclasses.replace(params, keep_colors=True))
    free = engine.stylize(content, style, params)
    assert chroma_error(kept) < 2.0  # only YCbCr rounding
    assert chroma_error(free) > 4 * chroma_error(kept) + 2
    # and the luminance did change: it is still a style transfer
    lum = (pixels(kept.convert("L")) - pixels(content.convert("L"))).abs().mean()
    assert lum > 3


def _mean_chroma(img: Image.Image) -> torch.Tensor:
    ycc = img.convert("YCbCr")
    return torch.stack([pixels(ycc.getchannel(i)).mean() for i in (1, 2)])


def test_match_colors_gives_the_style_the_contents_mean_and_covariance():
    from stylebot.engine import imaging

    gen = torch.Generator().manual_seed(3)
    style = torch.rand(1, 3, 30, 40, generator=gen) * torch.tensor([0.3, 0.9, 0.2]).view(1, 3, 1, 1)
    content = torch.rand(1, 3, 20, 20, generator=gen) * 0.4 + torch.tensor([0.5, 0.2, 0.3]).view(1, 3, 1, 1)
    out = imaging.match_colors(style, content)
    assert out.shape == style.shape
    flat_out, flat_c = out[0].reshape(3, -1).double(), content[0].reshape(3, -1).double()
    assert torch.allclose(flat_out.mean(1), flat_c.mean(1), atol=0.01)
    assert torch.allclose(torch.cov(flat_out), torch.cov(flat_c), atol=0.003)
    # a flat one-colour style stays finite (and takes the content's mean)
    flat = imaging.match_colors(torch.full((1, 3, 8, 8), 0.5), content)
    assert torch.isfinite(flat).all()
    assert torch.isfinite(imaging.match_colors(torch.rand(1, 3, 1, 1), torch.rand(1, 3, 1, 1))).all()  # one pixel
    assert torch.allclose(flat[0].reshape(3, -1).mean(1), flat_c.mean(1).float(), atol=0.02)


@needs_weights
def test_histogram_colors_keep_the_contents_palette_without_a_cast(engine):
    """color_method="histogram": a colour transfer against the recoloured style; the result's mean chroma
    stays the content's (no cast from a strongly coloured style) while a plain run takes the style's."""
    content, style = make_content((56, 40)), make_style()
    params = StyleParams(size=56, preset="quick")
    kept = engine.stylize(content, style, dataclasses.replace(params, keep_colors=True, color_method="histogram"))
    free = engine.stylize(content, style, params)
    ref = _mean_chroma(content.resize(kept.size))
    cast_kept = float((_mean_chroma(kept) - ref).norm())
    cast_free = float((_mean_chroma(free) - ref).norm())
    assert cast_kept < 8.0  # of 255: a trace, where the style's own palette moved the chroma by 18
    assert cast_free > 2 * cast_kept
    assert (pixels(kept.convert("L")) - pixels(content.resize(kept.size).convert("L"))).abs().mean() > 3
    # evaluate() scores the objective the run minimised: the colour image against the recoloured style
    scored = engine.evaluate(
        kept, content, style, dataclasses.replace(params, keep_colors=True, color_method="histogram")
    )
    assert scored.total < engine.evaluate(kept, content, style, params).total


def test_color_method_is_checked():
    with pytest.raises(ValueError, match="color_method"):
        StyleParams(keep_colors=True, color_method="sepia")


# --- cancel and concurrency ---------------------------------------------------------------------------------


@needs_weights
def test_evaluate_scores_keep_colors_on_the_luminance_objective(engine):
    """The CLI prints engine.evaluate(...) for the result: with keep_colors that must be the objective the
    run minimised (on luminance), not the RGB one, which is worlds apart for a colour image."""
    content, style = make_content((48, 40)), make_style()
    params = StyleParams(size=48, keep_colors=True)
    seen: list[float] = []
    out = engine.stylize(content, style, params, on_progress=lambda p: seen.append(p.loss))
    luminance = engine.evaluate(out, content, style, params).total
    rgb = engine.evaluate(out, content, style, dataclasses.replace(params, keep_colors=False)).total
    assert luminance == pytest.approx(min(seen), rel=0.25)  # the saved image is rounded to 8 bits
    assert rgb > 10 * min(seen)


@needs_weights
def test_cancel_stops_within_one_evaluation(engine):
    cancel = threading.Event()
    steps: list[int] = []

    def on_progress(p: Progress) -> None:
        steps.append(p.step)
        if p.step == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        engine.stylize(make_content((64, 64)), make_style(), StyleParams(size=64, preset="quick"), on_progress, cancel)
    assert steps == [1, 2, 3]


@needs_weights
def test_cancel_set_before_start_does_no_work(engine):
    cancel = threading.Event()
    cancel.set()
    calls: list[Progress] = []
    with pytest.raises(Cancelled):
        engine.stylize(make_content((32, 32)), make_style(), StyleParams(size=32, preset="quick"), calls.append, cancel)
    assert calls == []


@needs_weights
def test_two_threads_at_once_match_one_at_a_time(engine):
    jobs = [
        (make_content((48, 36)), make_style(), StyleParams(size=48, preset="quick", strength=0.5)),
        (
            make_content((36, 48)),
            make_style((40, 56)).rotate(90),
            StyleParams(size=48, preset="quick_seed", strength=3),
        ),
    ]
    alone = [engine.stylize(*job) for job in jobs]
    together: list[Image.Image | None] = [None, None]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait()
        together[i] = engine.stylize(*jobs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, together):
        assert b is not None and a.size == b.size
        assert torch.equal(pixels(a), pixels(b))


@needs_weights
def test_seed_zero_is_deterministic_and_another_seed_is_a_variation(engine):
    content, style = make_content((48, 36)), make_style()
    first = engine.stylize(content, style, StyleParams(size=48, preset="quick"))
    again = engine.stylize(content, style, StyleParams(size=48, preset="quick", seed=0))
    seeded = engine.stylize(content, style, StyleParams(size=48, preset="quick", seed=7))
    seeded_again = engine.stylize(content, style, StyleParams(size=48, preset="quick", seed=7))
    assert torch.equal(pixels(first), pixels(again))
    assert torch.equal(pixels(seeded), pixels(seeded_again))
    assert (pixels(seeded) - pixels(first)).abs().mean() > 1e-3


@needs_weights
def test_module_stylize_caches_one_engine(monkeypatch):
    monkeypatch.setattr(engine_module, "_engines", {})
    quick = StyleParams(size=32, preset="quick")
    a = model.stylize(make_content((32, 24)), make_style(), quick, weights=WEIGHTS, device="cpu")
    b = model.stylize(make_content((24, 32)), make_style(), quick, weights=WEIGHTS, device="cpu")
    assert a.size == (32, 24) and b.size == (24, 32)
    assert len(engine_module._engines) == 1


# --- strip tiling (memory) ----------------------------------------------------------------------------------


@needs_weights
@pytest.mark.parametrize("preset", ["default", "seed"])
@pytest.mark.parametrize("size", [(70, 53), (61, 90)], ids=["landscape", "portrait"])
@pytest.mark.parametrize("rows", [5, 10], ids=["2-own-rows", "6-own-rows"])
@pytest.mark.parametrize("keep_colors", [False, True], ids=["rgb", "grey"])
def test_strips_give_the_same_loss_and_gradient(engine, monkeypatch, preset, size, rows, keep_colors):
    """Large levels are evaluated stage by stage in strips with halos; the result must be the whole-image
    one, for odd sizes too (a pooling drops the last odd row), and for the grey image of keep_colors."""
    content, style = make_content(size), make_style()
    recipe = dataclasses.replace(StyleParams(preset=preset).recipe, tiled=True)
    channels = 1 if keep_colors else 3
    x = torch.rand(1, channels, size[1], size[0], generator=torch.Generator().manual_seed(0))
    # fp32 network: on CPUs with native bf16 (AMX, AVX512-BF16) autocast is on, and bf16 rounding alone
    # (~4e-3 relative) differs between a strip and the whole image; the tolerances below are for the split.
    monkeypatch.setattr(engine, "_bf16_ok", False)

    monkeypatch.setattr(engine, "tile_px", None)
    whole, _ = engine._objective(recipe, content, style, size, 1.0, 1e-3, keep_colors)
    monkeypatch.setattr(engine, "tile_px", size[0] * rows)  # strips of `rows` rows, halo included
    monkeypatch.setattr(strips, "TILE_ABOVE_PX", 0)
    monkeypatch.setattr(strips, "MIN_ROWS", 1)
    tiled, _ = engine._objective(recipe, content, style, size, 1.0, 1e-3, keep_colors)
    assert tiled._tiled(x) and len(tiled._strips(0, x, size[0])) > 5

    (l_whole, g_whole), (l_tiled, g_tiled) = whole.value_and_grad(x), tiled.value_and_grad(x)
    for a, b in zip(dataclasses.astuple(l_whole), dataclasses.astuple(l_tiled)):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-9)
    assert g_tiled.shape == g_whole.shape
    if recipe.pool == "avg":  # the default preset, the one that runs tiled: exact everywhere
        assert float((g_whole - g_tiled).abs().max()) < 1e-4 * float(g_whole.abs().max())
    else:
        # Max pooling routes the gradient to the argmax of each window; where two values are within
        # rounding of each other (measured gaps down to 8e-5), a strip and the whole image may pick
        # different ones, so a few pixels differ. The gradient as a whole must still agree.
        assert float((g_whole - g_tiled).norm()) < 1e-2 * float(g_whole.norm())
    assert dataclasses.astuple(tiled.value(x)) == pytest.approx(dataclasses.astuple(l_whole), rel=1e-5, abs=1e-9)


@needs_weights
@pytest.mark.parametrize("tile", [None, 61 * 5], ids=["whole", "strips"])
def test_content_only_scan_is_the_full_scans_content_map(engine, monkeypatch, tile):
    """A level's content target skips the Grams and the stage after the content layer: same map."""
    monkeypatch.setattr(engine, "_bf16_ok", False)
    monkeypatch.setattr(strips, "TILE_ABOVE_PX", 0)
    monkeypatch.setattr(strips, "MIN_ROWS", 1)
    recipe = dataclasses.replace(StyleParams().recipe, tiled=tile is not None)
    monkeypatch.setattr(engine, "tile_px", tile)
    objective, content_t = engine._objective(recipe, make_content((61, 47)), make_style(), (61, 47), 1.0, 0.0, False)
    full = objective._scan(content_t, keep_content=True)
    only = objective._scan(content_t, keep_content=True, content_only=True)
    assert only.grams == [] and len(full.grams) == 5
    assert only.content is not None and full.content is not None
    assert torch.equal(only.content, full.content)


# --- Ctrl-C in the command line -----------------------------------------------------------------------------


def brightness(img: Image.Image) -> float:
    return float(pixels(img.convert("L")).mean())


@needs_weights
def test_every_render_keeps_its_image_after_the_callback(engine):
    """The CLI keeps the last ``Progress.render`` and calls it after Ctrl-C, which lands inside the next
    evaluation. The optimiser used to write its step into the image it had just evaluated, so that render
    gave a near-black picture; every evaluated image must keep its values."""
    content = make_content((48, 40))
    inside: list[Image.Image] = []
    renders = []

    def on_progress(p: Progress) -> None:
        inside.append(p.render())
        renders.append(p.render)
        if p.step == 8:
            raise KeyboardInterrupt  # as if Ctrl-C came during the 9th evaluation

    with pytest.raises(KeyboardInterrupt):
        engine.stylize(content, make_style(), StyleParams(size=48, preset="quick"), on_progress)
    assert len(renders) == 8
    for step, (before, render) in enumerate(zip(inside, renders), start=1):
        assert torch.equal(pixels(render()), pixels(before)), f"the image of step {step} was overwritten"
    assert abs(brightness(renders[-2]()) - brightness(content)) < 40  # a real partial result, not black


# Ctrl-C in ``python model.py`` (a subprocess): tests/e2e/test_engine_cli.py.


@needs_weights
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine: the GPU path runs only where one is"
)
def test_cuda_path_paints_with_falling_losses_and_the_exact_size():
    gpu = Engine(WEIGHTS, device="cuda")
    assert gpu.device.type == "cuda"
    content, style = make_content((96, 64)), make_style()
    losses: list[float] = []
    out = gpu.stylize(content, style, StyleParams(size=96), on_progress=lambda p: losses.append(p.loss))
    assert out.size == (96, 64) and out.mode == "RGB"
    assert losses[-1] < losses[0]

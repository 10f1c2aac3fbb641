"""Per-level thread choice (stylebot/engine/tuning.py): whatever count is chosen, the picture is the same, and
each level's choice is logged once. Real engine, real weights, tiny images; nothing here asserts a timing."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import model
from model import Engine, StyleParams
from stylebot.engine import platform, tuning

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = Path(os.environ.get("STYLEBOT_WEIGHTS") or REPO.parent / "shared" / "weights" / "vgg19_cache.pth")
needs_weights = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"VGG weights not found at {WEIGHTS}")
needs_openmp = pytest.mark.skipif(not platform.threads_are_per_thread(), reason="torch without OpenMP: fixed threads")

#: Two probed levels (32 px: 12 evaluations, probed twice; 64 px: 6, probed once) in fp32, so that only the
#: thread count can differ between runs (bf16 would add its own rounding).
RECIPE = dataclasses.replace(
    model.PRESETS["default"], min_side=32, coarse_evals=12, refine_evals=((1 << 30, 6),), bf16=False
)


@pytest.fixture(autouse=True)
def threads_preset():
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(model.PRESETS, "threads_test", RECIPE)
        yield
    torch.set_num_threads(threads)


def _pair() -> tuple[Image.Image, Image.Image]:
    content = Image.new("RGB", (64, 48), (200, 180, 150))
    ImageDraw.Draw(content).ellipse((10, 8, 50, 40), fill=(40, 90, 160))
    style = Image.new("RGB", (64, 64), (250, 240, 40))
    draw = ImageDraw.Draw(style)
    for i in range(0, 64, 8):
        draw.line((i, 0, 64 - i, 64), fill=(20, 20, 20), width=3)
    return content, style


@needs_weights
@needs_openmp
def test_adaptive_threads_give_the_same_picture_and_log_each_level_once(caplog):
    content, style = _pair()
    params = StyleParams(size=64, preset="threads_test")
    caplog.set_level(logging.INFO, logger="stylebot.engine.tuning")
    adaptive = np.asarray(Engine(WEIGHTS, device="cpu", threads=2).stylize(content, style, params), dtype=float)
    lines = [r.getMessage() for r in caplog.records if r.name == "stylebot.engine.tuning"]
    # one line per level; the first level is always probed ("level 32x24: 1 thread (0.01 s/eval vs 0.02 s with
    # 2)", or on a machine whose other core is busy "(0.01 s/eval; 0.1 idle cores: no probe of 2)"), the
    # second too unless the first's loser was KEEP_ABOVE times slower
    probed = r"[\d.]+ s/eval vs [\d.]+ s with [12]|[\d.]+ s/eval; [\d.]+ idle cores: no probe of 2"
    assert [line.split(":")[0] for line in lines] == ["level 32x24", "level 64x48"], lines
    assert re.search(rf": [12] threads? \(({probed})\)$", lines[0]), lines
    assert re.search(rf": [12] threads? \(({probed}|kept: .+)\)$", lines[1]), lines

    caplog.clear()
    fixed = {
        n: np.asarray(
            Engine(WEIGHTS, device="cpu", threads=n, adaptive=False).stylize(content, style, params), dtype=float
        )
        for n in (1, 2)
    }
    assert [r.getMessage() for r in caplog.records if r.name == "stylebot.engine.tuning"] == [
        "level 32x24: 1 thread (fixed)",
        "level 64x48: 1 thread (fixed)",
        "level 32x24: 2 threads (fixed)",
        "level 64x48: 2 threads (fixed)",
    ]
    # fp32 reductions in another order: rounding only, a fraction of one grey level on average
    for n, image in fixed.items():
        diff = np.abs(adaptive - image)
        assert diff.mean() < 0.5 and diff.max() <= 8, (n, diff.mean(), diff.max())
    assert torch.get_num_threads() == 2  # the caller's own count is given back


def _feed(
    chooser: tuning.LevelThreads, times: dict[int, float], n: int, idle: dict[int, float] | None = None
) -> list[int]:
    """Run ``n`` evaluations whose time (and, given ``idle``, the idle cores they saw) depends only on the
    count they ran on; return the counts used."""
    used = []
    for _ in range(n):
        used.append(chooser.current)
        chooser.after(times[chooser.current], None if idle is None else idle[chooser.current])
    return used


def test_the_cheaper_count_is_kept_and_ties_go_to_one_thread(caplog):
    caplog.set_level(logging.INFO, logger="stylebot.engine.tuning")
    # warm-up on 2, probes 1 then 2, then the cheaper for the rest
    assert _feed(tuning.LevelThreads("a", 2, 8, 2, True), {1: 1.0, 2: 0.6}, 8) == [2, 1, 2, 2, 2, 2, 2, 2]
    assert _feed(tuning.LevelThreads("b", 2, 8, 2, True), {1: 1.0, 2: 1.6}, 8) == [2, 1, 2, 1, 1, 1, 1, 1]
    assert _feed(tuning.LevelThreads("c", 2, 8, 2, True), {1: 1.0, 2: 0.95}, 8)[3:] == [1] * 5  # within MARGIN
    # many evaluations: each count probed twice, alternating
    assert _feed(tuning.LevelThreads("d", 2, 20, 2, True), {1: 1.0, 2: 0.5}, 6) == [2, 1, 2, 1, 2, 2]
    # too few evaluations to probe: the previous level's choice; not adaptive: the full count
    assert _feed(tuning.LevelThreads("e", 2, 4, 1, True), {1: 1.0, 2: 0.5}, 4) == [1] * 4
    assert _feed(tuning.LevelThreads("f", 2, 8, 1, False), {1: 0.1, 2: 1.0}, 8) == [2] * 8
    # the previous level found 2 threads 3x slower: kept without probing (the probe would cost 3 evaluations)
    assert _feed(tuning.LevelThreads("i", 2, 8, 1, True, previous_margin=3.0), {1: 1.0, 2: 0.5}, 8) == [1] * 8
    # warm-up on the previous level's choice
    assert _feed(tuning.LevelThreads("j", 2, 8, 1, True, previous_margin=1.5), {1: 1.0, 2: 3.0}, 4) == [1, 1, 2, 1]
    assert [r.getMessage() for r in caplog.records] == [
        "level a: 2 threads (0.60 s/eval vs 1.00 s with 1)",
        "level b: 1 thread (1.00 s/eval vs 1.60 s with 2)",
        "level c: 1 thread (1.00 s/eval vs 0.95 s with 2)",
        "level d: 2 threads (0.50 s/eval vs 1.00 s with 1)",
        "level e: 1 thread (kept from the previous level)",
        "level f: 2 threads (fixed)",
        "level i: 1 thread (kept: the other count was 3.0x slower a level below)",
        "level j: 1 thread (1.00 s/eval vs 3.00 s with 2)",
    ]


def test_a_neighbour_arriving_mid_level_triggers_one_new_probe(caplog):
    caplog.set_level(logging.DEBUG, logger="stylebot.engine.tuning")
    chooser = tuning.LevelThreads("g", 2, 10, 2, True)
    assert _feed(chooser, {1: 1.0, 2: 0.5}, 4) == [2, 1, 2, 2]
    # a busy neighbour appears: two threads now take 2 s, one thread still 1 s; two slow ones in a row
    assert _feed(chooser, {1: 1.0, 2: 2.0}, 5) == [2, 2, 1, 1, 1]
    assert chooser.reprobes == 1
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert info == ["level g: 2 threads (0.50 s/eval vs 1.00 s with 1)"]  # once per level at INFO
    assert "re-probed: level g: 1 thread (1.00 s/eval vs 2.00 s with 2)" in [r.getMessage() for r in caplog.records]


def test_one_slow_evaluation_is_noise_and_long_levels_recheck_the_other_count():
    chooser = tuning.LevelThreads("h", 2, 80, 2, True)
    assert _feed(chooser, {1: 1.0, 2: 0.5}, 5) == [2, 1, 2, 1, 2]  # warm-up, probes twice
    assert _feed(chooser, {1: 1.0, 2: 5.0}, 1) == [2]  # one burst: no new probe
    assert _feed(chooser, {1: 1.0, 2: 0.5}, tuning.RECHECK_EVERY - 2) == [2] * (tuning.RECHECK_EVERY - 2)
    assert chooser.reprobes == 0
    # the RECHECK_EVERY-th evaluation on 2 threads, then one on 1 thread, which lost: back to 2
    assert _feed(chooser, {1: 1.0, 2: 0.5}, 4) == [2, 1, 2, 2]
    assert chooser.reprobes == 1 and chooser.chosen == 2
    assert chooser.margin == 2.0


def test_stylebot_cpu_bf16_0_turns_bf16_off(monkeypatch):
    """STYLEBOT_CPU_BF16=0 makes the engine paint in fp32 even where the CPU has native bf16 (bench --fp32)."""
    monkeypatch.setenv("STYLEBOT_CPU_BF16", "0")
    platform.cpu_has_native_bf16.cache_clear()
    try:
        assert platform.cpu_has_native_bf16() is False
    finally:
        platform.cpu_has_native_bf16.cache_clear()


def test_a_busy_machine_is_not_probed_with_more_threads(caplog):
    """While one thread ran, no other core sat idle (a busy neighbour): the full count is not probed, the
    level runs on one thread, and the periodic re-check does not probe it either."""
    caplog.set_level(logging.INFO, logger="stylebot.engine.tuning")
    chooser = tuning.LevelThreads("k", 2, 40, 2, True)
    used = _feed(chooser, {1: 1.0, 2: 9.0}, 3 + tuning.RECHECK_EVERY * 2, idle={1: 0.1, 2: 0.0})
    assert used[:2] == [2, 1] and set(used[2:]) == {1}  # warm-up on the previous count, then one thread only
    assert chooser.chosen == 1 and chooser.reprobes == 0
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["level k: 1 thread (1.00 s/eval; 0.1 idle cores: no probe of 2)"]
    # an idle machine is probed as before
    free = tuning.LevelThreads("l", 2, 8, 2, True)
    assert _feed(free, {1: 1.0, 2: 0.6}, 8, idle={1: 0.9, 2: 0.0}) == [2, 1, 2, 2, 2, 2, 2, 2]


def test_idle_cores_from_proc_stat():
    import time as _time

    before = platform.cpu_times()
    if before is None:
        pytest.skip("no /proc/stat on this system: the engine probes without it")
    _time.sleep(0.2)
    idle = platform.idle_cores(before, platform.cpu_times())
    assert idle is not None and 0.0 <= idle <= before[2] + 1e-9
    assert platform.idle_cores(None, before) is None
    assert platform.idle_cores((10, 100, 2), (60, 200, 2)) == pytest.approx(1.0)  # half the ticks idle, of 2 CPUs

"""The timelapse: frames spread over the job's work, a GIF under its size cap, never a failed job.

In-process: the engine's ``Progress`` objects are built here as the engine builds
them (a coarse-to-fine pyramid: many cheap evaluations, then a few costly ones).
"""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path

import pytest
from PIL import Image, ImageSequence

from stylebot.chat import keyboards
from stylebot.engine.params import Progress
from stylebot.jobs import results, timelapse
from stylebot.jobs.job import Job
from stylebot.jobs.timelapse import FRAME_SIDE, FrameRecorder, encode_gif


def pyramid(levels: list[tuple[int, int]]) -> list[float]:
    """Work fractions after each evaluation of a pyramid given as (evaluations, pixels per evaluation)."""
    total = sum(n * px for n, px in levels)
    done, out = 0, []
    for n, px in levels:
        for _ in range(n):
            done += px
            out.append(done / total)
    return out


def noise(size: tuple[int, int]) -> Image.Image:
    """A worst case for GIF compression: every pixel different, every frame different."""
    return Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))


def frames_of(gif: bytes) -> list[Image.Image]:
    with Image.open(io.BytesIO(gif)) as image:
        assert image.format == "GIF"
        return [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]


def feed(recorder: FrameRecorder, fractions: list[float], size: tuple[int, int]) -> list[float]:
    """Run the recorder over a job; returns the fractions at which it rendered."""
    rendered: list[float] = []
    for step, fraction in enumerate(fractions, 1):

        def render(fraction: float = fraction) -> Image.Image:
            rendered.append(fraction)
            return Image.new("RGB", size, (int(255 * fraction), 80, 160))

        recorder.on_progress(Progress(fraction, 1.0, step, len(fractions), max(size), 0.0, render))
    return rendered


def test_recorder_spreads_about_thirty_frames_over_the_work_not_over_the_evaluations() -> None:
    # 512 px by the default recipe: 80 evaluations at 128 px, 24 at 256, 8 at 512.
    fractions = pyramid([(80, 128 * 85), (24, 256 * 171), (8, 512 * 341)])
    recorder = FrameRecorder(frames=30)
    rendered = feed(recorder, fractions, (1024, 682))

    assert len(rendered) == len(recorder.frames)  # it renders only the frames it keeps
    assert 20 <= len(recorder.frames) <= 31
    assert rendered[0] == fractions[0] and rendered[-1] == 1.0  # from the first evaluation to the end
    # Spread by work: no two frames within one step, no gap wider than one step plus the job's biggest jump.
    gaps = [b - a for a, b in itertools.pairwise(rendered)]
    biggest_jump = max(b - a for a, b in itertools.pairwise(fractions))
    assert min(gaps) > 1 / 30 * 0.5
    assert max(gaps) <= 1 / 30 + biggest_jump + 1e-9
    # The coarse level (80 of 112 evaluations, 25 % of the work) gets about its share, not 70 % of the frames.
    coarse_end = fractions[79]
    coarse = sum(1 for f in rendered if f <= coarse_end)
    assert coarse <= round(coarse_end * 30) + 2
    # Kept small: long side at most FRAME_SIDE, aspect of the render.
    assert all(max(f.size) <= FRAME_SIDE for f in recorder.frames)
    assert recorder.frames[-1].size == (320, 213)


def test_a_failing_render_stops_capture_without_raising() -> None:
    recorder = FrameRecorder(frames=10)
    calls = 0

    def broken() -> Image.Image:
        nonlocal calls
        calls += 1
        raise RuntimeError("out of memory while rendering")

    for step, fraction in enumerate(pyramid([(40, 1)]), 1):
        recorder.on_progress(Progress(fraction, 1.0, step, 40, 48, 0.0, broken))
    assert calls == 1 and recorder.frames == []
    assert timelapse.save(Path("/nonexistent"), "job", recorder, Image.new("RGB", (48, 32))) is False


def test_callback_along_feeds_the_recorder_and_the_reporter() -> None:
    seen: list[float] = []
    recorder = FrameRecorder(frames=5)
    both = recorder.along(lambda p: seen.append(p.fraction))
    for step, fraction in enumerate(pyramid([(20, 1)]), 1):
        both(Progress(fraction, 1.0, step, 20, 48, 0.0, lambda: Image.new("RGB", (48, 32))))
    assert len(seen) == 20 and 5 <= len(recorder.frames) <= 6


def test_encoder_keeps_the_results_aspect_and_holds_the_last_frame() -> None:
    frames = [Image.new("RGB", (320, 213), (8 * i, 100, 200 - 6 * i)) for i in range(30)]
    final = Image.new("RGB", (1000, 667), (250, 250, 0))
    gif = encode_gif(frames, final)
    assert gif is not None and len(gif) <= timelapse.MAX_BYTES
    decoded = frames_of(gif)
    assert len(decoded) == 31
    width, height = decoded[0].size
    assert max(width, height) == FRAME_SIDE and abs(width * 667 / 1000 - height) <= 1
    with Image.open(io.BytesIO(gif)) as image:
        image.seek(image.n_frames - 1)
        assert image.info["duration"] == timelapse.HOLD_MS
    assert decoded[-1].getpixel((5, 5))[:2] == (250, 250)  # ends on the result itself


def test_encoder_shrinks_until_it_fits_the_cap() -> None:
    frames = [noise((320, 240)) for _ in range(30)]
    final = noise((640, 480))
    roomy = encode_gif(frames, final)
    assert roomy is not None
    cap = len(roomy) // 4
    small = encode_gif(frames, final, max_bytes=cap)
    assert small is not None and len(small) <= cap
    decoded = frames_of(small)
    assert len(decoded) >= timelapse.MIN_FRAMES
    width, height = decoded[0].size
    assert abs(width * 480 / 640 - height) <= 1  # smaller, same aspect
    assert encode_gif(frames, final, max_bytes=1000) is None  # no GIF rather than one over the cap


def test_save_writes_beside_the_result_and_a_full_disk_only_skips_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = FrameRecorder(frames=12)
    feed(recorder, pyramid([(40, 1)]), (64, 48))
    final = Image.new("RGB", (64, 48), "white")
    assert timelapse.save(tmp_path, "j1", recorder, final) is True
    path = results.timelapse_path(tmp_path, "j1")
    assert path == tmp_path / "j1.gif" and len(frames_of(path.read_bytes())) >= 10
    assert recorder.frames == []  # frames live only for the job's run

    def full_disk(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results, "write_file", full_disk)
    recorder = FrameRecorder(frames=12)
    feed(recorder, pyramid([(40, 1)]), (64, 48))
    assert timelapse.save(tmp_path, "j2", recorder, final) is False
    assert not results.timelapse_path(tmp_path, "j2").exists()


def test_old_timelapses_are_swept_with_old_results(tmp_path: Path) -> None:
    old_png, old_gif = results.result_path(tmp_path, "old"), results.timelapse_path(tmp_path, "old")
    new_gif = results.timelapse_path(tmp_path, "new")
    for path in (old_png, old_gif, new_gif):
        path.write_bytes(b"x")
    past = os.path.getmtime(new_gif) - (results.RESULT_HOURS + 1) * 3600
    for path in (old_png, old_gif):
        os.utime(path, (past, past))
    assert results.sweep_results(tmp_path) == 2
    assert not old_gif.exists() and new_gif.exists()


def test_result_keyboard_has_the_button_only_when_the_timelapse_exists() -> None:
    job = Job(
        user_id=1,
        chat_id=1,
        content_file_id="c",
        style_file_id="s",
        size=48,
        strength=1.0,
        keep_colors=False,
        lang="en",
    )

    def data(markup) -> list[str]:
        return [b.callback_data for row in markup.keyboard for b in row]

    assert f"lapse:{job.id}" not in data(keyboards.result_buttons(job))
    with_lapse = keyboards.result_buttons(job, lapse=True)
    assert f"lapse:{job.id}" in data(with_lapse)
    assert (keyboards.parse(keyboards.LAPSE, f"lapse:{job.id}") or {}).get("job_id") == job.id
    assert keyboards.parse(keyboards.LAPSE, f"full:{job.id}") is None

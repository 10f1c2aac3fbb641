"""timelapse: "How it was painted" — frames captured while the engine paints, and the GIF made of them.

:class:`FrameRecorder` rides on the engine's progress callback. It renders a
snapshot only when the job's work fraction crosses the next of ``frames``
even steps, and keeps it downscaled (long side ≤ ``FRAME_SIDE``), so the
capture costs a few small renders per job (``bench/timelapse.py`` measures
it against a run without capture; the budget is 5 % of engine time).

:func:`encode_gif` turns the frames plus the final result (held at the end)
into a GIF Telegram plays inline via ``sendAnimation``; it shrinks frames,
colours and frame count until the file fits ``MAX_BYTES``. :func:`save` is
what the worker calls after painting: best effort, it never fails the job.
The file lives next to the result PNG (``results.timelapse_path``) and is
swept and forgotten with it; the frames themselves live only in memory for
the job's run.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from stylebot.jobs import results

log = logging.getLogger(__name__)

#: Frames captured per job, spread evenly over its work.
FRAMES = 30
#: Long side of a captured frame and of the animation (px).
FRAME_SIDE = 320
#: The animation must stay under this (Telegram plays small files inline; the issue caps it at 2 MB).
MAX_BYTES = 2 * 1024 * 1024
#: Fewer frames than this and it is not much of an animation: shrinking stops dropping frames here.
MIN_FRAMES = 10
#: Milliseconds per frame, and how long the finished painting is held at the end.
FRAME_MS = 100
HOLD_MS = 1500

#: The ways to make a too-big GIF smaller, tried in order: (scale of the long side, colours, frame share).
_SHRINK = (
    (1.0, 256, 1.0),
    (1.0, 128, 1.0),
    (1.0, 64, 1.0),
    (0.75, 64, 1.0),
    (0.75, 64, 0.5),
    (0.5, 64, 0.5),
    (0.5, 32, 0.5),
    (0.35, 32, 0.5),
)


def _fit(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """``size`` scaled down (never up) so its long side is at most ``long_side``, aspect kept."""
    width, height = size
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


class FrameRecorder:
    """Collects about ``frames`` small snapshots, one each time the work fraction passes the next ``1/frames``.

    Called on the painting thread for every objective evaluation, so the common
    path is one comparison; a capture renders the iterate and shrinks it. Any
    failure to capture is logged once and capture stops: a timelapse is never
    worth a job.
    """

    def __init__(self, frames: int = FRAMES, long_side: int = FRAME_SIDE) -> None:
        self.count = max(1, frames)
        self.long_side = long_side
        self.frames: list[Image.Image] = []
        #: Seconds spent capturing, on the painting thread (what the job paid for the timelapse).
        self.spent = 0.0
        self._next = 0.0
        self._broken = False

    def on_progress(self, progress: Any) -> None:
        """The engine's ``on_progress``: capture when ``progress.fraction`` reached the next step."""
        if self._broken or progress.fraction < self._next:
            return
        started = time.perf_counter()
        try:
            image: Image.Image = progress.render()
            size = _fit(image.size, self.long_side)
            if size != image.size:
                image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
            self.frames.append(image.convert("RGB"))
        except Exception:
            self._broken = True
            log.exception("timelapse: capturing a frame failed; no timelapse for this job")
        # The next step after this fraction: a big jump (a coarse level's end) skips steps, never bunches.
        self._next = (math.floor(progress.fraction * self.count + 1e-9) + 1) / self.count
        self.spent += time.perf_counter() - started

    def along(self, other: Callable[[Any], None] | None) -> Callable[[Any], None]:
        """One progress callback that feeds this recorder, then ``other`` (the status reporter)."""

        def both(progress: Any) -> None:
            self.on_progress(progress)
            if other is not None:
                other(progress)

        return both


def _pick(frames: Sequence[Image.Image], share: float, min_frames: int) -> list[Image.Image]:
    """``share`` of ``frames``, evenly spread, first and last kept (never fewer than ``min_frames``)."""
    n = len(frames)
    keep = min(n, max(min_frames, round(n * share)))
    if keep >= n or keep < 2:
        return list(frames)
    return [frames[round(i * (n - 1) / (keep - 1))] for i in range(keep)]


def _gif(frames: list[Image.Image], size: tuple[int, int], colors: int) -> bytes:
    """One GIF: each frame on its own adaptive palette, the final frame held.

    Per-frame palettes follow the colours as they move from the photo to the
    painting; one shared palette made early frames of a strongly coloured style
    collapse into identical frames (which the GIF writer then merges).
    """
    resized = [f if f.size == size else f.resize(size, Image.Resampling.BILINEAR) for f in frames]
    indexed = [
        f.quantize(colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.FLOYDSTEINBERG) for f in resized
    ]
    durations = [FRAME_MS] * (len(indexed) - 1) + [HOLD_MS]
    out = io.BytesIO()
    indexed[0].save(
        out, "GIF", save_all=True, append_images=indexed[1:], duration=durations, loop=0, optimize=False, disposal=1
    )
    return out.getvalue()


def encode_gif(
    frames: Sequence[Image.Image],
    final: Image.Image,
    max_bytes: int = MAX_BYTES,
    long_side: int = FRAME_SIDE,
    min_frames: int = MIN_FRAMES,
) -> bytes | None:
    """The animation of ``frames`` ending on ``final`` (held), at ``final``'s aspect, at most ``max_bytes``.

    Shrinks step by step (fewer colours, smaller frames, fewer frames) until
    it fits; ``None`` when even the smallest does not (then there is no button).
    """
    if not frames:
        return None
    base = _fit(final.size, long_side)
    last = final.convert("RGB")
    last = last.resize(base, Image.Resampling.LANCZOS) if last.size != base else last
    for scale, colors, share in _SHRINK:
        size = _fit(base, max(1, round(max(base) * scale)))
        data = _gif([*_pick(frames, share, min_frames), last], size, colors)
        if len(data) <= max_bytes:
            return data
        log.info("timelapse: %d bytes at %s px, %d colours; shrinking", len(data), size, colors)
    return None


def save(results_dir: Path, job_id: str, recorder: FrameRecorder | None, final: Image.Image) -> bool:
    """Encode and write the job's timelapse; whether it is there now. Never raises: the result matters, this not.

    A full disk (``OSError``) only means no timelapse (the result PNG's own
    write is where health hears about the disk).
    """
    if recorder is None or len(recorder.frames) < 2:
        return False
    try:
        data = encode_gif(recorder.frames, final)
        if data is None:
            log.warning("job %s: timelapse does not fit %d bytes; left out", job_id, MAX_BYTES)
            return False
        results.write_file(results.timelapse_path(results_dir, job_id), data)
        log.info(
            "job %s: timelapse of %d frames, %d bytes (capture took %.2f s)",
            job_id,
            len(recorder.frames) + 1,
            len(data),
            recorder.spent,
        )
        return True
    except OSError as exc:
        log.warning("job %s: timelapse not saved: %s", job_id, exc)
    except Exception:
        log.exception("job %s: timelapse failed", job_id)
    finally:
        recorder.frames.clear()  # the frames live only as long as the job's run
    return False

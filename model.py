"""model
~~~~~

The style-transfer engine: Gatys et al. (2016) on the first five convolutions of VGG-19, solved
coarse-to-fine. PIL images in, a PIL image out; nothing here knows about Telegram.

Usage::

    >>> from model import Engine, StyleParams
    >>> engine = Engine()                      # loads vgg19_cache.pth once
    >>> out = engine.stylize(content, style, StyleParams(size=512))

or, for a one-off call, the module-level :func:`stylize` (it caches one :class:`Engine` per weights file and
device). ``python model.py CONTENT STYLE -o OUT`` is the command line (see :func:`main`).

How it works (and where it departs from the PyTorch tutorial recipe the original bot used)
-------------------------------------------------------------------------------------------
* **Coarse-to-fine.** The tutorial optimises one image at its final size for ~300 L-BFGS evaluations. Five
  VGG convs see only a 24 px window, so at 512 px that recipe matches fine texture but never the style's
  larger shapes, and each evaluation costs ~3 s on 2 CPU cores. Here the image is solved first at a small
  size (long side 128: ~0.1 s an evaluation), upsampled, and refined at 2x, 4x ... up to the requested size,
  with most evaluations spent where they are cheap. The coarse levels put the large shapes in place; the
  fine levels only add texture. See :data:`PRESETS` for the evaluation counts and why.
* **Same objective available.** ``preset="seed"`` is the tutorial objective exactly (Gram = FᵀF/(c·h·w), MSE,
  style weight 1e6 on conv_1..conv_5 *before* ReLU, content weight 1 on conv_4 = conv2_2, max pooling, no TV,
  content init), so the benchmark can compare the two on one number. ``preset="default"`` is the best
  result per second that we found by looking and measuring (see :data:`PRESETS`).
* **Memory.** One fp32 forward+backward at 512² keeps ~290 MB of activations and gradients, and the
  original recipe peaks above 2 GB. Here large levels are evaluated exactly, stage by stage, in horizontal
  strips (see ``_HALO``): a no-grad pass sums the Gram matrices, then each stage, from the last to the
  first, back-propagates its strips' share; at 512² that costs 1.1-1.2x the whole-image time per
  evaluation for an eighth of its memory (``python bench/strips.py``). The
  default preset takes the style from the ReLU outputs, so the ReLUs run in place; it uses average pooling
  (no int64 max-pool indices); the L-BFGS history is capped in bytes; the content target of a tiled level
  is stored in bfloat16; and at those levels glibc is told to give big blocks back to the OS (``_malloc_for``).
  bfloat16 autocast for the network is used only where the hardware has native bf16 (CUDA, AVX512-BF16,
  AMX): on the AVX2 dev machine it was 6-9x *slower* than fp32 (see ``_cpu_has_native_bf16``).
* **Thread safety.** The network's weights are read-only; every per-call tensor (targets, the image, the
  optimiser) lives inside :meth:`Engine.stylize`, and randomness comes from a local ``torch.Generator``.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from weights import LAYER_SHAPES, WeightsError, load_state_dict

__all__ = [
    "DEFAULT_WEIGHTS",
    "PRESETS",
    "Cancelled",
    "Engine",
    "Losses",
    "Progress",
    "Recipe",
    "StyleParams",
    "WeightsError",
    "output_size",
    "stylize",
]

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = Path(__file__).with_name("vgg19_cache.pth")

# ImageNet statistics the VGG weights were trained with (inputs in 0..1, normalised per channel).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------------------
# Public data types
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """Everything a preset fixes. Internal tuning; callers choose a preset by name in :class:`StyleParams`.

    The pyramid's coarsest level (long side in [min_side, 2·min_side), or the output itself when it is
    smaller) gets ``coarse_evals`` objective evaluations; each finer level gets the count of the first
    ``(max_long_side, evals)`` pair of ``refine_evals`` whose bound it does not exceed.
    """

    taps: str  # "conv": features before ReLU (tutorial); "relu": after it (allows in-place ReLU)
    pool: str  # "max" | "avg"
    style_weight: float  # multiplied by StyleParams.strength
    layer_weights: tuple[float, float, float, float, float]  # style weight of conv_1..conv_5
    content_weight: float
    content_layer: int  # index into conv_1..conv_5 (3 = conv_4 = conv2_2)
    tv_scale: float  # multiplies StyleParams.tv_weight (0 disables TV, as the seed objective has none)
    min_side: int  # long side of the coarsest level
    coarse_evals: int
    refine_evals: tuple[tuple[int, int], ...]
    history: int  # L-BFGS history size
    init_noise: float  # std of the Gaussian noise (seeded by StyleParams.seed) added to the content init
    bf16: bool  # bfloat16 autocast for the network (fp32 image, losses and optimiser)
    channels_last: bool
    tiled: bool  # evaluate large levels in strips on CPU (bounded memory, 1.1-1.2x the time per evaluation)


#: The two presets. Figures from the full ``python bench/engine.py`` (2026-11-25, 2-core dev machine):
#:
#: * seed, 512 px: 100 evaluations at 128, 20 at 256, 10 at 512: 37.6 s against 800 s for (a), the
#:   tutorial's 300 evaluations at 512² (21.3x), with a seed-objective pyramid style loss (full + 1/2 +
#:   1/4 size) of 281 against (a)'s 854 and a content loss 2.9x (a)'s: the coarse levels fix the large
#:   shapes that (a) never gets (its 1/4-size term: 695 against 122). Its weak point is the full-size term
#:   (fine texture: 78 against 32); 5 evaluations at 512 instead of 10 left it at 138.
#: * default: the same Gram/MSE normalisation and weights, but style on the ReLU outputs (in-place ReLUs),
#:   average pooling (Gatys et al. found it gives smoother results; no int64 indices) and strips at large
#:   levels, so 512 px fits the memory budget. With the first strip tiling, 100/30/10 evaluations took
#:   87 s at 512 and 291 s at 1024 on the then busy machine, over the 45 s / 3 min targets, so the counts
#:   were cut to 80/24/8 (4 at 1024). By eye (docs/contact_sheet.jpg) it keeps the dancer crisper than
#:   the seed objective while the background takes the cubist facets. With stage-wise strips and the
#:   per-level malloc setting (``_HALO``, ``_malloc_for``): 39.1 s at 512 px (+201 MB) and 83.4 s at 1024
#:   in the full bench; pyramid style 386, content 5.1 (between (a) and (b) on both).
PRESETS: dict[str, Recipe] = {
    # The tutorial objective exactly; only the solver differs (coarse-to-fine, short history). Not tiled:
    # it is the comparison preset, and one graph per evaluation is faster than strips.
    "seed": Recipe(
        taps="conv",
        pool="max",
        style_weight=1e6,
        layer_weights=(1.0, 1.0, 1.0, 1.0, 1.0),
        content_weight=1.0,
        content_layer=3,
        tv_scale=0.0,
        min_side=128,
        coarse_evals=100,
        refine_evals=((320, 20), (640, 10), (1 << 30, 4)),
        history=10,
        init_noise=0.0,
        bf16=True,
        channels_last=True,
        tiled=False,
    ),
    "default": Recipe(
        taps="relu",
        pool="avg",
        style_weight=1e6,
        layer_weights=(1.0, 1.0, 1.0, 1.0, 1.0),
        content_weight=1.0,
        content_layer=3,
        tv_scale=1.0,
        min_side=128,
        coarse_evals=80,
        refine_evals=((320, 24), (640, 8), (1 << 30, 4)),
        history=10,
        init_noise=0.0,
        bf16=True,
        channels_last=True,
        tiled=True,
    ),
}


@dataclass(frozen=True)
class StyleParams:
    """What a caller may choose for one job. Defaults live here only (the CLI reads them back)."""

    size: int = 512  # long side of the output, px; never more than the content's own long side
    strength: float = 1.0  # multiplier on the style weight
    keep_colors: bool = False  # luminance-only transfer; chroma from the content
    tv_weight: float = 1e-3  # total variation weight (smoothness); ignored by preset "seed"
    seed: int = 0  # seeds the initial noise of presets that add some (neither does now: both start from the content)
    preset: str = "default"  # "default" | "seed" (the original bot's objective, exactly)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}, not {self.preset!r}")
        if self.size < 1:
            raise ValueError(f"size must be a positive number of pixels, not {self.size}")
        if not (self.strength >= 0 and math.isfinite(self.strength)):
            raise ValueError(f"strength must be a finite number >= 0, not {self.strength}")
        if not (self.tv_weight >= 0 and math.isfinite(self.tv_weight)):
            raise ValueError(f"tv_weight must be a finite number >= 0, not {self.tv_weight}")

    @property
    def recipe(self) -> Recipe:
        return PRESETS[self.preset]


@dataclass(frozen=True)
class Progress:
    """Passed to ``on_progress`` once per objective evaluation."""

    fraction: float  # 0..1 of the whole job (by estimated work, not by count)
    eta: float  # seconds left (estimate from the speed so far)
    step: int  # evaluations done, all levels
    total: int  # evaluations planned, all levels
    scale: int  # long side of the level being optimised
    loss: float  # objective at this evaluation
    render: Callable[[], Image.Image] = field(repr=False)  # current image; valid only inside the callback


@dataclass(frozen=True)
class Losses:
    """One objective evaluation, unweighted by strength; ``total`` is what the optimiser minimises."""

    style: float  # style_weight * sum_l layer_weight_l * MSE(Gram_l)
    content: float  # content_weight * MSE(features at the content layer)
    tv: float
    total: float


class Cancelled(Exception):
    """The job's ``cancel`` event was set; raised within one evaluation."""


def output_size(content_size: tuple[int, int], size: int) -> tuple[int, int]:
    """(width, height) of the output: long side ``min(size, content long side)``, aspect ratio kept."""
    w, h = content_size
    long_side = max(w, h)
    target = min(size, long_side)
    scale = target / long_side
    if w >= h:
        return target, max(1, round(h * scale))
    return max(1, round(w * scale)), target


# ---------------------------------------------------------------------------------------------------------
# Network: the first five convolutions of VGG-19
# ---------------------------------------------------------------------------------------------------------


class VGGFeatures(nn.Module):
    """conv1_1, conv1_2, pool, conv2_1, conv2_2, pool, conv3_1 of VGG-19 (named conv_1..conv_5).

    The cut after conv3_1 is the original bot's; deeper layers would see larger shapes but cost more per
    pixel, and the coarse-to-fine pyramid gives the large shapes more cheaply (see the module docstring).
    ``forward`` returns the five feature maps, either before ReLU (``taps="conv"``, as the tutorial) or after
    it (``taps="relu"``; then the ReLU runs in place and saves one activation copy per layer).
    """

    #: The network in three stages, cut at the two 2x2 poolings: conv_1-2 | pool, conv_3-4 | pool, conv_5.
    #: Strip tiling (see ``_HALO``) works stage by stage, because within a stage every feature map has the
    #: stage input's resolution and a receptive-field radius of at most 2 rows.
    STAGES = ((0, 1), (2, 3), (4,))

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        for i in range(1, 6):
            out_c, in_c, kh, kw = LAYER_SHAPES[f"conv_{i}.weight"]
            conv = nn.Conv2d(in_c, out_c, (kh, kw), padding=1)
            conv.weight.data.copy_(state[f"conv_{i}.weight"])
            conv.bias.data.copy_(state[f"conv_{i}.bias"])
            self.convs.append(conv)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def stage(
        self, s: int, x: torch.Tensor, taps: str = "relu", pool: str = "avg"
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Stage ``s`` on ``x``: (its feature maps, its pooled output, which is the next stage's input).

        Stage 0 takes the image (1, 3, H, W) in 0..1 and normalises it as in training (3 channels: fp32 is
        free). The last stage has no pooling; its "output" is its last feature map.
        """
        if s == 0:
            x = (x - self.mean) / self.std
        feats = []
        for i in self.STAGES[s]:
            x = self.convs[i](x)
            if taps == "conv":
                feats.append(x)
                x = F.relu(x)  # not in place: the pre-ReLU map is kept for the loss
            else:
                x = F.relu_(x)
                feats.append(x)
        if s < len(self.STAGES) - 1:
            x = (F.max_pool2d if pool == "max" else F.avg_pool2d)(x, 2)
        return feats, x

    def forward(self, x: torch.Tensor, taps: str = "relu", pool: str = "avg") -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        for s in range(len(self.STAGES)):
            f, x = self.stage(s, x, taps, pool)
            feats += f
        return feats


# ---------------------------------------------------------------------------------------------------------
# Losses: tiny modules with buffer targets, one per term
# ---------------------------------------------------------------------------------------------------------


class _GramMSE(torch.autograd.Function):
    """weight · MSE(FᵀF/N, target) with a hand-written backward: dL/dF = F · 4·weight·(G - T) / (c²·N).

    ``flat`` is the (h·w, c) view of a feature map (see :func:`_flat`) and N = c·h·w. The normalisation by
    c·h·w (not by h·w, nor Gatys' 1/(4N²M²)) is the tutorial's, and so the seed objective's.

    Autograd on ``flat.t() @ flat`` would run two matrix products in the backward (one per operand) and
    add their full-size results; the Gram products were 37% of an evaluation's time at 256² (profiled),
    so one product and no extra feature-sized buffer is a real saving.
    """

    @staticmethod
    def forward(ctx, flat: torch.Tensor, target: torch.Tensor, weight: float, n: int) -> torch.Tensor:
        diff = (flat.t() @ flat).float().div_(n).sub_(target)
        ctx.save_for_backward(flat, diff)
        ctx.scale = 4.0 * weight / (diff.numel() * n)
        return weight * diff.square().mean()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        flat, diff = ctx.saved_tensors
        coeff = (diff * (ctx.scale * grad_out)).to(flat.dtype)
        return flat @ coeff, None, None, None


class StyleLoss(nn.Module):
    """weight · MSE(Gram(features), target Gram)."""

    def __init__(self, target_gram: torch.Tensor, weight: float) -> None:
        super().__init__()
        self.register_buffer("target", target_gram)
        self.weight = weight

    def forward(self, f: torch.Tensor, gram: bool = False) -> torch.Tensor:
        """``f``: features (1, c, h, w), or their Gram matrix already when ``gram`` is true."""
        if gram:
            return self.weight * F.mse_loss(f, self.target)
        _, c, h, w = f.shape
        return _GramMSE.apply(_flat(f), self.target, self.weight, c * h * w)

    def extra_repr(self) -> str:
        return f"channels={self.target.shape[0]}, weight={self.weight:g}"


class ContentLoss(nn.Module):
    """weight · MSE(features, target features)."""

    def __init__(self, target: torch.Tensor, weight: float) -> None:
        super().__init__()
        self.register_buffer("target", target)
        self.weight = weight

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.weight * F.mse_loss(f.float(), self.target.float())

    def extra_repr(self) -> str:
        return f"shape={tuple(self.target.shape)}, weight={self.weight:g}"


class TVLoss(nn.Module):
    """weight · mean squared difference between neighbouring pixels (a smoothness prior)."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx = x[..., :, 1:] - x[..., :, :-1]
        dy = x[..., 1:, :] - x[..., :-1, :]
        return self.weight * (dx.square().mean() + dy.square().mean())


# ---------------------------------------------------------------------------------------------------------
# Image helpers
# ---------------------------------------------------------------------------------------------------------


def _to_tensor(img: Image.Image, device: torch.device) -> torch.Tensor:
    """PIL RGB or L -> (1, C, H, W) float32 in 0..1."""
    t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    c = len(img.getbands())
    return t.view(img.height, img.width, c).permute(2, 0, 1).unsqueeze(0).to(device, torch.float32).div_(255)


def _to_image(x: torch.Tensor) -> Image.Image:
    """(1, C, H, W) in 0..1 -> PIL RGB (C=3) or L (C=1)."""
    arr = x.detach()[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous().cpu()
    mode = "RGB" if arr.shape[2] == 3 else "L"
    return Image.frombytes(mode, (arr.shape[1], arr.shape[0]), arr.numpy().tobytes())


def _resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    return img if img.size == size else img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _style_size(style: Image.Image, long_side: int) -> tuple[int, int]:
    """The style is scaled so that its long side equals the output level's long side, aspect kept."""
    w, h = style.size
    s = long_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _luminance(img: Image.Image) -> Image.Image:
    return img.convert("YCbCr").getchannel(0)


def _match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style's luminance to the content's mean and std (Gatys et al. 2017, colour
    preservation), so luminance-only transfer does not carry the style's brightness over."""
    s_mean, s_std = style_y.mean(), style_y.std().clamp_min(1e-4)
    c_mean, c_std = content_y.mean(), content_y.std()
    return ((style_y - s_mean) / s_std * c_std + c_mean).clamp(0, 1)


def _with_chroma(y: Image.Image, content: Image.Image) -> Image.Image:
    """Luminance ``y`` + the content's Cb/Cr (resized to ``y``) -> RGB."""
    _, cb, cr = _resize(content, y.size).convert("YCbCr").split()
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")


def _levels(size: tuple[int, int], min_side: int) -> list[tuple[int, int]]:
    """Pyramid sizes from the coarsest to the output size, halving the long side while it stays >= min_side."""
    w, h = size
    out = [size]
    f = 0.5
    while max(w, h) * f >= min_side:
        out.append((max(1, round(w * f)), max(1, round(h * f))))
        f /= 2
    return out[::-1]


# ---------------------------------------------------------------------------------------------------------
# Engine
# ---------------------------------------------------------------------------------------------------------


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use 'auto' or 'cpu'")
    return dev


def _is_tiled(w: int, h: int, tile_px: int | None) -> bool:
    """Whether a level of w x h pixels is evaluated in strips (``tile_px`` None: never)."""
    return bool(tile_px) and w * h > TILE_ABOVE_PX and min(w, h) >= 4


def _mmap_threshold(size: tuple[int, int] | None, tile_px: int | None) -> int:
    """glibc's mmap threshold, in bytes, for a level of ``size`` (w, h); None: not tuned, as a small level."""
    if size is None:
        return 32 << 20
    w, h = size
    if _is_tiled(w, h, tile_px):
        # Just above one strip's feature map (64 channels x its rows x w in fp32 at stage 0, the same
        # bytes at the later stages): strip maps are reused from the heap, larger blocks are mmap-served.
        return _strip_rows(tile_px, w) * w * 64 * 4 * 5 // 4
    return 1 << 20 if w * h > MMAP_ABOVE_PX else 32 << 20


def _malloc_for(threshold: int) -> None:
    """Trim the heap and set glibc's mmap threshold for the level about to run (process-wide,
    Linux/glibc only; elsewhere a no-op). :func:`_mmap_threshold` chooses it, because:

    Each block that glibc serves by mmap is returned on free and costs fresh page faults when the next
    one is mapped, which are expensive in this VM; heap blocks are reused, but a heap fragments and
    never shrinks past a live block. Measured on whole 512 px default jobs, one after the other on the
    idle dev machine, with a per-level RSS sampler (not kept; ``bench/strips.py`` shows the
    per-evaluation side of it):

    * glibc's default (a threshold that rises to 32 MB): heap only, 27.5 s, +300 MB (over budget);
    * 1 MB threshold at every level above MMAP_ABOVE_PX: 38.6 s, +198 MB, a quarter of the CPU time
      in the kernel (page faults);
    * per level, as here: small levels 32 MB (heap: the 128 px level took 20 s instead of 8 s under
      1 MB), the untiled 256 px level 1 MB (its whole-image graph in the heap peaked at +260 MB),
      strip-tiled levels just above a strip's feature map, with 8k px strips: 34.5 s, +218 MB.

    Two jobs at different levels at once just share the last setting; that changes memory and speed,
    never results.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
        libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def _cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX, where oneDNN runs bf16 convolutions natively.

    Measured on the 2-core AVX2 dev machine (no native bf16): a 64->64 3x3 conv at 128² takes 0.032 s
    forward / 0.056 s backward in fp32 channels-last, but 0.198 s / 0.500 s in bf16 (emulated), i.e.
    6-9x slower; and a whole 128 px evaluation went from ~0.1 s to ~9 s. So bf16 is used only where the
    hardware has it (and on CUDA).
    """
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch without these probes: stay in fp32
        return False


# Strip tiling (memory). One fp32 forward+backward keeps ~1.2 KB of activations and gradients per pixel
# (measured: +432-465 MB above the pre-evaluation RSS at 512²), so a 512² level cannot be
# differentiated in one piece within the 230 MB budget. The losses allow an exact split: the Gram matrices
# are sums over positions, and once the Grams are known the gradient of each position's features is local,
# dL/dF = F·(dL/dG + dL/dGᵀ)/N. So a large level is evaluated stage by stage (``VGGFeatures.STAGES``):
#
# 1. a no-grad pass runs each stage over horizontal strips, sums the five Grams (and the content error),
#    and keeps only the two pooled stage outputs (at 512²: 17 MB and 8 MB);
# 2. a backward pass runs the stages in reverse. Each re-computes its strips with autograd and
#    back-propagates dL/dF for its own feature maps plus the gradient arriving from the next stage into
#    its pooled output, which yields the gradient for its input, and so on down to the image.
#
# Within a stage every map has the input's resolution and two 3x3 convs see only 2 rows either side, so a
# strip needs a halo of just _HALO = 2 rows (even, so the 2x2 pooling lines up). The first version of the
# tiling cut the whole network into image strips, whose halo had to cover conv_5's 10 px radius (16 rows):
# at 512² its strips re-computed 50% of the rows, and an evaluation took 2.1x the whole-image time (4.5 s
# against 2.1 s, torch.profiler: 3x the convolution time); stage by stage the overhead is the one extra
# forward, and strip size hardly matters (16k to 96k px: 3.1 to 3.0 s), so strips can be small.
_HALO = 2
#: Strip budget on CPU, in pixels of the stage input (rows x width, halo included) at stage 0; later
#: stages get the same number of rows (their maps have 2x the channels at 1/2 the width per stage).
TILE_PX = 8 * 1024
#: Levels up to this many pixels run in one piece: the 256 px level of a 512 px job takes 0.40-0.46 s an
#: evaluation whole against 0.75 s in strips, and its peak (+195 MB over the imports, with glibc's 1 MB
#: mmap threshold from MMAP_ABOVE_PX) stays below the 512 px level's (+212 MB). (With the first strip
#: tiling and the heap left to grow at that level, 300² peaked at +255 MB.)
TILE_ABOVE_PX = 300 * 300
#: Untiled levels above this many pixels get glibc's 1 MB mmap threshold (see ``_malloc_for``): the 256²
#: level of a 512 px job does; a 200 px job's single 200² level keeps the heap (16.6-19.4 s against
#: 22.0-26.2 s under 1 MB, for ~+50 MB; ``python model.py ... --size 200``, alternating).
MMAP_ABOVE_PX = 40_000
#: The no-grad pass keeps only two feature maps alive at a time, so its strips can be this much larger.
_SCAN_FACTOR = 2
#: Cap on the L-BFGS history's memory: at 512² a (s, y) pair is 6.3 MB, so 20 MB keeps 3 pairs there
#: (10 up to 256²); a refinement level of a few evaluations cannot use more than a few pairs anyway.
HISTORY_BYTES = 20 << 20

Strip = tuple[int, int, int, int]
#: Strips have at least this many rows, halo included: with 8k px at 1024 px wide, 8 rows (4 of them
#: halo) doubled the convolution work (12.1 s an evaluation at 1024² against 4x the 512² one's 2.0 s).
_MIN_ROWS = 16


def _strip_rows(tile_px: int, image_w: int) -> int:
    """Rows per strip (halo included) for a level ``image_w`` pixels wide; every stage gets as many rows
    of its own input (half the width, twice the channels: the same bytes)."""
    return max(_MIN_ROWS, tile_px // image_w)


def _strip_plan(h: int, rows: int) -> list[Strip]:
    """(r0, r1, c0, c1) per strip: rows [r0, r1) are the strip's own, [c0, c1) are computed (halo included).

    Own rows start at even rows, so a strip's pooled output rows are exactly its own rows halved.
    """
    own = max(2, (rows - 2 * _HALO) // 2 * 2)
    if own >= h:
        return [(0, h, 0, h)]
    return [(r0, min(h, r0 + own), max(0, r0 - _HALO), min(h, r0 + own + _HALO)) for r0 in range(0, h, own)]


def _own(f: torch.Tensor, strip: Strip, h: int, stride: int = 1) -> torch.Tensor:
    """The rows of ``f`` (computed on rows [c0, c1) of an h-row input, at 1/stride of its resolution)
    that belong to the strip; the last strip also takes the odd row a pooling leaves over."""
    r0, r1, c0, _ = strip
    return f[:, :, (r0 - c0) // stride : (None if r1 == h else (r1 - c0) // stride)]


def _flat(f: torch.Tensor) -> torch.Tensor:
    """(1, c, h, w) -> (h·w, c); a view for channels-last tensors."""
    return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])


def _mm_into(a: torch.Tensor, b: torch.Tensor, dst: torch.Tensor) -> None:
    """dst (1, c, h, w) <- a @ b laid out as by :func:`_flat`; written in place when dst's layout allows."""
    flat = _flat(dst)
    if flat.dtype == a.dtype and flat.is_contiguous() and flat.data_ptr() == dst.data_ptr():
        torch.mm(a, b, out=flat)
    else:
        _, c, h, w = dst.shape
        dst.copy_((a @ b).view(1, h, w, c).permute(0, 3, 1, 2))


class _Objective:
    """The loss modules of one level: targets computed once (no autograd), then evaluated per step.

    ``tile_px``: levels with more pixels than :data:`TILE_ABOVE_PX` are evaluated stage by stage in
    strips of this budget (see ``_HALO``); None = always in one piece.
    ``target_dtype``: storage of the content target (bfloat16 halves the largest per-level buffer).
    """

    def __init__(
        self,
        net: VGGFeatures,
        recipe: Recipe,
        content: torch.Tensor,
        style: torch.Tensor,
        strength: float,
        tv_weight: float,
        autocast: Callable[[], torch.autocast],
        channels_last: bool,
        tile_px: int | None = None,
        target_dtype: torch.dtype = torch.float32,
    ) -> None:
        self.net, self.recipe, self.autocast, self.channels_last = net, recipe, autocast, channels_last
        self.tile_px = tile_px
        style_grams, _, _, _ = self._scan(style, keep_content=False)
        self.style_losses = [
            StyleLoss(g, recipe.style_weight * strength * lw) for g, lw in zip(style_grams, recipe.layer_weights)
        ]
        _, c_feat, _, _ = self._scan(content, keep_content=True, content_dtype=target_dtype)
        self.content_loss = ContentLoss(c_feat, recipe.content_weight)
        self.tv_loss = TVLoss(tv_weight * recipe.tv_scale)

    def _stage(self, s: int, x: torch.Tensor, whole: bool = True) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Stage ``s`` on ``x``; ``whole``: x is the whole stage input, not a strip (tiny images are padded)."""
        if s == 0:
            if x.shape[1] == 1:  # luminance-only transfer: a grey image
                x = x.expand(-1, 3, -1, -1)
            h, w = x.shape[-2:]
            # The two 2x2 poolings need 4 px: repeat the edge (the output keeps its size). Strips are
            # never padded: their short edge rows are halo or pooled away exactly as in the whole image.
            if whole and (h < 4 or w < 4):
                x = F.pad(x, (0, max(0, 4 - w), 0, max(0, 4 - h)), mode="replicate")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            return self.net.stage(s, x, self.recipe.taps, self.recipe.pool)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        for s in range(len(VGGFeatures.STAGES)):
            f, x = self._stage(s, x)
            feats += f
        return feats

    def _tiled(self, x: torch.Tensor) -> bool:
        h, w = x.shape[-2:]
        return _is_tiled(w, h, self.tile_px)

    def _strips(self, s: int, inp: torch.Tensor, image_w: int, factor: int = 1) -> list[Strip]:
        """Strips over the rows of stage ``s``'s input, for a tiled level (see :meth:`_tiled`)."""
        assert self.tile_px
        return _strip_plan(inp.shape[-2], _strip_rows(self.tile_px * factor, image_w))

    @torch.no_grad()
    def _scan(
        self,
        x: torch.Tensor,
        keep_content: bool,
        content_dtype: torch.dtype = torch.float32,
        keep_outputs: bool = False,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None, list[int], list[torch.Tensor]]:
        """No-grad pass, stage by stage in strips when the level is tiled: the five Grams (fp32), the
        content layer's features if asked, the element count c·h·w of each feature map (the Gram
        normalisation N) and, if asked, the pooled outputs of the stages but the last (the inputs of the
        next ones, for the backward pass).
        """
        image_w = x.shape[-1]
        tiled = self._tiled(x)
        sums: list[torch.Tensor | int] = [0] * 5
        counts = [0] * 5
        content = None
        outputs: list[torch.Tensor] = []
        inp = x
        for s, layers in enumerate(VGGFeatures.STAGES):
            h = inp.shape[-2]
            last = s == len(VGGFeatures.STAGES) - 1
            nxt: torch.Tensor | None = None
            strips = self._strips(s, inp, image_w, _SCAN_FACTOR) if tiled else [(0, h, 0, h)]
            for strip in strips:
                feats, out = self._stage(s, inp[:, :, strip[2] : strip[3]], whole=not tiled)
                for i, f in zip(layers, feats):
                    own = _own(f, strip, h)
                    flat = _flat(own).float()
                    sums[i] = sums[i] + flat.t() @ flat
                    counts[i] += flat.numel()
                    if keep_content and i == self.recipe.content_layer:
                        if len(strips) == 1:  # the whole map (a tiny image's is padded: not h rows)
                            content = own.to(content_dtype)
                        else:
                            if content is None:
                                content = f.new_empty((1, f.shape[1], h, f.shape[3]), dtype=content_dtype)
                            content[:, :, strip[0] : strip[0] + own.shape[2]] = own
                del feats
                if not last and len(strips) == 1:
                    nxt = out
                elif not last:
                    if nxt is None:
                        layout = torch.channels_last if self.channels_last else torch.contiguous_format
                        nxt = torch.empty((1, out.shape[1], h // 2, out.shape[3]), dtype=out.dtype,
                                          device=out.device, memory_format=layout)
                    own = _own(out, strip, h, 2)
                    nxt[:, :, strip[0] // 2 : strip[0] // 2 + own.shape[2]] = own
                del out
            if last:
                break
            assert nxt is not None
            if keep_outputs:
                outputs.append(nxt)
            inp = nxt
        grams = [s_ / n for s_, n in zip(sums, counts)]  # FᵀF / (c·h·w), as _GramMSE
        return grams, content, counts, outputs

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, Losses]:
        """The objective as one autograd graph (whole image): what the tiled path must equal."""
        feats = self._features(x)
        style = sum(loss(f) for loss, f in zip(self.style_losses, feats))
        content = self.content_loss(feats[self.recipe.content_layer])
        del feats
        tv = self.tv_loss(x) if self.tv_loss.weight else torch.zeros((), device=x.device)
        total = style + content + tv
        return total, Losses(*(float(t.detach()) for t in (style, content, tv, total)))

    def value(self, x: torch.Tensor) -> Losses:
        """The objective without autograd, in strips when the level is large: cheap in memory at any size."""
        grams, feat, _, _ = self._scan(x, keep_content=True)
        style = sum(float(loss(g, gram=True)) for loss, g in zip(self.style_losses, grams))
        content = float(self.content_loss(feat))
        tv = float(self.tv_loss(x)) if self.tv_loss.weight else 0.0
        return Losses(style, content, tv, style + content + tv)

    def value_and_grad(self, x: torch.Tensor) -> tuple[Losses, torch.Tensor]:
        """Loss and its gradient with respect to x (same layout as x), whole or stage by stage in strips."""
        if not self._tiled(x):
            xk = x.detach().requires_grad_(True)
            loss, losses = self(xk)
            loss.backward()
            # The gradient comes back in the network's channels-last layout; the optimiser works on flat
            # vectors, which needs the standard layout (3 channels: the copy costs nothing).
            return losses, xk.grad.contiguous()
        return self._tiled_value_and_grad(x.detach())

    def _tiled_value_and_grad(self, x: torch.Tensor) -> tuple[Losses, torch.Tensor]:
        grams, _, counts, outputs = self._scan(x, keep_content=False, keep_outputs=True)
        style = 0.0
        coeffs = []  # dL/dF = F @ coeff for each layer: coeff = (dL/dG + dL/dGᵀ) / N = 2·dL/dG / N
        for g, loss, f_count in zip(grams, self.style_losses, counts):
            diff = g - loss.target
            style += loss.weight * float(diff.square().mean())
            coeffs.append(diff * (4.0 * loss.weight / diff.numel() / f_count))
        del grams
        inputs = [x, *outputs]
        del outputs
        content = [0.0]
        d_out: torch.Tensor | None = None
        for s in reversed(range(len(VGGFeatures.STAGES))):
            inp = inputs.pop()
            d_out = self._stage_grad(s, inp, d_out, coeffs, content, x.shape[-1])
            del inp
        assert d_out is not None
        grad = d_out.contiguous()
        content_loss = self.content_loss.weight * content[0] / self.content_loss.target.numel()
        tv = 0.0
        if self.tv_loss.weight:
            xk = x.detach().requires_grad_(True)
            tv_t = self.tv_loss(xk)
            tv_t.backward()
            grad += xk.grad
            tv = float(tv_t.detach())
        return Losses(style, content_loss, tv, style + content_loss + tv), grad

    def _stage_grad(
        self,
        s: int,
        inp: torch.Tensor,
        d_out: torch.Tensor | None,
        coeffs: list[torch.Tensor],
        content: list[float],
        image_w: int,
    ) -> torch.Tensor:
        """Gradient of the loss with respect to stage ``s``'s input, strip by strip.

        Each strip back-propagates dL/dF = F @ coeff into its own rows of the stage's feature maps (plus
        the content error at the content layer, whose squared sum is added to ``content[0]``) and
        ``d_out`` (the gradient of the next stage's input) into its own rows of the pooled output.
        """
        h = inp.shape[-2]
        cl, target = self.recipe.content_layer, self.content_loss.target
        c_scale = 2.0 * self.content_loss.weight / target.numel()
        d_inp = torch.zeros_like(inp)
        for strip in self._strips(s, inp, image_w):
            xc = inp[:, :, strip[2] : strip[3]].detach().requires_grad_(True)
            feats, out = self._stage(s, xc, whole=False)
            # Gradients for the whole computed maps, zero in the halo rows; each own part is written in
            # place (the matrix product straight into it when the layout allows: no copies).
            grads = []
            for i, f in zip(VGGFeatures.STAGES[s], feats):
                own = _own(f, strip, h)
                g = torch.zeros_like(f, dtype=torch.float32)
                g_own = _own(g, strip, h)
                _mm_into(_flat(own.detach()).float(), coeffs[i], g_own)
                if i == cl:
                    err = own.detach().float() - target[:, :, strip[0] : strip[0] + own.shape[2]].float()
                    content[0] += float(err.square().sum())
                    g_own.add_(err, alpha=c_scale)
                    del err
                grads.append(g.to(f.dtype))
            tensors = list(feats)
            if d_out is not None:
                g = torch.zeros_like(out)
                g_own = _own(g, strip, h, 2)
                g_own.copy_(d_out[:, :, strip[0] // 2 : strip[0] // 2 + g_own.shape[2]])
                tensors.append(out)
                grads.append(g)
            del feats, out, own, g, g_own
            torch.autograd.backward(tensors, grads)
            del tensors, grads
            d_inp[:, :, strip[2] : strip[3]] += xc.grad
            del xc
        return d_inp


# ---------------------------------------------------------------------------------------------------------
# Optimiser: L-BFGS on the box [0, 1], monotone
# ---------------------------------------------------------------------------------------------------------


def _minimize(
    evaluate: Callable[[torch.Tensor], tuple[float, torch.Tensor]], x: torch.Tensor, n_evals: int, history: int
) -> torch.Tensor:
    """Minimise with at most ``n_evals`` calls of ``evaluate(x) -> (loss, grad)``; return the best point.

    Why our own and not ``torch.optim.LBFGS``: (1) the tutorial's ``LBFGS(lr=1)`` without a line search
    lets the loss jump up (measured: 50k -> 93k within the first 8 evaluations at 32 px), which the
    tutorial's 300 evaluations absorb but a 10-evaluation refinement level cannot; here a step that
    raises the loss is halved and retried, so the loss only goes down. (2) The image is projected on
    [0, 1] after each step and the curvature pair is taken from the projected move, instead of clamping
    behind the optimiser's back. (3) Importing ``torch.optim`` pulls in ``torch._dynamo`` (~10 s and
    tens of MB of RSS on first use here). (4) The history is exactly ``history`` pairs of image-sized
    vectors and nothing else: at 512² each vector is 3 MB.
    """
    shape = x.shape
    x = x.detach().reshape(-1).clamp(0, 1)
    f, g = evaluate(x.view(shape))
    g = g.reshape(-1)
    evals = 1
    s_hist: list[torch.Tensor] = []
    y_hist: list[torch.Tensor] = []
    rho: list[float] = []
    t = 1.0
    while evals < n_evals:
        # Two-loop recursion: d = -H g, with H0 = (s·y / y·y) I from the newest pair.
        q = g.neg()
        alphas = []
        for s_i, y_i, r_i in zip(reversed(s_hist), reversed(y_hist), reversed(rho)):
            a = r_i * float(s_i.dot(q))
            q.add_(y_i, alpha=-a)
            alphas.append(a)
        if s_hist:
            q.mul_(float(s_hist[-1].dot(y_hist[-1])) / float(y_hist[-1].dot(y_hist[-1])))
            for s_i, y_i, r_i, a in zip(s_hist, y_hist, rho, reversed(alphas)):
                b = r_i * float(y_i.dot(q))
                q.add_(s_i, alpha=a - b)
        else:
            # No curvature yet: a gradient step that moves no pixel by more than 5% of its range.
            q.mul_(0.05 / max(float(q.abs().max()), 1e-12))
        d = q
        if float(g.dot(d)) >= 0:  # not a descent direction (stale curvature): restart from the gradient
            s_hist.clear(), y_hist.clear(), rho.clear()
            continue
        # Try the step; halve it while the loss goes up (each try costs an evaluation).
        x_new = x.add(d, alpha=t).clamp_(0, 1)
        f_new, g_new = evaluate(x_new.view(shape))
        g_new = g_new.reshape(-1)
        evals += 1
        if f_new > f:
            # Backtrack to the minimum of the quadratic through f, the slope g·d and f_new, kept within
            # [0.1t, 0.5t]: it reaches an acceptable step in fewer evaluations than plain halving.
            gd = float(g.dot(d))
            t_quad = -gd * t * t / (2 * (f_new - f - gd * t))
            t = min(max(t_quad, 0.1 * t), 0.5 * t)
            if t < 1e-3:  # no progress along this history: start over from the gradient
                s_hist.clear(), y_hist.clear(), rho.clear()
                t = 1.0
            continue
        t = min(1.0, t * 2)
        s_new = x_new.sub_(x)  # the projected move (reuses x_new's memory)
        y_new = g_new.sub(g)
        sy = float(s_new.dot(y_new))
        x.add_(s_new)
        f, g = f_new, g_new
        if sy > 1e-10 * float(y_new.dot(y_new)):  # keep only pairs with positive curvature
            s_hist.append(s_new), y_hist.append(y_new), rho.append(1.0 / sy)
            if len(s_hist) > history:
                del s_hist[0], y_hist[0], rho[0]
    return x.view(shape)


class Engine:
    """The VGG slice loaded once; :meth:`stylize` runs one job and may be called from several threads."""

    def __init__(
        self,
        weights: str | Path = DEFAULT_WEIGHTS,
        device: str = "auto",
        threads: int | None = None,
        *,
        low_memory: bool = True,
    ) -> None:
        """
        :param weights: ``vgg19_cache.pth`` (state dict or the legacy pickle; see ``weights.py``).
        :param device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        :param threads: torch intra-op threads; left to torch's default when None (it is process-wide).
        :param low_memory: on CPU, evaluate large levels in strips and give big blocks back to the OS, so a
            512 px job stays within ~200 MB above the torch baseline (a 512 MB dyno). Measured at 512²
            (``python bench/strips.py``, 2 cores): 2.6-2.7 s an evaluation and +52 MB above the RSS before
            it with strips, 2.3-2.4 s and +432 MB in one piece. Pass False on a machine with memory to spare.
        :raises WeightsError: missing, corrupt or foreign weights file.
        """
        self.device = _resolve_device(device)
        low_memory = low_memory and self.device.type == "cpu"  # a GPU has the memory for any level
        self.low_memory = low_memory
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.net = VGGFeatures(load_state_dict(weights)).to(self.device)
        self._bf16_ok = self.device.type == "cuda" or _cpu_has_native_bf16()
        #: Levels with more pixels than this are evaluated in strips to bound memory (see _HALO).
        self.tile_px: int | None = TILE_PX if low_memory else None
        log.info("engine ready on %s (threads=%d)", self.device, torch.get_num_threads())

    # -- helpers -------------------------------------------------------------------------------------------

    def _autocast_factory(self, recipe: Recipe, exact: bool = False) -> Callable[[], torch.autocast]:
        enabled = recipe.bf16 and self._bf16_ok and not exact
        dev = self.device.type
        return lambda: torch.autocast(dev, dtype=torch.bfloat16, enabled=enabled)

    def _objective(self, recipe, content_img, style_img, size, strength, tv_weight, keep_colors, exact=False):
        """Targets for one level of ``size`` (w, h): the content resized, the style scaled to the level."""
        content_lvl = _resize(content_img, size)
        style_lvl = _resize(style_img, _style_size(style_img, max(size)))
        content_t = _to_tensor(content_lvl, self.device)
        style_t = _to_tensor(style_lvl, self.device)
        if keep_colors:
            content_t = _to_tensor(_luminance(content_lvl), self.device)
            style_t = _match_luminance(_to_tensor(_luminance(style_lvl), self.device), content_t)
        objective = _Objective(
            self.net,
            recipe,
            content_t,
            style_t,
            strength,
            tv_weight,
            self._autocast_factory(recipe, exact),
            recipe.channels_last and not exact,
            self.tile_px if recipe.tiled else None,
            # The content target is the largest buffer of a level (32 MB at 512² in fp32); when memory is
            # the point (tiled) it is kept in bfloat16 (rounding error ~0.4%, far below the content loss).
            torch.bfloat16 if recipe.tiled and not exact else torch.float32,
        )
        return objective, content_t

    # -- public --------------------------------------------------------------------------------------------

    def evaluate(
        self, image: Image.Image, content: Image.Image, style: Image.Image, params: StyleParams = StyleParams()
    ) -> Losses:
        """The objective of ``params`` (strength included) for ``image`` at its own size, in fp32.

        The content is resized to the image and the style scaled as during :meth:`stylize`; with
        ``keep_colors`` it is the luminance objective that run minimised, on the image's luminance. The
        benchmark evaluates outputs with ``StyleParams(preset="seed")`` at full, 1/2 and 1/4 size.
        """
        image, content, style = (im.convert("RGB") for im in (image, content, style))
        objective, _ = self._objective(
            params.recipe, content, style, image.size, params.strength, params.tv_weight, params.keep_colors,
            exact=True,
        )
        return objective.value(_to_tensor(_luminance(image) if params.keep_colors else image, self.device))

    def stylize(
        self,
        content: Image.Image,
        style: Image.Image,
        params: StyleParams = StyleParams(),
        on_progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Image.Image:
        """Render ``content`` in the style of ``style``; returns an RGB image of :func:`output_size`.

        :param on_progress: called once per objective evaluation with a :class:`Progress`.
        :param cancel: when set, :class:`Cancelled` is raised within one evaluation.
        """
        recipe = params.recipe
        content, style = content.convert("RGB"), style.convert("RGB")
        levels = _levels(output_size(content.size, params.size), recipe.min_side)
        plan = [recipe.coarse_evals] + [
            next(n for bound, n in recipe.refine_evals if max(size) <= bound) for size in levels[1:]
        ]
        # Work per evaluation is about proportional to the pixel count; used for fraction and ETA.
        work = [n * w * h for n, (w, h) in zip(plan, levels)]
        total_work, total_evals = float(sum(work)), sum(plan)
        done_work, step = 0.0, 0
        t0 = time.perf_counter()
        x: torch.Tensor | None = None

        for level, ((w, h), n_evals) in enumerate(zip(levels, plan)):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            if self.low_memory:
                _malloc_for(_mmap_threshold((w, h) if recipe.tiled else None, self.tile_px))
            objective, content_t = self._objective(
                recipe, content, style, (w, h), params.strength, params.tv_weight, params.keep_colors
            )
            if x is None:
                # Content init: the content is in place from the first step. Optional noise, from a local
                # generator (never the global RNG, which other threads share), lets flat areas take texture.
                x = content_t.clone()
                if recipe.init_noise:
                    gen = torch.Generator(device="cpu").manual_seed(params.seed)
                    noise = torch.randn(x.shape, generator=gen).to(x.device)
                    x = x.add_(noise, alpha=recipe.init_noise).clamp_(0, 1)
            else:
                x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp_(0, 1)
            del content_t
            level_start = done_work

            # The level's values are bound as defaults: the function must not see the next level's.
            def evaluate(
                xk: torch.Tensor, objective=objective, level_end=level_start + work[level], scale=max(w, h)
            ) -> tuple[float, torch.Tensor]:
                """Loss and gradient at xk; counts the step, reports progress, honours cancel."""
                nonlocal done_work, step
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                losses, grad = objective.value_and_grad(xk)
                step += 1
                done_work = min(done_work + xk.shape[-1] * xk.shape[-2], level_end)
                if on_progress is not None:
                    elapsed = time.perf_counter() - t0
                    frac = done_work / total_work
                    snapshot = xk.detach()
                    on_progress(
                        Progress(
                            fraction=frac,
                            eta=elapsed / frac * (1 - frac),
                            step=step,
                            total=total_evals,
                            scale=scale,
                            loss=losses.total,
                            render=lambda: self._render(snapshot, content, params.keep_colors),
                        )
                    )
                return losses.total, grad

            history = min(recipe.history, max(3, HISTORY_BYTES // (2 * x.element_size() * x.numel())))
            x = _minimize(evaluate, x, n_evals, history)
            done_work = level_start + work[level]
            del objective, evaluate  # the next level's targets are built without this level's alive

        assert x is not None
        return self._render(x, content, params.keep_colors)

    @staticmethod
    def _render(x: torch.Tensor, content: Image.Image, keep_colors: bool) -> Image.Image:
        img = _to_image(x)
        return _with_chroma(img, content) if keep_colors else img


_engines: dict[tuple[str, str], Engine] = {}
_engines_lock = threading.Lock()


def stylize(
    content: Image.Image,
    style: Image.Image,
    params: StyleParams = StyleParams(),
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    *,
    weights: str | Path = DEFAULT_WEIGHTS,
    device: str = "auto",
) -> Image.Image:
    """:meth:`Engine.stylize` on an engine cached per (weights file, device), loaded on first use."""
    key = (str(Path(weights).resolve()), str(_resolve_device(device)))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = Engine(weights, device)
    return engine.stylize(content, style, params, on_progress, cancel)


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


class _Bar:
    """A one-line text progress bar on stderr, driven by :class:`Progress`."""

    def __init__(self, width: int = 30) -> None:
        self.width = width
        self.last: Progress | None = None

    def __call__(self, p: Progress) -> None:
        self.last = p
        filled = int(p.fraction * self.width)
        eta = "?" if math.isnan(p.eta) else f"{p.eta:4.0f}s"
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {p.fraction:4.0%} "
            f"step {p.step}/{p.total} @{p.scale}px loss {p.loss:.4g} eta {eta} "
        )
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def _parser() -> argparse.ArgumentParser:
    defaults = {f.name: f.default for f in dataclasses.fields(StyleParams)}
    p = argparse.ArgumentParser(
        description="Render CONTENT in the style of STYLE (Gatys et al., coarse-to-fine, VGG-19 convs 1-5)."
    )
    p.add_argument("content", type=Path, help="content image (any format Pillow reads)")
    p.add_argument("style", type=Path, help="style image")
    p.add_argument("-o", "--output", type=Path, required=True, help="output image path (.jpg, .png ...)")
    p.add_argument("--size", type=int, default=defaults["size"], help="long side of the output in px, capped "
                   "at the content's own (default %(default)s)")
    p.add_argument("--strength", type=float, default=defaults["strength"],
                   help="style strength, a multiplier on the style weight (default %(default)s)")
    p.add_argument("--keep-colors", action="store_true", help="transfer luminance only; keep the content's colours")
    p.add_argument("--tv-weight", type=float, default=defaults["tv_weight"],
                   help="total-variation weight, smooths noise (default %(default)s; the seed preset has none)")
    p.add_argument("--seed", type=int, default=defaults["seed"], help="random seed (default %(default)s)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=defaults["preset"],
                   help="'default': best result per second; 'seed': the original bot's objective exactly")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu' or 'cuda'")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="VGG-19 cache (default %(default)s)")
    p.add_argument("--more-memory", action="store_true", help="CPU: no strips and no memory give-back; about "
                   "1.1-1.2x faster per 512 px evaluation for about +380 MB peak")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point. Ctrl-C saves the image as far as it got. Returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    params = StyleParams(size=args.size, strength=args.strength, keep_colors=args.keep_colors,
                         tv_weight=args.tv_weight, seed=args.seed, preset=args.preset)
    try:
        engine = Engine(args.weights, args.device, args.threads, low_memory=not args.more_memory)
        content, style = Image.open(args.content), Image.open(args.style)
        content.load(), style.load()
    except (WeightsError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    bar = _Bar()
    last_render: list[Callable[[], Image.Image]] = []

    def on_progress(p: Progress) -> None:
        if not args.quiet:
            bar(p)
        # Rendering every step would cost time; keep the renderer instead. It holds the image tensor the
        # optimiser updates in place, so calling it right after Ctrl-C gives the image as far as it got.
        last_render[:] = [p.render]

    t0 = time.perf_counter()
    status = 0
    try:
        out = engine.stylize(content, style, params, on_progress)
    except KeyboardInterrupt:
        if not last_render:
            print("\ninterrupted before the first step; nothing saved", file=sys.stderr)
            return 130
        out, status = last_render[0](), 130
    finally:
        if not args.quiet:
            bar.close()
    elapsed = time.perf_counter() - t0
    out.save(args.output)
    losses = engine.evaluate(out, content, style, params)
    print(f"{args.output}: {out.width}x{out.height} in {elapsed:.1f}s on {engine.device}; "
          f"style {losses.style:.4g} content {losses.content:.4g} tv {losses.tv:.4g} total {losses.total:.4g}")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""What a caller chooses (:class:`StyleParams`), what it is told (:class:`Progress`, :class:`Losses`) and the
presets' internal tuning (:class:`Recipe`, :data:`PRESETS`).

Torch-free on purpose: the bot builds :class:`StyleParams` and reads their defaults without loading torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["COLOR_METHODS", "PRESETS", "Losses", "Progress", "Recipe", "StyleParams", "output_size"]

#: How ``keep_colors`` keeps the content's colours (Gatys et al. 2017, "Controlling perceptual factors"):
#: "luminance" transfers the style on the luminance only and puts the content's chroma back; "histogram"
#: first moves the style's colours onto the content's (mean and covariance in RGB) and transfers in colour.
COLOR_METHODS = ("luminance", "histogram")


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
    bf16: bool  # bfloat16 autocast for the network (fp32 image, losses and optimiser)
    channels_last: bool
    tiled: bool  # evaluate large levels in strips on CPU (bounded memory, 1.1-1.2x the time per evaluation)
    #: Start each finer level from the coarser result upsampled PLUS the content's detail band between the
    #: two levels (content at this level minus the coarser content upsampled), not the blurry upsample alone.
    detail: bool = False


# The tutorial objective exactly; only the solver differs (coarse-to-fine, short history). Not tiled: it is
# the comparison preset, and one graph per evaluation is faster than strips. Both start from the content.
_SEED = Recipe(
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
    bf16=True,
    channels_last=True,
    tiled=False,
)

#: The two presets. Figures: DESIGN.md ("Inside") and ``python bench/quality.py`` / ``bench/engine.py``.
#:
#: * seed: the tutorial objective, coarse-to-fine (100 evaluations at 128 px, 20 at 256, 10 at 512): the
#:   comparison preset (b).
#: * default: the same Gram/MSE normalisation and weights, but style on the ReLU outputs (in-place ReLUs),
#:   average pooling (Gatys et al. found it smoother; no int64 indices), strips at large levels (512 px fits
#:   the memory budget), and each finer level started with the content's detail band (``detail``). Its
#:   counts, 40 at 128 px, 16 at 256, 7 at 512, 3 beyond, were chosen on the nine pairs of
#:   ``bench/quality.py`` against (a): cat x brush strokes needs the fine levels (6 at 512 left it at
#:   (a)'s pyramid style loss), hubble x watercolour and rocket x woodcut the coarse one (30 at 128 px
#:   put hubble above (a)); astronaut x starry swirl stays above (a) even with 16 at 512 (DESIGN.md).
PRESETS: dict[str, Recipe] = {
    "seed": _SEED,
    "default": dataclasses.replace(
        _SEED,
        taps="relu",
        pool="avg",
        tv_scale=1.0,
        coarse_evals=40,
        refine_evals=((320, 16), (640, 7), (1 << 30, 3)),
        tiled=True,
        detail=True,
    ),
}


@dataclass(frozen=True)
class StyleParams:
    """What a caller may choose for one job. Defaults live here only (the CLI reads them back).

    ``seed`` 0 starts from the content image exactly, so a job is deterministic; another seed adds a
    little seeded noise to the coarsest level's start, for a variation of the same picture.
    """

    size: int = 512  # long side of the output, px; never more than the content's own long side
    strength: float = 1.0  # multiplier on the style weight
    keep_colors: bool = False  # keep the content's colours (how: ``color_method``)
    tv_weight: float = 1e-3  # total variation weight (smoothness); ignored by preset "seed"
    preset: str = "default"  # "default" | "seed" (the original bot's objective, exactly)
    seed: int = 0  # 0: start from the content exactly; other values: a seeded variation
    #: With a second style (``Engine.stylize(..., style2=...)``): its share of the style targets, 0..1
    #: (0 = the first style alone, 1 = the second alone). Ignored without a second style.
    mix: float = 0.5
    #: With ``keep_colors``: "luminance" (luminance-only transfer) or "histogram" (the style recoloured to
    #: the content's colour statistics, then a colour transfer); see :data:`COLOR_METHODS`.
    color_method: str = "luminance"

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}, not {self.preset!r}")
        if self.size < 1:
            raise ValueError(f"size must be a positive number of pixels, not {self.size}")
        if not (self.strength >= 0 and math.isfinite(self.strength)):
            raise ValueError(f"strength must be a finite number >= 0, not {self.strength}")
        if not (self.tv_weight >= 0 and math.isfinite(self.tv_weight)):
            raise ValueError(f"tv_weight must be a finite number >= 0, not {self.tv_weight}")
        if self.seed < 0:
            raise ValueError(f"seed must be 0 (no noise) or a positive number, not {self.seed}")
        if self.color_method not in COLOR_METHODS:
            raise ValueError(
                f"color_method must be one of {', '.join(map(repr, COLOR_METHODS))}, not {self.color_method!r}"
            )
        if not 0.0 <= self.mix <= 1.0:  # also rejects NaN
            raise ValueError(f"mix must be a share between 0 and 1, not {self.mix}")

    @property
    def recipe(self) -> Recipe:
        return PRESETS[self.preset]

    @property
    def luminance_only(self) -> bool:
        """True when the job optimises a grey image and takes its chroma from the content."""
        return self.keep_colors and self.color_method == "luminance"


@dataclass(frozen=True)
class Progress:
    """Passed to ``on_progress`` once per objective evaluation."""

    fraction: float  # 0..1 of the whole job (by estimated work, not by count)
    eta: float  # seconds left (estimate from the speed so far)
    step: int  # evaluations done, all levels
    total: int  # evaluations planned, all levels
    scale: int  # long side of the level being optimised
    loss: float  # objective at this evaluation
    render: Callable[[], Image.Image] = field(repr=False)  # image of this evaluation; call inside the callback


@dataclass(frozen=True)
class Losses:
    """One objective evaluation, unweighted by strength; ``total`` is what the optimiser minimises."""

    style: float  # style_weight * sum_l layer_weight_l * MSE(Gram_l)
    content: float  # content_weight * MSE(features at the content layer)
    tv: float
    total: float


def output_size(content_size: tuple[int, int], size: int) -> tuple[int, int]:
    """(width, height) of the output: long side ``min(size, content long side)``, aspect ratio kept."""
    w, h = content_size
    long_side = max(w, h)
    target = min(size, long_side)
    scale = target / long_side
    if w >= h:
        return target, max(1, round(h * scale))
    return max(1, round(w * scale)), target

"""The style-transfer engine: Gatys et al. (2016) on the first five convolutions of VGG-19, solved
coarse-to-fine. PIL images in, a PIL image out; nothing here knows about Telegram.

Usage::

    >>> from stylebot.engine import Engine, StyleParams
    >>> engine = Engine()                      # loads vgg19_cache.pth once
    >>> out = engine.stylize(content, style, StyleParams(size=512))

Importing this package does not import torch: the names that need it (:class:`Engine`, :func:`stylize`,
``DEFAULT_WEIGHTS``) load the engine on first access, so the bot can use :mod:`.params` without torch.

Modules, one job each: ``params`` (what a caller chooses, presets), ``network`` (the VGG slice),
``weights`` (the weights file), ``losses``, ``objective`` (one level's loss, whole image),
``strips`` (the same loss in bounded memory), ``optim`` (L-BFGS), ``platform`` (device, bf16, threads,
malloc), ``engine`` (:class:`Engine`, :func:`stylize`), ``cli`` (``python model.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import Cancelled, WeightsError
from .params import PRESETS, Losses, Progress, Recipe, StyleParams, output_size

if TYPE_CHECKING:
    from .engine import DEFAULT_WEIGHTS, Engine, stylize

_LAZY = {"DEFAULT_WEIGHTS", "Engine", "stylize"}

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


def __getattr__(name: str) -> Any:
    """Load the torch side on first use of one of its names (PEP 562)."""
    if name in _LAZY:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""model
~~~~~

The engine's public face; the code lives in :mod:`stylebot.engine` (see its docstring and DESIGN.md).

    >>> from model import Engine, StyleParams
    >>> out = Engine().stylize(content, style, StyleParams(size=512))

``python model.py CONTENT STYLE -o OUT`` is the command line (:func:`stylebot.engine.cli.main`).
"""

from __future__ import annotations

import sys

from stylebot.engine import (
    DEFAULT_WEIGHTS,
    PRESETS,
    Cancelled,
    Engine,
    Losses,
    Progress,
    Recipe,
    StyleParams,
    WeightsError,
    output_size,
    stylize,
)
from stylebot.engine.cli import main

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
    "main",
    "output_size",
    "stylize",
]

if __name__ == "__main__":
    sys.exit(main())

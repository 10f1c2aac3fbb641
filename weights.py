"""weights
~~~~~~~

The command line of :mod:`stylebot.engine.weights` (``python weights.py build|convert|check ...``), kept at
the top level because the build scripts and docs call it here. The code lives in the package.
"""

from __future__ import annotations

import sys

from stylebot.engine.weights import *  # noqa: F403 - the public face: LAYER_SHAPES, load_state_dict ...
from stylebot.engine.weights import __all__, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())

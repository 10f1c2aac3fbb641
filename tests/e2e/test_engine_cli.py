"""The engine's command lines as operators run them: ``python weights.py`` and ``python model.py`` in subprocesses.

Split from tests/unit (test_weights.py, test_model.py): each starts a fresh Python
that imports torch, seconds apiece on a busy machine, which the fast tier cannot afford.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botkit import ROOT, deadline, make_content, make_style, weights_path
from PIL import Image, ImageStat

from stylebot.engine import weights
from stylebot.engine.weights import load_state_dict, state_digest

WEIGHTS = weights_path()
needs_weights = pytest.mark.skipif(WEIGHTS is None, reason="VGG weights not found: set STYLEBOT_WEIGHTS (see README)")


def brightness(img: Image.Image) -> float:
    return float(ImageStat.Stat(img.convert("L")).mean[0])


@needs_weights
def test_top_level_weights_py_is_still_the_command_line(tmp_path: Path) -> None:
    """``python weights.py ...`` is what bin/post_compile and the docs run; the code moved into the package."""
    assert WEIGHTS is not None
    state_file = weights.save_state_dict(load_state_dict(WEIGHTS), tmp_path / "vgg19_cache.pth")
    out = tmp_path / "again.pth"
    run = [sys.executable, str(ROOT / "weights.py")]
    assert subprocess.run([*run, "convert", str(state_file), str(out)], cwd=ROOT, timeout=deadline(300)).returncode == 0
    check = subprocess.run([*run, "check", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=deadline(300))
    assert check.returncode == 0 and state_digest(load_state_dict(out)) in check.stdout
    missing = subprocess.run(
        [*run, "check", str(tmp_path / "nope.pth")], cwd=ROOT, capture_output=True, text=True, timeout=deadline(300)
    )
    assert missing.returncode == 1 and "weights.py build" in missing.stderr


@needs_weights
def test_ctrl_c_in_model_py_saves_the_partial_result(tmp_path: Path) -> None:
    """SIGINT to ``python model.py`` after a few progress steps: exit status 130 and the saved image is the
    picture as far as it got (about the content's brightness), not the near-black one it used to be."""
    content, style, out = tmp_path / "content.png", tmp_path / "style.png", tmp_path / "out.png"
    make_content((96, 80)).save(content)
    make_style().save(style)
    cmd = [
        sys.executable,
        str(ROOT / "model.py"),
        str(content),
        str(style),
        "-o",
        str(out),
        "--size",
        "96",
        "--threads",
        "1",
        "--weights",
        str(WEIGHTS),
    ]
    # Ctrl-C must reach model.py whatever this process inherited: a background job of a script (as under
    # `bin/test --busy`) starts with SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stderr is not None
    try:
        seen = b""
        give_up = time.monotonic() + deadline(300)  # generous: importing torch on a busy machine
        while b"step 5/" not in seen:  # the bar writes "\r[...] step N/TOTAL ...", no newlines
            assert time.monotonic() < give_up, f"no progress from model.py: {seen[-500:]!r}"
            ready, _, _ = select.select([proc.stderr], [], [], 1.0)
            if ready:
                chunk = os.read(proc.stderr.fileno(), 4096)
                assert chunk or proc.poll() is None, f"model.py ended early: {seen[-500:]!r}"
                seen += chunk
        assert b"step 80/" not in seen  # still running: the default preset does 80 evaluations here
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=deadline(300))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (stdout, stderr[-2000:])
    saved = Image.open(out)
    assert saved.size == (96, 80)
    assert abs(brightness(saved) - brightness(make_content((96, 80)))) < 40, brightness(saved)

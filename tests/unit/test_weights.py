"""weights.py: the legacy pickle and the state dict load to the same tensors; anything else is a clear
WeightsError; nothing in a foreign file gets executed; the build path is tested without any network."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import urllib.error
from pathlib import Path

import pytest
import torch

from stylebot.engine import weights
from stylebot.engine.weights import LAYER_SHAPES, WeightsError, build_cache, load_state_dict, state_digest

REPO = Path(__file__).resolve().parents[2]
LEGACY = Path(os.environ.get("STYLEBOT_WEIGHTS") or REPO.parent / "shared" / "weights" / "vgg19_cache.pth")

needs_legacy = pytest.mark.skipif(
    not LEGACY.is_file() or LEGACY.read_bytes()[:2] == b"PK",
    reason=f"legacy VGG cache not found at {LEGACY} (set STYLEBOT_WEIGHTS to the original bot's file)",
)


@pytest.fixture(scope="module")
def legacy_state() -> dict[str, torch.Tensor]:
    if not LEGACY.is_file():
        pytest.skip(f"VGG weights not found at {LEGACY} (set STYLEBOT_WEIGHTS or run `python weights.py build`)")
    return load_state_dict(LEGACY)


@pytest.fixture(scope="module")
def state_file(legacy_state, tmp_path_factory) -> Path:
    return weights.save_state_dict(legacy_state, tmp_path_factory.mktemp("w") / "vgg19_cache.pth")


def test_loaded_state_has_the_documented_keys_and_shapes(legacy_state):
    assert list(legacy_state) == list(LAYER_SHAPES)
    for key, shape in LAYER_SHAPES.items():
        assert tuple(legacy_state[key].shape) == shape and legacy_state[key].dtype == torch.float32


@needs_legacy
def test_legacy_file_is_the_known_one():
    assert hashlib.sha256(LEGACY.read_bytes()).hexdigest() == weights.LEGACY_SHA256


@needs_legacy
def test_legacy_and_state_dict_give_identical_tensors_and_features(legacy_state, state_file):
    from model import Engine

    converted = load_state_dict(state_file)
    assert all(torch.equal(legacy_state[k], converted[k]) for k in LAYER_SHAPES)
    assert state_digest(legacy_state) == state_digest(converted)
    x = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(0))
    a, b = Engine(LEGACY, device="cpu").net, Engine(state_file, device="cpu").net
    for taps in ("conv", "relu"):
        for fa, fb in zip(a(x, taps, "max"), b(x, taps, "max")):
            assert torch.equal(fa, fb)


def test_state_dict_file_loads_with_weights_only(state_file):
    raw = torch.load(state_file, weights_only=True)
    assert set(raw) == set(LAYER_SHAPES)


def test_convert_cli_round_trip(tmp_path, state_file, capsys):
    out = tmp_path / "again.pth"
    assert weights.main(["convert", str(state_file), str(out)]) == 0
    assert weights.main(["check", str(out)]) == 0
    assert state_digest(load_state_dict(out)) in capsys.readouterr().out


# ``python weights.py ...`` as a subprocess: tests/e2e/test_engine_cli.py.


# --- clear errors ------------------------------------------------------------------------------------------


def test_missing_file_says_how_to_get_weights(tmp_path):
    with pytest.raises(WeightsError, match=r"not found.*weights\.py build"):
        load_state_dict(tmp_path / "vgg19_cache.pth")


def test_check_cli_reports_error(tmp_path, capsys):
    assert weights.main(["check", str(tmp_path / "missing.pth")]) == 1
    assert "weights.py build" in capsys.readouterr().err


@needs_legacy
def test_truncated_legacy_file_is_corrupt(tmp_path):
    bad = tmp_path / "truncated.pth"
    data = LEGACY.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cannot read"):
        load_state_dict(bad)


@pytest.mark.parametrize("payload", [b"", b"\x00" * 100, b"hello, not a checkpoint", os.urandom(4096)])
def test_garbage_is_rejected(tmp_path, payload):
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(payload)
    with pytest.raises(WeightsError, match=r"weights\.py"):
        load_state_dict(bad)


def test_foreign_state_dict_is_rejected(tmp_path):
    foreign = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(10, 4)}, foreign)
    with pytest.raises(WeightsError, match=r"conv_1\.weight"):
        load_state_dict(foreign)


def test_wrong_shape_is_rejected(tmp_path, legacy_state):
    bad = dict(legacy_state, **{"conv_3.weight": torch.zeros(128, 64, 5, 5)})
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(WeightsError, match=r"conv_3\.weight has shape"):
        load_state_dict(path)


def test_non_finite_weights_are_rejected(tmp_path, legacy_state):
    bad = dict(legacy_state, **{"conv_2.bias": torch.full((64,), float("nan"))})
    path = tmp_path / "nan.pth"
    torch.save(bad, path)
    with pytest.raises(WeightsError, match="NaN"):
        load_state_dict(path)


class _Evil:
    """Pickles to a call of os.system: what an untrusted checkpoint could hide."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_legacy_pickle_with_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    for header in (weights._LEGACY_MAGIC, weights._LEGACY_PROTOCOL, {"little_endian": True}):
        pickle.dump(header, buf, protocol=2)
    pickle.dump(_Evil(marker), buf, protocol=2)
    pickle.dump([], buf, protocol=2)
    path = tmp_path / "evil.pth"
    path.write_bytes(buf.getvalue())
    with pytest.raises(WeightsError, match="refusing to load"):
        load_state_dict(path)
    assert not marker.exists()


def test_zip_checkpoint_with_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv_1.weight": _Evil(marker)}, path)
    with pytest.raises(WeightsError, match="cannot read"):
        load_state_dict(path)
    assert not marker.exists()


# --- build from torchvision's file, without network --------------------------------------------------------


def _fake_torchvision_file(legacy_state, path: Path) -> str:
    """A stand-in for vgg19-dcbb9e9d.pth: the five convs at torchvision's indices plus a decoy."""
    full = {}
    for i, idx in enumerate(weights._TORCHVISION_CONVS, start=1):
        full[f"features.{idx}.weight"] = legacy_state[f"conv_{i}.weight"]
        full[f"features.{idx}.bias"] = legacy_state[f"conv_{i}.bias"]
    full["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(full, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_cache_keeps_the_five_convs(tmp_path, legacy_state, monkeypatch):
    downloads = tmp_path / "dl"
    downloads.mkdir()
    digest = _fake_torchvision_file(legacy_state, downloads / "vgg19-dcbb9e9d.pth")
    monkeypatch.setattr(weights, "VGG19_SHA256", digest)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("no download expected"))
    out = build_cache(tmp_path / "vgg19_cache.pth", download_dir=downloads)
    assert state_digest(load_state_dict(out)) == state_digest(legacy_state)


def test_build_cache_rejects_a_bad_checksum(tmp_path, legacy_state):
    downloads = tmp_path / "dl"
    downloads.mkdir()
    _fake_torchvision_file(legacy_state, downloads / "vgg19-dcbb9e9d.pth")  # not the official bytes
    with pytest.raises(WeightsError, match="sha256"):
        build_cache(tmp_path / "out.pth", download_dir=downloads)
    assert not (tmp_path / "out.pth").exists()


def test_build_cache_offline_says_so(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError, match="offline"):
        build_cache(tmp_path / "out.pth", download_dir=tmp_path)
    assert not (tmp_path / "out.pth").exists()


def test_our_vgg19_constants_are_torchvisions():
    """The builder takes the URL and the conv positions from torchvision's own VGG-19 definition."""
    from stylebot.engine.weights import _TORCHVISION_CONVS, VGG19_URL, torchvision_vgg19

    assert torchvision_vgg19() == (VGG19_URL, _TORCHVISION_CONVS)

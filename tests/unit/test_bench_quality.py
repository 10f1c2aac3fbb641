"""bench/quality.py's measures that the optimiser does not see: numpy SSIM and the colour-histogram
distance. Torch-free; the SSIM is checked against scikit-image's when that bench-only package is installed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import quality


def _pictures() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = np.cumsum(np.cumsum(rng.normal(0, 1, (40, 56)), 0), 1)
    x = (x - x.min()) / (x.max() - x.min()) * 255
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255)
    return x, y


def test_ssim_is_one_for_the_same_image_and_lower_for_noise() -> None:
    x, y = _pictures()
    assert quality.ssim(x, x) == pytest.approx(1.0)
    assert 0 < quality.ssim(x, y) < 0.95


def test_ssim_matches_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    x, y = _pictures()
    ref = metrics.structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert quality.ssim(x, y) == pytest.approx(ref, abs=1e-9)


def test_colour_distance_is_zero_for_same_palette_and_one_for_disjoint() -> None:
    red, blue = Image.new("RGB", (20, 10), (250, 10, 10)), Image.new("RGB", (7, 7), (10, 10, 250))
    assert quality.chi2(quality.colour_hist(red), quality.colour_hist(red.resize((5, 5)))) == 0
    assert quality.chi2(quality.colour_hist(red), quality.colour_hist(blue)) == pytest.approx(1.0)
    half = Image.new("RGB", (20, 10), (250, 10, 10))
    half.paste((10, 10, 250), (0, 0, 10, 10))
    assert 0 < quality.chi2(quality.colour_hist(half), quality.colour_hist(red)) < 1

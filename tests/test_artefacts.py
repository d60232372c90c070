"""Block-artefact ratio, rank correlation and gradient magnitude (sdflow.metrics.artefacts)."""

from __future__ import annotations

import numpy as np
import pytest

from sdflow.imageio import read_image
from sdflow.metrics import imresize_uint8
from sdflow.metrics.artefacts import block_ratio, gradient_magnitude, spearman


def _gray(values: np.ndarray) -> np.ndarray:
    v = np.clip(np.round(values), 0, 255).astype(np.uint8)
    return np.repeat(v[:, :, None], 3, axis=2)


def test_block_ratio_of_a_known_pattern():
    # a ramp of 10 grey levels per pixel: the step across each 4-pixel border (from
    # 30 + 40k to 40(k + 1)) equals the steps inside; vertical differences are all zero
    # (a flat direction counts as ratio 1)
    row = np.array([(j // 4) * 40 + (j % 4) * 10 for j in range(16)], dtype=np.float64)
    img = _gray(np.tile(row, (16, 1)))
    assert block_ratio(img) == pytest.approx(1.0)
    row2 = np.array([(j // 4) * 40 for j in range(16)], dtype=np.float64)  # flat cells
    flat_cells = _gray(np.tile(row2, (16, 1)) + np.tile(np.arange(16)[:, None] * 2.0, (1, 16)))
    ratio = block_ratio(flat_cells)
    assert np.isinf(ratio) or ratio > 100  # horizontal: all change at the borders


def test_block_ratio_separates_nearest_from_bicubic_on_a_photo(shared):
    lr = read_image(shared / "data/RealSR_x4/val/LR/Canon_031.png").rgb
    hr = read_image(shared / "data/RealSR_x4/val/HR/Canon_031.png").rgb
    nearest = lr.repeat(4, axis=0).repeat(4, axis=1)
    bicubic = imresize_uint8(lr, scale=4)
    assert block_ratio(hr) < 1.15
    assert block_ratio(bicubic) < 1.4
    assert block_ratio(nearest) > 4.0
    with pytest.raises(ValueError, match="at least 8x8"):
        block_ratio(hr[:6, :6])


def test_spearman_reference_values():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    # ties: ranks of [1, 1, 2, 3] are [0.5, 0.5, 2, 3]; Pearson with [0, 1, 2, 3]
    ra, rb = np.array([0.5, 0.5, 2.0, 3.0]), np.array([0.0, 1.0, 2.0, 3.0])
    expected = np.corrcoef(ra, rb)[0, 1]
    assert spearman([1, 1, 2, 3], [10, 20, 30, 40]) == pytest.approx(expected)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="differ in size"):
        spearman([1, 2], [1, 2, 3])


def test_gradient_magnitude_of_a_ramp():
    ramp = _gray(np.tile(np.arange(20, dtype=np.float64) * 5, (20, 1)))
    g = gradient_magnitude(ramp).numpy()
    # Sobel of a horizontal ramp of slope 5 (in Y: 5 * 219/255): 8 * slope inside
    slope = 5 * 219 / 255
    np.testing.assert_allclose(g[2:-2, 2:-2], 8 * slope, rtol=1e-6)

"""Metric tests against independently obtained reference values (provenance at each)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from _evaldata import one_thread  # noqa: F401

from sdflow.imageio import read_image
from sdflow.metrics import (
    LPIPS,
    blur_index,
    imresize,
    imresize_uint8,
    lr_psnr,
    noise_sigma,
    pairwise_lpips,
    pixel_std,
    psnr,
    resize,
    rgb_to_y,
    ssim,
)
from sdflow.metrics.resize import contributions

CALIBRATION = ("I03.bmp", "I04.bmp", "I06.bmp", "I08.bmp", "I19.bmp")


# ------------------------------------------------------------------ colour
def test_rgb_to_y_matches_bt601_studio_swing():
    # Reference: MATLAB rgb2ycbcr / ITU-R BT.601 studio swing, Y = 16 + 65.481 R +
    # 128.553 G + 24.966 B for R, G, B in [0, 1]: white 235, black 16, and each primary's
    # coefficient plus 16.
    colours = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                         [128, 128, 128]]], dtype=np.uint8)
    y = rgb_to_y(colours)[0, 0].numpy()
    expected = [235.0, 16.0, 81.481, 144.553, 40.966, 16.0 + 219.0 * 128 / 255]
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-9)
    # A tensor [B, 3, H, W] on the same scale gives the same numbers.
    t = torch.from_numpy(colours).permute(2, 0, 1).unsqueeze(0).float()
    np.testing.assert_allclose(rgb_to_y(t)[0, 0, 0].numpy(), expected, atol=1e-4)


# ------------------------------------------------------------------ resize
def test_imresize_upscale_hand_derived():
    # Derived by hand from MATLAB's imresize algorithm for [0 1 2 3] -> 8 columns:
    # u = x/2 + 1/4; Keys weights at the offsets (e.g. 1.09375 v1 - 0.09375 v2 at x = 1,
    # where indices 0 and -1 mirror to 1 and 2). The interior reproduces the ramp; the
    # border values show the half-sample symmetric extension.
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    out = imresize(x, size=(1, 8))
    expected = [-0.09375, 0.1796875, 0.7265625, 1.25, 1.75, 2.2734375, 2.8203125, 3.09375]
    np.testing.assert_allclose(out[0].numpy(), expected, rtol=0, atol=1e-12)


def test_imresize_antialiased_downscale_hand_derived():
    # Derived by hand: x1/2 with antialiasing uses h(d) = 0.5 cubic(d/2) on 8 taps
    # (+-0.43359375, 0.11328125, -0.03515625, -0.01171875 at |d| = 0.5 .. 3.5), u = 2x - 1/2.
    x = torch.arange(8, dtype=torch.float64)[None]
    out = imresize(x, size=(1, 4))
    np.testing.assert_allclose(out[0].numpy(), [0.44921875, 2.48828125, 4.51171875, 6.55078125],
                               rtol=0, atol=1e-12)
    weights, _ = contributions(8, 4, 0.5)
    np.testing.assert_allclose(weights[1].numpy(), [-0.01171875, -0.03515625, 0.11328125,
                               0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875])


def test_imresize_matches_independent_implementation():
    # Reference values from the `resize-right` package 0.0.2 (an independent Python
    # implementation of MATLAB imresize): resize(x, scale_factors=[s, s],
    # interp_method=cubic, antialiasing=True, pad_mode='symmetric'), float64.
    i, j = np.mgrid[0:8, 0:8]
    x = torch.from_numpy(((3 * i + 5 * j) % 7) * 10.0)
    np.testing.assert_allclose(imresize(x, scale=0.25).numpy(),
                               [[30.36650419, 29.36005831], [28.99384737, 29.40459013]],
                               atol=1e-7)
    i, j = np.mgrid[0:3, 0:3]
    y = torch.from_numpy(((2 * i + j * j) % 5) * 20.0)
    up = imresize(y, scale=4).numpy()
    assert up.shape == (12, 12)
    np.testing.assert_allclose(up[0], [-7.03125, -5.78125, -3.49807739, -0.92514038,
                                       3.14559937, 10.20095825, 22.29278564, 41.57073975,
                                       63.11676025, 81.14471436, 90.95336914, 95.43579102],
                               atol=1e-7)
    np.testing.assert_allclose(up[:, 5], [10.20095825, 13.00003052, 19.59592819, 33.4095192,
                                          48.88189316, 59.17131424, 57.64181137, 44.02147293,
                                          25.30881882, 8.88940811, 0.76400757, -2.76016235],
                               atol=1e-7)


def test_imresize_uint8_reproduces_matlab_lr_of_set5(shared):
    # Set5's LR images were made with MATLAB imresize(HR, 1/4, 'bicubic') (SelfExSR
    # packaging). Away from the border, where the source HR files may have been cropped
    # after the LR was made, the 8-bit path must give the same pixels (a rare +-1 from
    # accumulation order is allowed).
    for name in ("baby", "butterfly"):
        hr = read_image(shared / "data/Set5_x4/HR" / f"{name}.png").rgb
        lr = read_image(shared / "data/Set5_x4/LR" / f"{name}.png").rgb
        ours = imresize_uint8(hr, scale=0.25)
        assert ours.shape == lr.shape
        diff = np.abs(ours.astype(int) - lr.astype(int))[3:-3, 3:-3]
        assert diff.max() <= 1
        assert (diff == 0).mean() > 0.999


def test_imresize_sizes_dtypes_and_constants():
    x = torch.rand(2, 3, 510, 37)
    assert imresize(x, scale=0.25).shape == (2, 3, 128, 10)  # ceil(H * scale)
    assert imresize(x[..., :8, :8], scale=4).shape == (2, 3, 32, 32)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        assert imresize(x[..., :16, :16].to(dtype), scale=0.25).dtype == dtype
    assert resize.fast_plan(x[..., :16, :16].to(torch.bfloat16), scale=0.25) is None
    const = torch.full((1, 1, 20, 12), 7.0, dtype=torch.float64)
    torch.testing.assert_close(imresize(const, scale=0.25), torch.full((1, 1, 5, 3), 7.0,
                                                                      dtype=torch.float64))
    with pytest.raises(TypeError):
        imresize(torch.zeros(4, 4, dtype=torch.uint8), scale=2)
    with pytest.raises(ValueError):
        imresize(x, scale=0.5, size=(3, 3))


def test_imresize_is_differentiable():
    x = torch.rand(1, 2, 9, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, scale=0.5), (x,))
    y = torch.rand(1, 1, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, scale=4), (y,))


#: (input shape, scale or size, per-axis factors of the fast path)
FAST_CASES = [
    ((2, 3, 96, 96), 4, (4, 4)),
    ((2, 3, 96, 96), 0.25, (-4, -4)),
    ((2, 3, 96, 96), 2, (2, 2)),
    ((2, 3, 96, 96), 0.5, (-2, -2)),
    ((1, 1, 37, 53), 2, (2, 2)),  # odd input sizes
    ((1, 1, 37, 53), 4, (4, 4)),
    ((1, 2, 38, 54), 0.5, (-2, -2)),  # odd output sizes
    ((3, 44, 60), 0.25, (-4, -4)),  # [C, H, W]
    ((33, 51), 1 / 3, (-3, -3)),  # [H, W], a factor that is not a power of two
    ((2, 2, 3, 16, 16), 0.25, (-4, -4)),  # two batch dimensions
    ((2, 3, 16, 24), (32, 12), (2, -2)),  # size: rows up, columns down
    ((1, 3, 8, 8), 0.25, (-4, -4)),  # smallest input the x1/4 padding allows
    ((1, 3, 20, 12), 1, (1, 1)),
]


@pytest.mark.parametrize("shape, arg, factors", FAST_CASES)
def test_imresize_fast_path_equals_general_path_with_gradients(shape, arg, factors):
    """The interpolate path (mirror pad + antialiased bicubic + crop) is MATLAB's
    operator: values and input gradients agree with the gather path to float64 rounding."""
    kw = {"size": arg} if isinstance(arg, tuple) else {"scale": arg}
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(shape, dtype=torch.float64, generator=g)
    assert resize.fast_plan(x, **kw) == factors

    def general(t):
        return resize._resize_general(t, kw.get("scale"), kw.get("size"), True)

    ref = general(x)
    up = torch.rand(ref.shape, dtype=torch.float64, generator=g)  # upstream gradient
    grads = []
    for path in (lambda t: resize._resize_interpolate(t, factors), general):
        t = x.clone().requires_grad_(True)
        out = path(t)
        torch.testing.assert_close(out.detach(), ref, rtol=0, atol=1e-12)
        (out * up).sum().backward()
        grads.append(t.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)
    # imresize itself takes the fast path; in float32 it stays at float32 rounding
    torch.testing.assert_close(imresize(x, **kw), resize._resize_interpolate(x, factors),
                               rtol=0, atol=0)
    torch.testing.assert_close(imresize(x.float(), **kw).double(), ref, rtol=0, atol=2e-6)


@pytest.mark.parametrize("shape, kw", [
    ((1, 1, 12, 12), {"scale": 3}),  # upscale, not a power of two
    ((1, 1, 97, 96), {"scale": 0.25}),  # 97 is not 4 * 25
    ((1, 1, 96, 96), {"scale": 0.25, "antialiasing": False}),
    ((1, 1, 6, 8), {"scale": 0.25}),  # shorter than the mirror padding
    ((1, 1, 1, 8), {"scale": 2}),
    ((1, 1, 16, 16), {"size": (10, 16)}),
])
def test_imresize_general_path_where_interpolate_differs(shape, kw):
    x = torch.rand(shape, dtype=torch.float64)
    assert resize.fast_plan(x, **kw) is None
    expected = resize._resize_general(x, kw.get("scale"), kw.get("size"),
                                      kw.get("antialiasing", True))
    torch.testing.assert_close(imresize(x, **kw), expected, rtol=0, atol=0)


# ------------------------------------------------------------------ PSNR / SSIM
@pytest.mark.parametrize("name, y_psnr, y_ssim, rgb_psnr, rgb_ssim", [
    # Reference: scikit-image 0.26.0 on the calibration pair (dist_dir/NAME vs
    # ref_dir/NAME), shave 4: Y = rgb2ycbcr(img)[..., 0]; peak_signal_noise_ratio(
    # data_range=255); structural_similarity(gaussian_weights=True, sigma=1.5,
    # use_sample_covariance=False, data_range=255[, channel_axis=2 for RGB]).
    ("I04.bmp", 57.29946329428303, 0.9988615915298197, 20.95917343635803, 0.9339061817042289),
    ("I19.bmp", 24.28160438287002, 0.6804033109156807, 21.566483065469804, 0.631716710694919),
])
def test_psnr_ssim_match_scikit_image(shared, name, y_psnr, y_ssim, rgb_psnr, rgb_ssim):
    root = shared / "fixtures/iqa_calibration"
    dist = read_image(root / "dist_dir" / name).rgb
    ref = read_image(root / "ref_dir" / name).rgb
    assert psnr(dist, ref, shave=4) == pytest.approx(y_psnr, abs=1e-9)
    assert ssim(dist, ref, shave=4) == pytest.approx(y_ssim, abs=1e-9)
    assert psnr(dist, ref, shave=4, color="rgb") == pytest.approx(rgb_psnr, abs=1e-9)
    assert ssim(dist, ref, shave=4, color="rgb") == pytest.approx(rgb_ssim, abs=1e-9)


def test_psnr_ssim_conventions():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert psnr(a, a) == float("inf")
    assert ssim(a, a) == pytest.approx(1.0)
    b = a.copy()
    b[:4] = 0  # damage only the border that shave=4 removes
    assert psnr(b, a, shave=4) == float("inf")
    assert psnr(b, a, shave=0) < 40
    # Tensors [3, H, W] of uint8 give the same numbers as arrays; floats are refused.
    ta, tb = (torch.from_numpy(v).permute(2, 0, 1) for v in (a, b))
    assert ssim(tb, ta) == pytest.approx(ssim(b, a))
    with pytest.raises(TypeError, match="quantise"):
        psnr(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="sizes differ"):
        psnr(a, a[:20])


# ------------------------------------------------------------------ LPIPS
@pytest.fixture(scope="module")
def lpips_alex(shared):
    return LPIPS("alex", weights_dir=shared / "weights")


def test_lpips_alex_reproduces_official_scores(shared, lpips_alex):
    root = shared / "fixtures/iqa_calibration"
    with open(root / "official_scores.csv") as f:
        rows = {r[0]: r[1:] for r in csv.reader(f)}
    assert tuple(rows["Method"]) == CALIBRATION
    for name, official in zip(CALIBRATION, rows["lpips"], strict=True):
        ours = lpips_alex.distance(read_image(root / "ref_dir" / name).rgb,
                                   read_image(root / "dist_dir" / name).rgb)
        assert abs(ours - float(official)) < 5e-5, (name, ours, official)


def test_lpips_vgg_matches_official_package(shared):
    # Reference: the official `lpips` package 0.1.4, LPIPS(net='vgg', version='0.1'),
    # whose torchvision VGG16 was given the ImageNet weights of shared/weights, called as
    # (ref, dist) on [-1, 1] images: I06 0.054361, I08 0.047481.
    root = shared / "fixtures/iqa_calibration"
    model = LPIPS("vgg", weights_dir=shared / "weights")
    for name, official in (("I06.bmp", 0.054361), ("I08.bmp", 0.047481)):
        ours = model.distance(read_image(root / "ref_dir" / name).rgb,
                              read_image(root / "dist_dir" / name).rgb)
        assert abs(ours - official) < 5e-6, (name, ours)


def test_lpips_is_differentiable_and_zero_on_identical_images(lpips_alex):
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.allclose(lpips_alex(x, x), torch.zeros(2), atol=1e-7)
    y = x.clone().requires_grad_(True)
    d = lpips_alex(y, torch.flip(x, dims=[3]))
    d.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in lpips_alex.parameters())


# ------------------------------------------------------------------ consistency, diversity
def test_lr_consistency(shared):
    lr = read_image(shared / "data/RealSR_x4/val/LR/Canon_031.png").rgb
    up = imresize_uint8(lr, scale=4)
    # bicubic up then down is close to, but not exactly, the identity
    assert 40 < lr_psnr(up, lr) < 60
    noisy = np.clip(up.astype(int) + np.random.default_rng(0).integers(-40, 41, up.shape),
                    0, 255).astype(np.uint8)
    assert lr_psnr(noisy, lr) < lr_psnr(up, lr)


def test_diversity(lpips_alex):
    a = np.zeros((32, 32, 3), np.uint8)
    b = np.full((32, 32, 3), 10, np.uint8)
    assert pixel_std([a, b]) == pytest.approx(5.0)
    assert pixel_std([a, a, a]) == 0.0
    assert pairwise_lpips([b, b, b], lpips_alex) == pytest.approx(0.0, abs=1e-7)
    rng = np.random.default_rng(1)
    c = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert pairwise_lpips([a, c], lpips_alex) > 0.05
    with pytest.raises(ValueError):
        pixel_std([a])


# ------------------------------------------------------------------ degradation statistics
def _smooth_image(size: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    gray = 60 + 120 * (0.5 + 0.5 * np.sin(3 * xx + 2 * yy))
    return np.repeat(gray[:, :, None], 3, axis=2)


def test_noise_sigma_recovers_added_noise():
    clean = _smooth_image()
    assert noise_sigma(clean.round().astype(np.uint8)) < 0.5
    rng = np.random.default_rng(0)
    for sigma in (3.0, 8.0):
        # grey noise: Y of a grey pixel equals 16 + 219/255 * grey, so scale sigma back
        noise = rng.normal(0.0, sigma * 255 / 219, clean.shape[:2])[:, :, None]
        noisy = np.clip(clean + noise, 0, 255).round().astype(np.uint8)
        assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.1)


def test_colour_detail_tells_colour_noise_from_grey_noise():
    from sdflow.metrics.degradation import colour_detail

    clean = _smooth_image()  # grey: no colour difference anywhere
    assert colour_detail(clean.round().astype(np.uint8)) < 1e-12
    rng = np.random.default_rng(0)
    grey = clean + rng.normal(0.0, 4.0, clean.shape[:2])[:, :, None]
    colour = clean + rng.normal(0.0, 4.0, clean.shape)
    as8 = [np.clip(a, 0, 255).round().astype(np.uint8) for a in (grey, colour)]
    # only rounding puts colour into the grey-noise image; noise per channel puts much
    assert colour_detail(as8[0]) < 0.05 < 0.3 < colour_detail(as8[1])
    with pytest.raises(ValueError, match="8x8"):
        colour_detail(np.zeros((4, 16, 3), np.uint8))


def test_blur_index_grows_with_blur(shared):
    img = read_image(shared / "data/RealSR_x4/val/HR/Canon_031.png").rgb
    values = [blur_index(img)]
    t = torch.from_numpy(img).permute(2, 0, 1).double()
    for k in (3, 7):
        blurred = torch.nn.functional.avg_pool2d(t[None], k, stride=1, padding=k // 2,
                                                 count_include_pad=False)[0]
        values.append(blur_index(blurred.round().byte()))
    assert values[0] < values[1] < values[2] <= 1.0


@pytest.mark.parametrize("k", [2, 4, 8])
@pytest.mark.parametrize("blocks", [(2, 2), (3, 5), (16, 7)])
def test_downscale_by_equals_imresize_by_one_over_k(k, blocks):
    """The exportable strided-convolution form of MATLAB's antialiased x1/k (used by the
    DS graphs) is imresize itself, borders included, in float64."""
    from sdflow.metrics.resize import downscale_by, imresize_down

    g = torch.Generator().manual_seed(k)
    x = torch.rand(2, 3, blocks[0] * k, blocks[1] * k, generator=g, dtype=torch.float64)
    want = imresize(x, scale=1 / k)
    torch.testing.assert_close(downscale_by(x, k), want, atol=1e-13, rtol=0)
    torch.testing.assert_close(imresize_down(x, k), want, atol=1e-13, rtol=0)
    odd = x[..., 1:, :]  # not a multiple of k: imresize_down falls back to imresize
    torch.testing.assert_close(imresize_down(odd, k), imresize(odd, scale=1 / k))

"""The bundled default model: registered, intact, loadable by name, and actually trained.

The quality floors are set well below what the shipped model measures (see the comments)
and well above what the same architecture gives before training, so a broken, untrained
or swapped file fails them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sdflow import registry
from sdflow.cli import main
from sdflow.inference.batch import read_metadata
from sdflow.metrics import imresize_uint8, lr_psnr, psnr

from inference_helpers import one_thread

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)

PAIR = "Canon_031.png"  # a val/ pair: never seen in training (train/ holds other scenes)

# Measured on the top-left 64x64 LR crop of PAIR (Y, shave 4; DS: Y, no shave):
#   shipped model  SR tau 0 32.78 dB, LR-consistency 47.64 dB, DS tau 0 35.97 dB
#   bicubic        SR 33.55 dB, DS (bicubic 1/4 vs real LR) 36.10 dB
#   same architecture, untrained (Haar init + ActNorm init): 14.57 / 12.06 / 16.45 dB
SR_MARGIN_DB = 1.5  # SR may trail bicubic in PSNR (it is a perceptual model), by little
LR_CONSISTENCY_FLOOR_DB = 44.0
DS_MARGIN_DB = 1.0


@pytest.fixture(scope="module")
def model():
    return registry.load()  # the default, sha256 checked


@pytest.fixture(scope="module")
def pair(shared):
    root = shared / "data/RealSR_x4/val"
    with Image.open(root / "LR" / PAIR) as lr, Image.open(root / "HR" / PAIR) as hr:
        return np.asarray(lr.convert("RGB"))[:64, :64], np.asarray(hr.convert("RGB"))[:256, :256]


def test_default_is_registered_and_intact():
    assert registry.DEFAULT_MODEL in registry.available()
    resolved = registry.resolve(None)
    assert resolved.entry is registry.MODELS[registry.DEFAULT_MODEL]
    assert registry.sha256_of(resolved) == resolved.entry.sha256


def test_default_model_super_resolves_a_real_photo(model, pair):
    lr, hr = pair
    sr = np.asarray(model.sr(Image.fromarray(lr), tau=0.0, seed=0))
    assert sr.shape == hr.shape
    bicubic = imresize_uint8(lr, scale=4)
    assert psnr(sr, hr, shave=4) > psnr(bicubic, hr, shave=4) - SR_MARGIN_DB
    assert lr_psnr(sr, lr) > LR_CONSISTENCY_FLOOR_DB


def test_default_model_downscales_like_the_real_camera(model, pair):
    lr, hr = pair
    ds = np.asarray(model.downscale(Image.fromarray(hr), tau=0.0, seed=0))
    assert ds.shape == lr.shape
    bicubic = imresize_uint8(hr, scale=0.25)
    assert psnr(ds, lr, shave=0) > psnr(bicubic, lr, shave=0) - DS_MARGIN_DB


def test_sr_without_model_uses_the_default(pair, tmp_path):
    lr, _ = pair
    src = tmp_path / "photo.png"
    Image.fromarray(lr[:32, :32]).save(src)
    torch.manual_seed(0)
    assert main(["sr", str(src), "-o", str(tmp_path / "out"), "--tau", "0"]) == 0
    out = tmp_path / "out" / "photo_sr_t0.00_s0.png"
    with Image.open(out) as img:
        assert img.size == (128, 128)
    assert read_metadata(out)["model"] == registry.DEFAULT_MODEL

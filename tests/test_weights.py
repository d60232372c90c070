"""Weight lookup order and the pretrained backbones' layout."""

from __future__ import annotations

import shutil

import pytest
import torch
from _evaldata import one_thread  # noqa: F401
from safetensors.torch import load_file

from sdflow.nets.backbones import (
    ALEXNET_RELUS,
    VGG16_RELUS,
    AlexNetFeatures,
    VGG16Features,
    VGGPerceptualFeatures,
)
from sdflow.weights import ENV_VAR, WEIGHT_FILES, WeightsNotFoundError, cache_dir, find_weights

NAME = WEIGHT_FILES["lpips_alex"]


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path


def _put(shared, folder):
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared / "weights" / NAME, folder / NAME)
    return folder / NAME


def test_lookup_order(shared, clean_env, monkeypatch):
    tmp = clean_env
    cached = _put(shared, cache_dir())
    assert cache_dir() == tmp / "xdg" / "sdflow" / "weights"
    assert find_weights("lpips_alex") == cached
    env = _put(shared, tmp / "env")
    monkeypatch.setenv(ENV_VAR, str(tmp / "env"))
    assert find_weights("lpips_alex") == env
    explicit = _put(shared, tmp / "explicit")
    assert find_weights("lpips_alex", tmp / "explicit") == explicit
    assert find_weights("lpips_alex", explicit) == explicit  # a file path is taken as is
    # An explicit folder without the file falls back to the next places.
    assert find_weights("lpips_alex", tmp / "nowhere") == env


def test_missing_file_says_what_to_put_where(clean_env, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(clean_env / "env"))
    with pytest.raises(WeightsNotFoundError) as info:
        find_weights("vgg16", clean_env / "explicit")
    message = str(info.value)
    assert WEIGHT_FILES["vgg16"] in message
    for place in (clean_env / "explicit", clean_env / "env", cache_dir()):
        assert str(place / WEIGHT_FILES["vgg16"]) in message
    assert ENV_VAR in message


def test_backbones_use_torchvision_key_layout(shared):
    for cls, key in ((AlexNetFeatures, "alexnet"), (VGG16Features, "vgg16")):
        state = load_file(str(shared / "weights" / WEIGHT_FILES[key]))
        assert set(cls().state_dict()) == set(state)
    assert VGG16_RELUS["relu1_2"] == 3 and VGG16_RELUS["relu5_3"] == 29
    assert len(VGG16_RELUS) == 13 and ALEXNET_RELUS["relu5"] == 11


def test_vgg_perceptual_features(shared):
    net = VGGPerceptualFeatures(("relu1_2", "relu3_3"), weights_dir=shared / "weights")
    net.train()
    assert not net.vgg.training  # the backbone stays in eval mode
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    f1, f3 = net(x)
    assert f1.shape == (1, 64, 32, 32) and f3.shape == (1, 256, 8, 8)
    (f1.mean() + f3.mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="unknown layers"):
        net.vgg(x, ["relu9_9"])

"""spandrel loads both shipped architectures from their files (tests run where spandrel
imports, i.e. beside a torch/torchvision pair built together; .ci/run makes such a venv)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdflow import registry
from sdflow.checkpoint import load
from sdflow.export.onnx import SRGraph

spandrel = pytest.importorskip("spandrel", reason="spandrel is not installed (or torchvision "
                               "does not import beside this torch): see .ci/run")

from sdflow.export import spandrel as sdflow_spandrel  # noqa: E402

MODELS = {"sdflow-lite-realsr-x4": "SDFlow", "da-iccv21-realsr-x4": "DA-ICCV21"}


@pytest.fixture(scope="module", autouse=True)
def registered():
    sdflow_spandrel.register()
    sdflow_spandrel.register()  # twice: no duplicate error


@pytest.fixture(scope="module")
def image(shared):
    from PIL import Image

    img = Image.open(shared / "data" / "RealSR_x4" / "val" / "LR" / "Canon_031.png")
    arr = np.asarray(img.convert("RGB").crop((40, 40, 77, 70)), dtype=np.float32) / 255
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()  # 37x30: odd sides


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_loader_returns_a_truthful_sr_descriptor(name, image):
    path = registry.resolve(name).path
    desc = spandrel.ModelLoader().load_from_file(str(path))
    assert isinstance(desc, spandrel.ImageModelDescriptor)
    assert desc.architecture.id == MODELS[name] and desc.purpose == "SR"
    assert desc.scale == 4 and desc.input_channels == 3 and desc.output_channels == 3
    assert desc.tiling == spandrel.ModelTiling.SUPPORTED
    out = desc(image)
    assert out.shape == (1, 3, 4 * image.shape[2], 4 * image.shape[3])
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    # the same numbers as sdflow's own tau-0 SR of the file
    reference = SRGraph(load(path), tau=0.0).eval()
    with torch.no_grad():
        torch.testing.assert_close(out, reference(image), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_precision_flags_are_truthful(name, image):
    desc = spandrel.ModelLoader().load_from_file(str(registry.resolve(name).path))
    ref = desc(image)
    assert desc.supports_bfloat16 and desc.supports_half
    for dtype in (torch.bfloat16, torch.float16):
        desc.to(dtype)
        try:
            out = desc(image.to(dtype)).float()
        finally:
            desc.to(torch.float32)
        # finite, and within 1.5 grey levels on average of the float32 result (measured on
        # CPU: SDFlow bf16 1.0, fp16 0.2; da-iccv21 bf16 0.36, fp16 0.06)
        assert bool(torch.isfinite(out).all()), dtype
        assert float((out - ref).abs().mean()) * 255 < 1.5, dtype


def test_other_architectures_are_not_claimed():
    esrgan_like = {"conv_first.weight": torch.zeros(64, 3, 3, 3),
                   "body.0.rdb1.conv1.weight": torch.zeros(32, 64, 3, 3)}
    for arch in sdflow_spandrel._architectures(spandrel):
        assert not arch.detect(esrgan_like)

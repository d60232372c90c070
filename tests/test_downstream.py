"""The downstream test's network, training and folder SR, on a few real pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdflow.evaluation import EvalOptions, evaluate_folders
from sdflow.evaluation.downstream import (
    DownstreamConfig,
    DownstreamSR,
    load_pairs,
    super_resolve_folder,
    train_downstream,
)
from sdflow.imageio import read_image, write_image
from sdflow.metrics import imresize_uint8

from inference_helpers import one_thread

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_network_starts_as_bicubic_and_keeps_shape():
    net = DownstreamSR(channels=8, blocks=1)
    y = torch.rand(1, 3, 7, 9) * 2 - 1
    out = net(y)
    assert out.shape == (1, 3, 28, 36)
    bicubic = torch.nn.functional.interpolate(y, scale_factor=4, mode="bicubic",
                                              align_corners=False)
    torch.testing.assert_close(out, bicubic)  # zero tail: the residual starts at 0


def test_tiny_downstream_run_end_to_end(shared, tmp_path):
    pairs = tmp_path / "pairs"
    for i, name in enumerate(("Canon_002", "Nikon_002")):
        hr = read_image(shared / f"data/RealSR_x4/train/HR/{name}.png").rgb[:96, :96]
        write_image(pairs / "HR" / f"p{i}.png", hr)
        write_image(pairs / "LR" / f"p{i}.png", imresize_uint8(hr, scale=0.25))
    assert len(load_pairs(pairs)) == 2
    cfg = DownstreamConfig(iterations=3, batch_size=2, lr_crop=8, channels=8, blocks=1)
    a = train_downstream(pairs, cfg)
    b = train_downstream(pairs, cfg)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)  # deterministic for a seed
    val = shared / "data/RealSR_x4/val"
    names = ["Canon_031", "Nikon_032"]
    out = super_resolve_folder(a, val / "LR", tmp_path / "sr", names=names)
    assert sorted(p.stem for p in out) == names
    assert read_image(out[0]).rgb.shape == (512, 512, 3)
    gt, lr = tmp_path / "gt", tmp_path / "lr"
    for name in names:
        write_image(gt / f"{name}.png", read_image(val / "HR" / f"{name}.png").rgb)
        write_image(lr / f"{name}.png", read_image(val / "LR" / f"{name}.png").rgb)
    result = evaluate_folders(tmp_path / "sr", gt, EvalOptions(lpips_net=None),
                              lr_dir=lr, method="downstream")
    assert len(result.rows) == 2 and all(np.isfinite(r["psnr"]) for r in result.rows)


def test_pairs_that_are_not_x4_are_refused(shared, tmp_path):
    hr = read_image(shared / "data/RealSR_x4/train/HR/Canon_002.png").rgb[:64, :64]
    write_image(tmp_path / "HR" / "a.png", hr)
    write_image(tmp_path / "LR" / "a.png", hr[:15, :16])
    with pytest.raises(ValueError, match="not 4x"):
        load_pairs(tmp_path)

"""The training speed-ups (the config's ``speed`` section) compute what the reference path
(every switch off) computes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import sdflow
from sdflow.training.config import load_config
from sdflow.training.losses import PerceptualLoss, TargetCache
from sdflow.training.sdflow_objective import (
    SDFlowDiscriminators,
    SDFlowLossConfig,
    SDFlowObjective,
)
from sdflow.training.trainer import Trainer

from helpers import real_crops, tiny_model


def _terms_and_grads(obj, model, hr, lr):
    model.zero_grad(set_to_none=True)
    terms, _, cache = obj.generator_terms(hr, lr, iteration=0,
                                          generator=torch.Generator().manual_seed(3))
    obj.weighted_total(terms).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: float(v.detach()) for k, v in terms.items()}, grads, cache


def test_generator_terms_and_gradients_equal_the_reference(shared):
    torch.manual_seed(0)
    model = tiny_model(shared).train()
    cfg = SDFlowLossConfig(n_pre=0, content_perceptual=0.05, perceptual=0.5, disc_base=8)
    vgg = PerceptualLoss(cfg.perceptual_layers, str(shared / "weights"))
    discs = SDFlowDiscriminators(cfg).eval()  # eval: no spectral-norm power iteration
    obj = SDFlowObjective(model, discs, cfg, vgg)
    hr, _ = real_crops(shared, 64, "Nikon_031.png")
    _, lr = real_crops(shared, 64, "Canon_033.png")
    hr, lr = hr.repeat(2, 1, 1, 1), lr.repeat(2, 1, 1, 1)

    vgg_batches: list[int] = []
    vgg.features.register_forward_hook(lambda m, args, out: vgg_batches.append(len(args[0])))
    fast_terms, fast_grads, fast_cache = _terms_and_grads(obj, model, hr, lr)
    fast_vgg, vgg_batches[:] = list(vgg_batches), []
    obj.share_targets = obj.batch_frozen_passes = False  # the speed section off
    ref_terms, ref_grads, ref_cache = _terms_and_grads(obj, model, hr, lr)
    # reference: (generated, target) per pair, 4 pairs; optimised: each target once, then
    # the 4 generated images in one batch
    assert vgg_batches == [2] * 8 and fast_vgg == [2, 2, 8]

    assert list(fast_terms) == list(ref_terms)  # same terms, same order of summation
    assert {"content", "perceptual", "perceptual_ds", "low_frequency", "adversarial"} \
        <= set(ref_terms)
    for k, v in ref_terms.items():
        assert abs(fast_terms[k] - v) <= 1e-5 * max(1.0, abs(v)), k
    assert fast_grads.keys() == ref_grads.keys()
    for n, g in ref_grads.items():
        assert (fast_grads[n] - g).abs().max() <= 1e-4 * max(1.0, float(g.abs().max())), n
    assert torch.equal(fast_cache["sr"], ref_cache["sr"])


def test_target_cache_shares_only_data_and_can_be_switched_off():
    calls = []

    def double(x):
        calls.append(1)
        return 2 * x

    data = torch.ones(2)
    shared_cache = TargetCache(True)
    assert torch.equal(shared_cache.get("f", data, double), 2 * data)
    shared_cache.get("f", data, double)
    shared_cache.get("f", data.clone(), double)  # another tensor: computed again
    assert len(calls) == 2
    plain = TargetCache(False)
    plain.get("f", data, double)
    plain.get("f", data, double)
    assert len(calls) == 4
    with pytest.raises(ValueError, match="requires grad"):
        shared_cache.get("f", torch.ones(2, requires_grad=True), double)


def _train(shared: Path, out: Path, speed: bool = True) -> list[dict]:
    data = shared / "data/RealSR_x4"
    overrides = {"data.lr_dirs": [str(data / "train/LR")],
                 "data.hr_dirs": [str(data / "train/HR")], "data.val_dir": None,
                 "run.out_dir": str(out), "run.log_every": 1, "run.iterations": 4,
                 "loss.n_pre": 2, "loss.content_perceptual": 0.05, "loss.perceptual": 0.5,
                 "run.weights_dir": str(shared / "weights")}
    if not speed:
        overrides.update({"speed.share_targets": False, "speed.batch_frozen_passes": False,
                          "speed.foreach_updates": False})
    Trainer(load_config("smoke", None, [f"{k}={json.dumps(v)}"
                                        for k, v in overrides.items()])).fit()
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if r["type"] == "train"]


def test_training_run_equals_the_reference_run(shared, tmp_path):
    """A few whole steps (both stages, Adam, clipping, weight average) with every training
    switch on and with all off: the same losses and the same averaged weights."""
    fast = _train(shared, tmp_path / "fast")
    ref = _train(shared, tmp_path / "ref", speed=False)
    recorded = json.loads((tmp_path / "ref" / "config.json").read_text())
    assert recorded["speed"] == {"share_targets": False, "batch_frozen_passes": False,
                                 "foreach_updates": False}  # the run says what it used
    assert [r["iteration"] for r in fast] == [r["iteration"] for r in ref] == [0, 1, 2, 3]
    for a, b in zip(fast, ref, strict=True):
        for key in ("loss", "content", "perceptual", "low_frequency", "grad_norm", "d_hr"):
            if key in b:
                assert abs(a[key] - b[key]) <= 1e-4 * max(1.0, abs(b[key])), (b["iteration"], key)
    assert "perceptual" in ref[-1]
    wa = sdflow.load(tmp_path / "fast" / "model_ema.safetensors").state_dict()
    wb = sdflow.load(tmp_path / "ref" / "model_ema.safetensors").state_dict()
    for k in wb:
        assert (wa[k] - wb[k]).abs().max() <= 1e-5, k

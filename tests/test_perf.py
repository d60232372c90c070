"""The inference optimisations compute what the reference path computes."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from sdflow import perf
from sdflow.flows import ActNorm, FlowStep, data_init
from sdflow.official import load_official

from helpers import real_crops, tiny_model


@pytest.fixture(scope="module")
def official(shared):
    return load_official(shared / "fixtures/official_parity")


@pytest.fixture(scope="module")
def expected(shared):
    return torch.load(shared / "fixtures/official_parity/expected.pt", weights_only=True)


def _run(model, lr, hr):
    with torch.no_grad():
        return (model.sr(lr, 0.0), model.sr(lr, 0.8, seed=1),
                model.downscale(hr, 0.0, component=5), model.downscale(hr, 0.8, seed=2),
                model.log_prob_hr(hr), model.log_prob_lr(lr))


def test_optimised_equals_reference_on_parity_fixture(official, expected):
    lr, hr = expected["lr"], expected["hr"]
    fast = _run(official, lr, hr)
    with perf.reference():
        ref = _run(official, lr, hr)
    for a, b in zip(fast, ref, strict=True):
        assert (a - b).abs().max() < 1e-4 * max(1.0, float(b.abs().max()))
    assert (fast[0] - expected["sr_tau0"]).abs().max() < 1e-4
    assert (fast[2] - expected["ds_tau0_component5"]).abs().max() < 1e-4


def test_optimised_equals_reference_on_real_images(shared):
    model = tiny_model(shared)
    hr, lr = real_crops(shared, 128, "Nikon_035.png")
    fast = _run(model, lr, hr)
    with perf.reference():
        ref = _run(model, lr, hr)
    for a, b in zip(fast, ref, strict=True):
        assert (a - b).abs().max() < 1e-4 * max(1.0, float(b.abs().max()))


def test_caches_follow_parameter_changes(shared):
    model = tiny_model(shared)
    _, lr = real_crops(shared, 32)
    with torch.no_grad():
        before = model.sr(lr, 0.0)
        step = model.hr_flow.levels[0].steps[0]
        step.invconv.log_abs_diag.add_(0.1)
        step.actnorm.loc.add_(0.1)
        after = model.sr(lr, 0.0)
        with perf.reference():
            ref = model.sr(lr, 0.0)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, ref, atol=1e-5, rtol=0)


def test_no_folding_when_training_or_differentiating():
    step = FlowStep(4, hidden=8).eval()
    with torch.no_grad():
        assert step._folded() is not None
    assert step._folded() is None  # autograd on
    step.train()
    with torch.no_grad():
        assert step._folded() is None


def test_data_init_still_runs_under_no_grad_in_eval():
    step = FlowStep(4, hidden=8).eval()
    x = torch.randn(8, 4, 5, 5) * 3 + 2
    with torch.no_grad(), data_init(step):
        step(x)
    assert isinstance(step.actnorm, ActNorm) and step.actnorm.is_initialized
    assert step.actnorm.loc.abs().sum() > 0


def test_bf16_condition_switch_changes_little(shared):
    model = tiny_model(shared)
    _, lr = real_crops(shared, 64)
    with torch.no_grad():
        ref = model.sr(lr, 0.0)
        with perf.configured(bf16_condition=True):
            low = model.sr(lr, 0.0)
    assert torch.isfinite(low).all()
    assert 0 < (low - ref).abs().max() < 0.1
    with pytest.raises(ValueError, match="unknown"):
        with perf.configured(turbo=True):
            pass


def test_condition_nets_run_channels_last_only_at_inference(shared):
    from sdflow.nets.rrdb import ConditionNet

    model = tiny_model(shared)
    hr, lr = real_crops(shared, 32)
    weights = [m.conv_in.weight for m in model.modules() if isinstance(m, ConditionNet)]
    assert weights and all(w.is_contiguous() for w in weights)
    with torch.no_grad():
        model.sr(lr, 0.0)
        model.downscale(hr, 0.0, component=0)  # SR and DS use different condition nets
    assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
               for w in weights)
    with torch.no_grad(), perf.reference():  # the reference path is plain: back to contiguous
        model.sr(lr, 0.0)
        model.downscale(hr, 0.0, component=0)
    assert all(w.is_contiguous() for w in weights)
    with torch.no_grad():
        model.sr(lr, 0.0)
        model.downscale(hr, 0.0, component=0)
    model.train()
    (model.log_prob_hr(hr).sum() + model.log_prob_lr(lr).sum()).backward()  # training: plain
    assert all(w.is_contiguous() and w.grad is not None for w in weights)


def _small_condition_net():
    from sdflow.nets.rrdb import ConditionNet

    torch.manual_seed(0)
    return ConditionNet(3, num_blocks=1, channels=8, growth=4).eval()


def test_compiled_condition_net_equals_eager():
    net = _small_condition_net()
    x = torch.randn(1, 3, 12, 12)
    with torch.no_grad():
        eager = net(x)
        with perf.configured(compile_condition=True):
            compiled = net(x)
            assert perf._COMPILED.get(net) is not None  # really went through torch.compile
    assert (compiled - eager).abs().max() < 1e-5
    ref = weakref.ref(net)
    del net
    gc.collect()
    assert ref() is None  # the compile cache does not keep modules alive


def test_compile_failure_falls_back_to_eager(monkeypatch, caplog):
    net = _small_condition_net()
    x = torch.randn(1, 3, 12, 12)

    def broken_compile(fn):
        def run(*args):
            raise RuntimeError("no C++ compiler found\nmore detail")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    with torch.no_grad():
        eager = net(x)
        with perf.configured(compile_condition=True), caplog.at_level("WARNING"):
            out = net(x)
            again = net(x)
    assert torch.equal(out, eager) and torch.equal(again, eager)
    assert "torch.compile failed (RuntimeError: no C++ compiler found)" in caplog.text
    assert caplog.text.count("torch.compile failed") == 1  # then eager for good


def test_compile_switch_is_ignored_when_training():
    net = _small_condition_net().train()
    with perf.configured(compile_condition=True):
        net(torch.randn(1, 3, 12, 12))
    assert net not in perf._COMPILED


def test_condition_padding_is_shared_within_a_flow_pass_and_changes_nothing(shared,
                                                                          monkeypatch):
    from sdflow.flows import coupling

    model = tiny_model(shared, dtype=torch.float64).train()
    hr, lr = real_crops(shared, 32)
    hr, lr = hr.double(), lr.double()
    pads: list[int] = []
    original = coupling.reflect_pad
    monkeypatch.setattr(coupling, "reflect_pad",
                        lambda x: pads.append(x.shape[1]) or original(x))

    def run():
        model.zero_grad(set_to_none=True)
        pads.clear()
        total = model.encode_hr(hr)[2].sum() + model.encode_lr_parts(lr).log_prob.sum()
        total.backward()
        return total.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                if p.grad is not None}, list(pads)

    fast, fast_grads, fast_pads = run()
    with perf.configured(share_condition_padding=False):
        ref, ref_grads, ref_pads = run()
    assert torch.allclose(fast, ref, rtol=1e-12, atol=0)
    assert fast_grads.keys() == ref_grads.keys()
    for n, g in ref_grads.items():
        assert torch.allclose(fast_grads[n], g, rtol=1e-10, atol=1e-12), n
    cond_channels = model.config.cond_channels
    # every conditional layer used to pad the condition features itself; now each of the
    # two conditional flows (HF, degradation) pads them once
    assert ref_pads.count(cond_channels) > 2 and fast_pads.count(cond_channels) == 2


def test_cpu_features_describe_this_machine():
    from sdflow.hardware import cpu_features

    cpu = cpu_features()
    assert cpu.cores >= 1 and f"{cpu.cores} cores" in cpu.describe()
    assert cpu.bf16_matrix_units == (cpu.avx512_bf16 or cpu.amx)

"""A prepared model (sdflow.prepare) computes what the unprepared reference path computes,
and the condition padding a conditional flow makes once changes nothing."""

from __future__ import annotations

import pytest
import torch

from sdflow.flows import ActNorm, CouplingNet, FlowStep, data_init
from sdflow.models import DAICCV21, DAICCV21Config
from sdflow.models.prepare import Preparation, prepare
from sdflow.nets.rrdb import ConditionNet
from sdflow.official import load_official

from helpers import real_crops, tiny_model


@pytest.fixture(scope="module")
def official(shared):
    return load_official(shared / "fixtures/official_parity")


@pytest.fixture(scope="module")
def expected(shared):
    return torch.load(shared / "fixtures/official_parity/expected.pt", weights_only=True)


def _run(model, lr, hr, component=5):
    with torch.no_grad():
        return (model.sr(lr, 0.0), model.sr(lr, 0.8, seed=1),
                model.downscale(hr, 0.0, component=component),
                model.downscale(hr, 0.8, seed=2),
                model.log_prob_hr(hr), model.log_prob_lr(lr))


def test_prepared_equals_reference_on_parity_fixture(official, expected):
    lr, hr = expected["lr"], expected["hr"]
    fast = _run(prepare(official), lr, hr)
    ref = _run(official, lr, hr)
    for a, b in zip(fast, ref, strict=True):
        assert (a - b).abs().max() < 1e-4 * max(1.0, float(b.abs().max()))
    assert (fast[0] - expected["sr_tau0"]).abs().max() < 1e-4
    assert (fast[2] - expected["ds_tau0_component5"]).abs().max() < 1e-4


@pytest.mark.parametrize("channels_last", [True, False])
def test_prepared_equals_reference_on_real_images(shared, channels_last):
    model = tiny_model(shared)
    hr, lr = real_crops(shared, 128, "Nikon_035.png")
    fast = _run(prepare(model, channels_last=channels_last), lr, hr, component=3)
    ref = _run(model, lr, hr, component=3)
    for a, b in zip(fast, ref, strict=True):
        assert (a - b).abs().max() < 1e-4 * max(1.0, float(b.abs().max()))


def test_a_prepared_copy_is_an_ordinary_frozen_module_and_leaves_the_original_alone(shared):
    model = tiny_model(shared).train()
    _, lr = real_crops(shared, 32)
    weights = [m.conv_in.weight for m in model.modules() if isinstance(m, ConditionNet)]
    prepared = prepare(model, channels_last=True)
    assert model.training and model.preparation is None  # the original is untouched
    assert all(w.is_contiguous() and w.requires_grad for w in weights)
    assert not prepared.training and prepared.preparation == Preparation("fp32", True, False)
    assert not any(p.requires_grad for p in prepared.parameters())
    assert prepared.state_dict().keys() == model.state_dict().keys()  # same checkpoint
    nets = [m for m in prepared.modules() if isinstance(m, ConditionNet)]
    assert nets and all(n.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
                        for n in nets)
    steps = [m for m in prepared.modules() if isinstance(m, FlowStep)]
    assert steps and all(s.baked for s in steps)
    couplings = [m for m in prepared.modules() if isinstance(m, CouplingNet)]
    assert couplings and all(c.baked and c.memory_format == torch.channels_last
                             for c in couplings)
    assert not any(m.baked for m in model.modules() if isinstance(m, CouplingNet))
    # a snapshot: the original's later changes do not reach it, preparing again does
    with torch.no_grad():
        before = prepared.sr(lr, 0.0)
        step = model.hr_flow.levels[0].steps[0]
        step.invconv.log_abs_diag.add_(0.1)
        step.actnorm.loc.add_(0.1)
        assert torch.equal(prepared.sr(lr, 0.0), before)
        model.eval()
        again = prepare(model).sr(lr, 0.0)
        ref = model.sr(lr, 0.0)
    assert not torch.allclose(before, again)
    torch.testing.assert_close(again, ref, atol=1e-5, rtol=0)


def test_baking_inside_data_init_is_refused_and_data_init_still_works_in_eval():
    step = FlowStep(4, hidden=8).eval()
    x = torch.randn(8, 4, 5, 5) * 3 + 2
    with torch.no_grad(), data_init(step):
        with pytest.raises(RuntimeError, match="data_init"):
            step.bake()
        step(x)
    assert isinstance(step.actnorm, ActNorm) and step.actnorm.is_initialized
    assert step.actnorm.loc.abs().sum() > 0


def test_baked_step_is_the_step_in_both_directions_float64():
    torch.manual_seed(0)
    step = FlowStep(8, cond_channels=4, hidden=8).double().eval()
    with torch.no_grad():
        step.actnorm.loc.normal_()
        step.actnorm.log_scale.normal_(0, 0.3)
    x, c = torch.randn(2, 8, 5, 6, dtype=torch.float64), torch.randn(2, 4, 5, 6,
                                                                  dtype=torch.float64)
    with torch.no_grad():
        y, ld = step(x, c)
        x_back, ld_inv = step.inverse(y, c)
        step.bake()
        yb, ldb = step(x, c)
        xb, ldb_inv = step.inverse(y, c)
    torch.testing.assert_close(yb, y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(xb, x_back, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ldb, ld, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ldb_inv, ld_inv, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_baked_coupling_net_is_the_net_float64(memory_format):
    torch.manual_seed(0)
    net = CouplingNet(5, 6, hidden=16).double().eval()
    with torch.no_grad():  # off the zero init, so that the folded output scale matters
        net.conv_out.conv.weight.normal_(0, 0.1)
        net.conv_out.conv.bias.normal_()
        net.conv_out.log_scale.normal_(0, 0.3)
    x = torch.randn(2, 5, 9, 7, dtype=torch.float64)
    with torch.no_grad():
        ref = net(x)
        net.bake(memory_format)
        out = net(x)
    assert net.state_dict().keys() == CouplingNet(5, 6, hidden=16).state_dict().keys()
    assert out.is_contiguous() and out.shape == ref.shape == (2, 6, 7, 5)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_bf16_preparation_changes_little_and_needs_condition_nets(shared):
    model = tiny_model(shared)
    _, lr = real_crops(shared, 64)
    with torch.no_grad():
        ref = prepare(model).sr(lr, 0.0)
        low = prepare(model, precision="bf16").sr(lr, 0.0)
    assert torch.isfinite(low).all()
    assert 0 < (low - ref).abs().max() < 0.1
    with pytest.raises(ValueError, match="precision"):
        prepare(model, precision="fp16")
    with pytest.raises(ValueError, match="has none"):
        prepare(DAICCV21(DAICCV21Config.preset("tiny")), precision="bf16")


def test_a_prepared_model_exports_with_torch_export(shared):
    """No caches keyed on tensor versions, no global switches: the SR graph of a prepared
    model traces (SDFlow with an explicit latent, da-iccv21) and computes the same."""
    _, lr = real_crops(shared, 16)
    for model in (tiny_model(shared), DAICCV21(DAICCV21Config.preset("tiny"))):
        prepared = prepare(model)
        exported = torch.export.export(prepared, (lr,))
        with torch.no_grad():
            torch.testing.assert_close(exported.module()(lr), prepared(lr), atol=1e-5,
                                       rtol=0)


def _small_condition_net():
    torch.manual_seed(0)
    return ConditionNet(3, num_blocks=1, channels=8, growth=4).eval()


def test_compiled_condition_net_equals_eager():
    net = _small_condition_net()
    x = torch.randn(1, 3, 12, 12)
    with torch.no_grad():
        eager = net(x)
        prepared = prepare(net, compile=True, channels_last=False)
        compiled = prepared(x)
    assert prepared.compiled_features is not None  # really went through torch.compile
    assert (compiled - eager).abs().max() < 1e-5
    assert net.compiled_features is None  # the original stays eager


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
        prepared = prepare(net, compile=True, channels_last=False)
        with caplog.at_level("WARNING"):
            out = prepared(x)
            again = prepared(x)
    assert torch.equal(out, eager) and torch.equal(again, eager)
    assert "torch.compile failed (RuntimeError: no C++ compiler found)" in caplog.text
    assert caplog.text.count("torch.compile failed") == 1  # then eager for good


def test_condition_padding_is_made_once_per_flow_pass_and_changes_nothing(shared,
                                                                           monkeypatch):
    """A conditional flow pads its condition features once (flows.PaddedCondition) for all
    its injectors and couplings; the layers given the bare features pad them each. Both
    compute the same log-likelihood and gradients."""
    from sdflow.flows import coupling
    from sdflow.flows.steps import ConditionalFlow

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
    # the bare features instead: every conditional layer pads them itself
    monkeypatch.setattr(coupling.PaddedCondition, "of", classmethod(lambda cls, u: u))
    ref, ref_grads, ref_pads = run()
    assert torch.allclose(fast, ref, rtol=1e-12, atol=0)
    assert fast_grads.keys() == ref_grads.keys()
    for n, g in ref_grads.items():
        assert torch.allclose(fast_grads[n], g, rtol=1e-10, atol=1e-12), n
    cond_channels = model.config.cond_channels
    flows = sum(isinstance(m, ConditionalFlow) for m in model.modules())
    assert ref_pads.count(cond_channels) > 2 * flows
    assert fast_pads.count(cond_channels) == flows == 2  # HF and degradation flows

@pytest.mark.parametrize("flags, probes, expected", [
    # an AVX2-only CPU known from /proc/cpuinfo alone: channels-last stays off there
    ({"avx2", "fma"}, {}, dict(avx2=True, avx512=False, avx512_bf16=False, amx=False,
                               channels_last=False, described="AVX2")),
    # AVX-512 with bf16 and AMX tiles
    ({"avx2", "avx512f", "avx512_bf16", "amx_tile"}, {},
     dict(avx2=True, avx512=True, avx512_bf16=True, amx=True, channels_last=True,
          described="AVX2, AVX-512, AVX512-BF16, AMX")),
    # PyTorch's own probe wins over the flags where the build has it
    ({"avx2", "avx512f"}, {"_is_avx512_supported": False},
     dict(avx2=True, avx512=False, avx512_bf16=False, amx=False, channels_last=False,
          described="AVX2")),
    ({}, {}, dict(avx2=False, avx512=False, avx512_bf16=False, amx=False,
                  channels_last=False, described="no AVX2/AVX-512/AMX")),
])
def test_cpu_features_read_probes_then_flags_and_choose_channels_last(monkeypatch, flags,
                                                                      probes, expected):
    from sdflow import hardware
    from sdflow.models import prepare as prepare_module

    monkeypatch.setattr(hardware, "_proc_flags", lambda: set(flags))
    monkeypatch.setattr(hardware, "_torch_probe", lambda name: probes.get(name))
    monkeypatch.setattr(prepare_module, "cpu_features", hardware.cpu_features)
    cpu = hardware.cpu_features()
    for name in ("avx2", "avx512", "avx512_bf16", "amx"):
        assert getattr(cpu, name) == expected[name], name
    assert cpu.describe().endswith(expected["described"])
    assert prepare_module.default_channels_last(torch.device("cpu")) == \
        expected["channels_last"]
    assert prepare_module.default_channels_last(torch.device("cuda"))


def test_count_macs_counts_convs_and_invertible_1x1s_and_refuses_a_prepared_copy(shared):
    from sdflow.flows.invconv import InvertibleConv1x1
    from sdflow.profiling import count_macs

    conv, inv = torch.nn.Conv2d(3, 8, 3, padding=1), InvertibleConv1x1(8)
    net = torch.nn.ModuleList([conv, inv])
    x = torch.randn(2, 3, 5, 7)
    with torch.no_grad(), count_macs(net) as macs:
        y, _ = inv(conv(x))
        inv.inverse(y)
    assert macs["total"] == 2 * 8 * 5 * 7 * 3 * 9 + 2 * (2 * 8 * 5 * 7 * 8)
    assert "inverse" not in inv.__dict__  # the counting wrapper is gone afterwards
    with pytest.raises(ValueError, match="unprepared"), count_macs(prepare(tiny_model(shared))):
        pass


def test_conv_peak_is_the_best_of_finite_positive_rates():
    from sdflow.profiling import conv_peak_gflops, conv_rates

    rates = conv_rates(repeats=1)
    assert set(rates) == {"nchw 128", "nchw 256", "channels_last 128", "channels_last 256"}
    assert all(0 < r < 1e6 for r in rates.values())
    assert 0 < conv_peak_gflops(repeats=1) < 1e6

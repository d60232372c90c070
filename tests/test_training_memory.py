"""A training step that cannot fit is refused before the first one, in one line, with a
batch size that fits (issue 24, item 10)."""

from __future__ import annotations

import torch
from torch import nn

from sdflow.training import memory


def test_saved_bytes_counts_what_backward_keeps_once():
    lin = nn.Linear(100, 50)
    x = torch.randn(8, 100, requires_grad=True)
    n = memory.saved_bytes(lambda: torch.relu(lin(x)).sum())
    # Linear keeps its input (8x100) and weight (50x100); relu keeps its output (8x50)
    assert n == 4 * (8 * 100 + 50 * 100 + 8 * 50)
    y = torch.randn(8, 100, requires_grad=True)
    assert memory.saved_bytes(lambda: (y * y).sum()) == 4 * 8 * 100  # one tensor, not two


def test_step_memory_scales_with_the_batch_and_finds_the_largest_that_fits():
    step = memory.StepMemory(per_image=10 * 2**20, fixed=100 * 2**20)
    assert step.step_bytes(4) == int(memory.ACTIVATION_FACTOR * 4 * 10 * 2**20 + 100 * 2**20)
    free = 2**30
    n = step.largest_batch(free)
    assert step.step_bytes(n) <= memory.HEADROOM * free < step.step_bytes(n + 1)
    assert memory.StepMemory(per_image=2**40, fixed=0).largest_batch(free) == 0


def test_the_probe_leaves_no_trace():
    torch.manual_seed(3)
    net = nn.Sequential(nn.utils.spectral_norm(nn.Linear(6, 6)), nn.BatchNorm1d(6))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    memory.measure_step([net], lambda: net(torch.randn(4, 6)).sum())
    assert torch.equal(torch.get_rng_state(), rng)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in net.parameters())


def test_an_impossible_batch_is_refused_in_one_line_before_anything_is_written(
        shared, tmp_path, capsys):
    from sdflow.cli import main

    data = shared / "data/RealSR_x4/train"
    run = tmp_path / "run"
    rc = main(["train", "--preset", "smoke", "--lr-dir", str(data / "LR"), "--hr-dir",
               str(data / "HR"), "--iterations", "3", "-o", str(run),
               "--set", "data.batch_size=65536", "--set", "data.lr_crop=32",
               "--set", "run.threads=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert "data.batch_size=65536" in err[0] and "free" in err[0]
    suggested = int(err[0].split("--set data.batch_size=")[1].split()[0])
    assert 1 <= suggested < 65536
    assert not run.exists() or not any(run.iterdir())

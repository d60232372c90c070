"""The trainer end to end on the smoke preset: learning, checkpoints, exact resume,
non-finite steps, rollback, and 2-process data parallelism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import sdflow
from sdflow.config import ConfigError
from sdflow.training.config import load_config
from sdflow.training.state import list_checkpoints
from sdflow.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def _overrides(shared: Path, out: Path, **extra) -> list[str]:
    data = shared / "data/RealSR_x4"
    base = {
        "data.lr_dirs": [str(data / "train/LR")],
        "data.hr_dirs": [str(data / "train/HR")],
        "data.val_dir": None,
        "run.out_dir": str(out),
        "run.log_every": 1,
    }
    base.update(extra)
    return [f"{k}={json.dumps(v)}" for k, v in base.items()]


def _records(run: Path, kind: str = "train") -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if r["type"] == kind]


def test_config_rejects_unknown_keys_and_bad_types(shared, tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_config("smoke", None, ["loss.lambda_typo=1"])
    with pytest.raises(ConfigError, match="optim.lr_g"):
        load_config("smoke", None, ["optim.lr_g=fast"])
    with pytest.raises(ConfigError, match="unknown top-level"):
        load_config("smoke", None, ["trainer.x=1"])
    cfg = load_config("smoke", None, ["optim.lr_g=1e-4", "loss.n_pre=7"])
    assert cfg.optim.lr_g == 1e-4 and cfg.loss.n_pre == 7
    for preset in ("paper_x4", "cpu_x4", "smoke"):
        load_config(preset)


def test_smoke_training_lowers_loss_and_exports_a_loadable_model(shared, tmp_path):
    run = tmp_path / "run"
    cfg = load_config("smoke", None, _overrides(shared, run, **{
        "run.iterations": 40, "optim.lr_g": 5e-4, "loss.n_pre": 1000}))
    out = Trainer(cfg).fit()
    losses = [r["loss"] for r in _records(run)]
    assert len(losses) == 40
    assert np.median(losses[-10:]) < np.median(losses[:10])
    model = sdflow.load(out)
    assert model.checkpoint_info.extra["iterations"] == 40
    lr = torch.rand(1, 3, 12, 10) * 2 - 1
    with torch.no_grad():
        assert model.sr(lr, 0.0).shape == (1, 3, 48, 40)
    assert list_checkpoints(run)  # training state checkpoints exist


def test_stage_two_and_validation_run(shared, tmp_path):
    run = tmp_path / "run"
    cfg = load_config("smoke", None, _overrides(shared, run, **{
        "run.iterations": 4, "loss.n_pre": 2, "run.val_every": 4,
        "data.val_dir": str(shared / "data/RealSR_x4/val"),
        "run.weights_dir": str(shared / "weights")}))
    Trainer(cfg).fit()
    train = _records(run)
    assert "adversarial" not in train[1] and "adversarial" in train[2]
    assert "d_hr" in train[3]
    val = _records(run, "val")[-1]
    for key in ("sr_t0.0_psnr", "sr_t0.8_lpips", "bicubic_psnr", "ds_t0.0_psnr",
                "ds_bicubic_psnr", "sr_t0.8_diversity_std", "bpd_hr", "bpd_lr"):
        assert np.isfinite(val[key]), key
    assert (run / "samples" / "val_00000004.png").is_file()


def _cli_train(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sdflow", "train", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_resume_after_kill_reproduces_the_uninterrupted_run(shared, tmp_path):
    # the same thread count in both processes: a reduction's float order depends on it
    extra = {"run.iterations": 14, "run.checkpoint_every": 3, "loss.n_pre": 6,
             "run.threads": 2}
    full = tmp_path / "full"
    Trainer(load_config("smoke", None, _overrides(shared, full, **extra))).fit()

    killed = tmp_path / "killed"
    args = ["--preset", "smoke"] + [a for o in _overrides(shared, killed, **extra)
                                     for a in ("--set", o)]
    proc = _cli_train(args)
    target = killed / "checkpoints" / "step_00000006.pt"
    deadline = time.time() + 120
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.exists(), proc.stderr.read().decode()[-2000:]
    assert not (killed / "model_ema.safetensors").exists() or \
        len(_records(killed)) < 14  # really interrupted

    Trainer(load_config("smoke", None, _overrides(shared, killed, **extra))).fit(resume="auto")
    a, b = _records(full), _records(killed)
    assert [r["iteration"] for r in b] == list(range(14))
    for ra, rb in zip(a, b, strict=True):
        for key in ("loss", "nll_hr", "nll_lr", "content", "grad_norm"):
            assert ra[key] == rb[key], (ra["iteration"], key)
    wa = sdflow.load(full / "model_ema.safetensors").state_dict()
    wb = sdflow.load(killed / "model_ema.safetensors").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_non_finite_step_is_skipped_and_training_continues(shared, tmp_path):
    run = tmp_path / "run"
    cfg = load_config("smoke", None, _overrides(shared, run, **{"run.iterations": 6}))
    trainer = Trainer(cfg)
    original = trainer.task.generator_loss

    def poisoned(batch, iteration, *args):
        total, logs, cache = original(batch, iteration, *args)
        return (total * float("nan") if iteration == 2 else total), logs, cache

    trainer._g_call._fn = poisoned
    trainer.fit()
    records = _records(run)
    assert [r.get("skipped", False) for r in records] == [False, False, True, False, False,
                                                          False]
    assert trainer.counters["skipped_g"] == 1 and records[-1]["iteration"] == 5
    assert all(torch.isfinite(p).all() for p in trainer.generator.parameters())


def test_consecutive_non_finite_steps_roll_back_and_lower_the_lr(shared, tmp_path):
    run = tmp_path / "run"
    cfg = load_config("smoke", None, _overrides(shared, run, **{
        "run.iterations": 8, "run.checkpoint_every": 4, "run.max_consecutive_skips": 2}))
    trainer = Trainer(cfg)
    original = trainer.task.generator_loss
    poisoned_once = {5: True, 6: True}

    def poisoned(batch, iteration, *args):
        total, logs, cache = original(batch, iteration, *args)
        if poisoned_once.pop(iteration, False):
            total = total * float("nan")
        return total, logs, cache

    trainer._g_call._fn = poisoned
    trainer.fit()
    rollbacks = _records(run, "rollback")
    assert len(rollbacks) == 1 and rollbacks[0]["iteration"] == 4
    assert rollbacks[0]["lr_scale"] == 0.5
    assert trainer.iteration == 8 and trainer.lr_scale == 0.5
    last = _records(run)[-1]
    assert last["lr_g"] == pytest.approx(cfg.optim.lr_g * 0.5 * 0.5 ** 3)  # 3 milestones passed


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_process_gloo_matches_one_process_with_the_same_global_batch(shared, tmp_path):
    extra = {"run.iterations": 5, "run.checkpoint_every": 5, "loss.n_pre": 3,
             "data.init_batch": 4}
    one = tmp_path / "one"
    Trainer(load_config("smoke", None, _overrides(shared, one, **{
        **extra, "data.batch_size": 2, "data.init_batch": 8}))).fit()
    two = tmp_path / "two"
    args = ["--preset", "smoke"] + [a for o in _overrides(shared, two, **{
        **extra, "data.batch_size": 1}) for a in ("--set", o)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", "-m", "sdflow", "train", *args],
                         cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    checkpoints = _records(two, "checkpoint")
    assert checkpoints and all(c["ranks_in_sync"] for c in checkpoints)
    a, b = _records(one), _records(two)
    assert len(a) == len(b) == 5
    wa = sdflow.load(one / "model_ema.safetensors").state_dict()
    wb = sdflow.load(two / "model_ema.safetensors").state_dict()
    worst = max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa
                if wa[k].is_floating_point())
    assert worst < 1e-3, worst


def test_degradation_blur_auto_is_fitted_before_step_zero_and_recorded(shared, tmp_path):
    """loss.degradation_blur: auto — the trainer fits sigma to the training folders before
    step 0, trains with it, and records it (config.json, a 'fitted' metrics record, the
    exported model's training config); a resume fits the same value."""
    run = tmp_path / "run"
    cfg = load_config("smoke", None, _overrides(shared, run, **{
        "run.iterations": 2, "loss.degradation_blur": "auto"}))
    out = Trainer(cfg).fit()
    sigma = json.loads((run / "config.json").read_text())["loss"]["degradation_blur"]
    assert isinstance(sigma, float) and 1.0 < sigma < 2.5  # RealSR's LR is blurrier
    fitted = _records(run, "fitted")
    assert len(fitted) == 1 and fitted[0]["sigma"] == sigma
    assert fitted[0]["real_blur"] > fitted[0]["bicubic_blur"]
    assert len(_records(run)) == 2
    recorded = sdflow.load(out).checkpoint_info.extra["train_config"]["loss"]
    assert recorded["degradation_blur"] == sigma
    again = load_config("smoke", None, _overrides(shared, run, **{
        "run.iterations": 3, "loss.degradation_blur": "auto"}))
    trainer = Trainer(again)
    assert again.loss.degradation_blur == sigma
    trainer.fit(resume="auto")
    assert len(_records(run)) == 3 and len(_records(run, "fitted")) == 1


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_a_diverging_run_under_torchrun_ends_on_every_rank(shared, tmp_path):
    """lr_g = 1 with 2 gloo processes: the ranks roll back together and, after
    run.max_rollbacks, all stop with the one-line divergence error (exit 1), in bounded time,
    nothing exported (issue 24, item 1: 'all ranks agree to stop')."""
    run = tmp_path / "div"
    args = ["--preset", "smoke"] + [a for o in _overrides(shared, run, **{
        "run.iterations": 60, "optim.lr_g": 1.0, "run.max_rollbacks": 2,
        "data.batch_size": 1, "data.init_batch": 4, "run.threads": 1}) for a in ("--set", o)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", "-m", "sdflow", "train", *args],
                         cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode != 0
    lines = [x for x in res.stderr.splitlines() if "diverged at iteration" in x]
    assert len(lines) >= 1 and "2 rollback(s)" in lines[0], res.stderr[-3000:]
    assert "Traceback" not in res.stderr.split("diverged at iteration")[0][-2000:]
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr_scale"] for r in records if r["type"] == "rollback"] == [0.5, 0.25]
    assert records[-1]["type"] == "diverged"
    assert not (run / "model_ema.safetensors").exists()


def test_building_a_trainer_leaves_the_process_random_state_alone(shared, tmp_path):
    """The networks are initialised from run.seed whatever the caller's random state, and
    the caller's state is the same after the constructor as before it."""
    cfg = load_config("smoke", None, _overrides(shared, tmp_path / "run"))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = Trainer(cfg)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(456)  # another caller state: the same networks
    second = Trainer(cfg)
    for (name, a), b in zip(first.generator.state_dict().items(),
                            second.generator.state_dict().values(), strict=True):
        assert torch.equal(a, b), name

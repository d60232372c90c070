"""Training in legs: ``--init-from`` an exported model, and the compute record that adds up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import sdflow
from sdflow.cli import main
from sdflow.training.config import load_config
from sdflow.training.trainer import Trainer


def _overrides(shared: Path, out: Path, **extra) -> list[str]:
    data = shared / "data/RealSR_x4"
    base = {"data.lr_dirs": [str(data / "train/LR")], "data.hr_dirs": [str(data / "train/HR")],
            "data.val_dir": None, "run.out_dir": str(out), "run.log_every": 1,
            "run.threads": 1, **extra}
    return [f"{k}={json.dumps(v)}" for k, v in base.items()]


@pytest.fixture(scope="module")
def first_leg(shared, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("leg1")
    cfg = load_config("smoke", None, _overrides(shared, run, **{"run.iterations": 3}))
    return Trainer(cfg).fit()


def test_first_leg_records_its_compute(first_leg):
    compute = sdflow.load(first_leg).checkpoint_info.extra["compute"]
    assert len(compute["legs"]) == 1
    leg = compute["legs"][0]
    assert leg["iterations"] == 3 and leg["device"] == "cpu" and leg["processes"] == 1
    assert leg["threads_per_process"] == 1 and leg["init_from"] is None
    assert 0 < leg["hours"] < 1 and leg["cpu_hours"] == pytest.approx(leg["hours"], abs=1e-4)
    assert compute["total_iterations"] == 3


def test_init_from_starts_at_the_exported_weights_and_adds_a_leg(shared, tmp_path, first_leg,
                                                                 capsys):
    source = sdflow.load(first_leg)
    # a learning rate of 0: the second leg's export must be exactly the first leg's weights
    cfg = load_config("smoke", None, _overrides(shared, tmp_path, **{
        "run.iterations": 2, "optim.lr_g": 0.0, "run.init_from": str(first_leg)}))
    out = Trainer(cfg).fit()
    model = sdflow.load(out)
    for (name, a), b in zip(source.state_dict().items(), model.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(a, b, msg=name)
    compute = model.checkpoint_info.extra["compute"]
    assert [leg["iterations"] for leg in compute["legs"]] == [3, 2]
    assert compute["total_iterations"] == 5
    # the first leg's file by its name, not its local path (sdflow.provenance)
    assert compute["legs"][1]["init_from"]["model"] == first_leg.name
    assert len(compute["legs"][1]["init_from"]["sha256"]) == 64
    assert compute["total_cpu_hours"] == pytest.approx(
        sum(leg["cpu_hours"] for leg in compute["legs"]), abs=1e-3)
    assert main(["info", str(out)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("compute")]
    assert line and "2 leg(s), 5 iterations" in line[0] and "CPU-hours" in line[0]


def test_init_from_a_model_of_another_architecture_is_one_clear_error(
        shared, tmp_path, first_leg, capsys):
    args = ["train", "--preset", "smoke", "--out", str(tmp_path), "--init-from", str(first_leg),
            "--set", "model.overrides.hr_steps=3", "--set", "run.iterations=1",
            *sum((["--set", o] for o in _overrides(shared, tmp_path)[:3]), [])]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run.init_from" in err[0] and "hr_steps" in err[0]
    assert main(["train", "--preset", "smoke", "--init-from", str(first_leg),
                 "--resume", "auto", "--out", str(tmp_path)]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert main(["train", "--preset", "smoke", "--out", str(tmp_path), "--init-from",
                 str(tmp_path / "missing.safetensors"),
                 *sum((["--set", o] for o in _overrides(shared, tmp_path)[:3]), [])]) == 1
    assert "no such checkpoint" in capsys.readouterr().err


def test_stop_at_keeps_the_schedule_of_the_planned_run(shared, tmp_path):
    """run.stop_at=3 of a 6-iteration plan: the first 3 steps are those of the full run
    (same learning rates and losses) and the export is iteration 3."""
    full = tmp_path / "full"
    part = tmp_path / "part"
    # a halving at 40 % of the plan: iteration 2.4 of 6 (1.2 if the plan were cut to 3)
    common = {"run.iterations": 6, "optim.milestones": [0.4], "loss.n_pre": 100}
    Trainer(load_config("smoke", None, _overrides(shared, full, **common))).fit()
    out = Trainer(load_config("smoke", None, _overrides(shared, part, **common,
                                                        **{"run.stop_at": 3}))).fit()

    def train_records(run):
        return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                if r["type"] == "train"]

    a, b = train_records(full)[:3], train_records(part)
    assert len(b) == 3
    assert [r["lr_g"] for r in a] == [r["lr_g"] for r in b]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert sdflow.load(out).checkpoint_info.extra["iterations"] == 3

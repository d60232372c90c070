"""``sdflow train`` from any folder: presets are recipes without data paths, the data
folders are required options, validation is optional."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sdflow.training.config import PRESETS, load_config, preset_dict

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_hold_no_paths_of_any_machine(preset):
    cfg = load_config(preset)
    assert cfg.data.lr_dirs == [] and cfg.data.hr_dirs == [] and cfg.data.val_dir is None
    assert cfg.run.weights_dir is None
    assert "shared" not in str(preset_dict(preset).get("data", {}))


def test_train_without_data_folders_says_which_options_are_required(tmp_path, capsys):
    from sdflow.cli import main

    assert main(["train", "--preset", "smoke", "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--lr-dir and --hr-dir required" in err[0] and "e.g. sdflow train" in err[0]
    assert not (tmp_path / "run").exists()


def test_train_runs_from_any_folder_and_ignores_a_shared_folder_beside_it(shared, tmp_path):
    """A folder with ``../shared`` beside it (as the repository has) must not leak data in:
    only the folders given are used, and a missing one is named with the current folder."""
    data = shared / "data/RealSR_x4/train"
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(shared)
    run = subprocess.run(
        [sys.executable, "-m", "sdflow", "train", "--preset", "smoke", "--lr-dir",
         str(data / "LR"), "--hr-dir", str(data / "HR"), "-o", "run", "--iterations", "2",
         "--set", "loss.n_pre=1", "--set", "run.checkpoint_every=2"],
        cwd=work, env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (work / "run" / "model_ema.safetensors").is_file()
    assert "/shared/data/RealSR_x4/train/LR" in run.stdout  # the folder given, absolute
    assert '"val"' not in (work / "run" / "metrics.jsonl").read_text()  # no val_dir: none

    missing = subprocess.run(
        [sys.executable, "-m", "sdflow", "train", "--preset", "smoke", "--lr-dir", "nope",
         "--hr-dir", str(data / "HR"), "-o", "run2", "--iterations", "1"],
        cwd=work, env=_env(), capture_output=True, text=True, timeout=300)
    assert missing.returncode != 0
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in missing.stderr
    assert "nope: image folder not found" in lines[0] and str(work) in lines[0]


def test_train_on_a_missing_device_or_an_unwritable_run_folder_is_one_line(shared, tmp_path,
                                                                          capsys):
    from sdflow.cli import main

    data = shared / "data/RealSR_x4/train"
    common = ["train", "--preset", "smoke", "--lr-dir", str(data / "LR"), "--hr-dir",
              str(data / "HR"), "--iterations", "1"]
    if not torch.cuda.is_available():
        assert main([*common, "-o", str(tmp_path / "a"), "--device", "cuda"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--device cuda: no CUDA device" in err[0]
        assert "--device cpu" in err[0]  # the same one-line rule as sr, downscale, eval
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main([*common, "-o", str(blocker / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(blocker) in err[-1] and "Traceback" not in err[-1]


def test_tensorboard_logs_what_metrics_jsonl_records(shared, tmp_path, capsys):
    """--tensorboard writes the train scalars (and validation) next to metrics.jsonl, which
    stays the record (issue 21, item 7)."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from sdflow.cli import main

    data = shared / "data/RealSR_x4/train"
    run = tmp_path / "run"
    assert main(["train", "--preset", "smoke", "--lr-dir", str(data / "LR"), "--hr-dir",
                 str(data / "HR"), "--iterations", "4", "-o", str(run), "--tensorboard",
                 "--set", "run.log_every=1", "--set", "run.threads=1"]) == 0
    capsys.readouterr()
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [0, 1, 2, 3]
    jsonl = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    recorded = [r["loss"] for r in jsonl if r["type"] == "train"]
    assert [e.value for e in losses] == pytest.approx(recorded, rel=1e-6)


class _Terminal:
    """A stdout that says it is a terminal and keeps what was written."""

    def __init__(self):
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_train_shows_the_progress_bar_on_a_terminal_and_lines_elsewhere(
        shared, tmp_path, monkeypatch, capsys):
    """On a terminal, train draws the tqdm bar the other commands draw (iterations, rate,
    the loss in its postfix); in a pipe or log file one line per log_every (issue 21)."""
    from sdflow.cli import main

    data = shared / "data/RealSR_x4/train"
    args = ["train", "--preset", "smoke", "--lr-dir", str(data / "LR"), "--hr-dir",
            str(data / "HR"), "--iterations", "3", "--set", "run.log_every=1",
            "--set", "run.threads=1"]
    term = _Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    assert main(args + ["-o", str(tmp_path / "tty")]) == 0
    monkeypatch.undo()
    assert "/3 [" in term.text and "it/s" in term.text and "loss=" in term.text  # tqdm
    assert "\nit 1/3" not in term.text  # no plain progress lines under the bar
    assert "model (EMA weights):" in term.text  # messages still get through
    capsys.readouterr()
    assert main(args + ["-o", str(tmp_path / "pipe")]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("it ")] == \
        ["1/3", "2/3", "3/3"]

"""Every reachable error about checkpoints, configs, --resume and pretrained weights is one
line on stderr (``sdflow <cmd>: error: <file or key>: <what>; <fix>``), a non-zero exit
code and no traceback."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _evaldata import make_pairs
from safetensors.torch import save_file

import sdflow
from sdflow.checkpoint import CheckpointInfo, parameter_count, read_info
from sdflow.cli import main
from sdflow.config import ConfigError
from sdflow.errors import CheckpointError
from sdflow.models import ARCHITECTURES, SDFlow, SDFlowConfig
from sdflow.official import OFFICIAL_FILES
from sdflow.training.config import load_config
from sdflow.training.trainer import Trainer
from sdflow.weights import WEIGHT_FILES

#: A few-thousand-parameter SDFlow: builds and saves in milliseconds.


@pytest.fixture(autouse=True, scope="module")
def _keep_threads():
    """The trainer sets torch's thread count (run.threads); later tests must not inherit
    it (a different count changes float reduction order in the resume test)."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def one_line(capsys, code: int, *needles: str) -> str:
    """The single stderr line of a failed command, checked for ``needles``."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code != 0, err
    assert "Traceback" not in err and len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> tuple[Path, dict, dict[str, torch.Tensor]]:
    """A valid tiny checkpoint, its metadata record and its tensors (to forge variants)."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    model = SDFlow(SDFlowConfig.preset("tiny"), seed=0)
    sdflow.save(model, path)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    return path, json.loads(read_info(path).to_json()), tensors


def forge(tmp_path: Path, tensors, meta: dict | str, name: str = "forged") -> Path:
    path = tmp_path / f"{name}.safetensors"
    text = meta if isinstance(meta, str) else json.dumps(meta)
    save_file(tensors, path, metadata={"sdflow": text})
    return path


# ---------------------------------------------------------------- checkpoint metadata
def test_unknown_top_level_fields_are_kept_and_noted_once(tiny_ckpt, tmp_path, capsys,
                                                          caplog):
    _, meta, tensors = tiny_ckpt
    path = forge(tmp_path, tensors, {**meta, "signature": "abc", "sdflow_version": "9.0.0"})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sdflow.checkpoint"):
        info = read_info(path)
        assert info.unknown_fields == {"signature": "abc"}
        assert json.loads(info.to_json())["signature"] == "abc"  # written back unchanged
        assert CheckpointInfo.from_json(info.to_json()) == info
        assert main(["info", str(path)]) == 0
        image = tmp_path / "in.png"
        from PIL import Image

        Image.new("RGB", (16, 16)).save(image)
        code = main(["sr", str(image), "--model", str(path), "-o", str(tmp_path / "o"),
                     "--dry-run"])
    assert code == 0 and "Traceback" not in capsys.readouterr().err
    notes = [r.getMessage() for r in caplog.records if "signature" in r.getMessage()]
    assert len(notes) == 1 and "written by sdflow 9.0.0" in notes[0], notes
    assert sdflow.load(path).checkpoint_info.unknown_fields == {"signature": "abc"}


def test_the_note_is_one_line_on_real_stderr(tiny_ckpt, tmp_path):
    _, meta, tensors = tiny_ckpt
    path = forge(tmp_path, tensors, {**meta, "signature": "abc", "sdflow_version": "9.0.0"})
    env = {**os.environ, "PYTHONPATH": str(Path(sdflow.__file__).parents[1])}
    res = subprocess.run([sys.executable, "-m", "sdflow", "info", str(path)], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0 and "architecture    sdflow" in res.stdout
    assert res.stderr.strip().splitlines() == [
        f"{path}: note: ignoring metadata field(s) signature unknown to this version "
        f"(written by sdflow 9.0.0; this is sdflow {sdflow.__version__})"]


@pytest.mark.parametrize("version, fix", [("9.1.0", "upgrade sdflow"),
                                          ("0.0.1", "edited or is corrupt")])
def test_unknown_model_config_field_is_refused_with_the_writing_version(
        tiny_ckpt, tmp_path, capsys, version, fix):
    _, meta, tensors = tiny_ckpt
    path = forge(tmp_path, tensors, {**meta, "sdflow_version": version,
                                     "config": {**meta["config"], "attention": True}})
    for command in (["info", str(path)],
                    ["sr", str(path), "--model", str(path), "-o", str(tmp_path / "o")]):
        one_line(capsys, main(command), str(path), "attention",
                 f"written by sdflow {version}; this is sdflow {sdflow.__version__}", fix)


@pytest.mark.parametrize("meta, needle", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"format": "sdflow.checkpoint", "format_version": 1}', "lacks the field(s) architecture"),
    ("scale", "metadata field scale is '4', not an integer"),
    ("config", "config.hr_steps: must be <= 64, got 100000"),
    ("kind", "config.mixture_mode: expected a string, got 3"),
    ("mode", "config.mixture_mode: must be one of"),
    ("mismatch", "metadata says scale 2 but its config says 4"),
])
def test_malformed_metadata_is_one_line(tiny_ckpt, tmp_path, capsys, meta, needle):
    _, good, tensors = tiny_ckpt
    forged = {"scale": {**good, "scale": "4"},
              "config": {**good, "config": {**good["config"], "hr_steps": 100000}},
              "kind": {**good, "config": {**good["config"], "mixture_mode": 3}},
              "mode": {**good, "config": {**good["config"], "mixture_mode": "pixel"}},
              "mismatch": {**good, "scale": 2}}.get(meta, meta)
    path = forge(tmp_path, tensors, forged)
    one_line(capsys, main(["info", str(path)]), str(path), needle)
    with pytest.raises(CheckpointError, match="; "):
        sdflow.load(path)


def test_truncated_checkpoint_is_one_line(tiny_ckpt, tmp_path, capsys):
    path, _, _ = tiny_ckpt
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    one_line(capsys, main(["info", str(cut)]), str(cut), "not a readable safetensors file",
             "export it again")


def test_info_reads_the_header_without_building_the_model(tiny_ckpt, capsys, monkeypatch):
    """Only a ``meta``-device build is allowed (no memory, no weights): it tells the
    parameter count which tensors are buffers."""
    path, _, _ = tiny_ckpt
    build = type(ARCHITECTURES["sdflow"]).build

    def meta_only(self, config):
        if torch.empty(0).device.type != "meta":
            pytest.fail("info built the model in memory")
        return build(self, config)

    monkeypatch.setattr(type(ARCHITECTURES["sdflow"]), "build", meta_only)
    assert main(["info", str(path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["parameters"] == SDFlow(SDFlowConfig.preset("tiny")).num_parameters()
    assert set(record) == {"path", "sha256", "architecture", "label", "parameters", "scale",
                           "sdflow_version", "trained_on", "notes", "created", "compute",
                           "config"}


@pytest.mark.parametrize("name", ["sdflow-lite-realsr-x4", "da-iccv21-realsr-x4"])
def test_header_parameter_count_is_the_models(name):
    from sdflow.registry import resolve

    path = resolve(name).path
    assert parameter_count(path) == sdflow.load(name).num_parameters()


def test_weights_that_do_not_fit_the_metadata_are_one_line(tiny_ckpt, tmp_path, capsys):
    _, meta, tensors = tiny_ckpt
    path = forge(tmp_path, tensors, {**meta, "config": {**meta["config"], "hr_steps": 3}})
    image = tmp_path / "in.png"
    from PIL import Image

    Image.new("RGB", (16, 16)).save(image)
    one_line(capsys, main(["sr", str(image), "--model", str(path), "-o", str(tmp_path / "o")]),
             str(path), "do not match", "missing")


# ---------------------------------------------------------------- training config
def test_yaml_syntax_error_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  batch_size: 2\n   lr_crop: [1\n")
    one_line(capsys, main(["train", "--preset", "smoke", "--config", str(bad),
                           "--print-config"]), str(bad), "line 3", "not valid YAML")
    one_line(capsys, main(["train", "--preset", "smoke", "--config", str(tmp_path / "no.yaml"),
                           "--print-config"]), "no.yaml", "no such config file")
    one_line(capsys, main(["train", "--preset", "smoke", "--set", "data.lr_crop=[1",
                           "--print-config"]), "data.lr_crop", "not valid YAML")


@pytest.mark.parametrize("override, needle", [
    ("data.batch_size=0", "data.batch_size: must be >= 1"),
    ("run.iterations=-5", "run.iterations: must be >= 1"),
])
def test_out_of_range_settings_are_one_line(capsys, override, needle):
    one_line(capsys, main(["train", "--preset", "smoke", "--set", override,
                           "--print-config"]), needle)


@pytest.mark.parametrize("preset, override, key", [
    ("smoke", "data.lr_crop=4", "data.lr_crop"),
    ("smoke", "data.lr_crop=9", "data.lr_crop"),
    ("smoke", "data.init_batch=0", "data.init_batch"),
    ("smoke", "data.workers=-1", "data.workers"),
    ("smoke", "data.val_lr_crop=2", "data.val_lr_crop"),
    ("smoke", "optim.lr_g=-1e-4", "optim.lr_g"),
    ("smoke", "optim.betas=[0.9, 1.5]", "optim.betas"),
    ("smoke", "optim.milestones=[0.5, 2]", "optim.milestones"),
    ("smoke", "optim.gamma=0", "optim.gamma"),
    ("smoke", "optim.ema_decay=1.5", "optim.ema_decay"),
    ("smoke", "optim.grad_clip=-1", "optim.grad_clip"),
    ("smoke", "run.checkpoint_every=0", "run.checkpoint_every"),
    ("smoke", "run.log_every=0", "run.log_every"),
    ("smoke", "run.keep_checkpoints=0", "run.keep_checkpoints"),
    ("smoke", "run.rollback_lr_factor=0", "run.rollback_lr_factor"),
    ("smoke", "run.time_limit_minutes=-1", "run.time_limit_minutes"),
    ("smoke", "run.stop_at=0", "run.stop_at"),
    ("smoke", "run.device=gpu", "run.device"),
    ("smoke", "loss.perceptual=-0.5", "loss.perceptual"),
    ("smoke", "loss.tau_train=-1", "loss.tau_train"),
    ("smoke", "loss.n_pre=-1", "loss.n_pre"),
    ("smoke", "loss.blur_size=4", "loss.blur_size"),
    ("smoke", "loss.disc_base=0", "loss.disc_base"),
    ("smoke", "loss.hr_disc_down=12", "loss.hr_disc_down"),
    ("smoke", "loss.perceptual_layers=[relu9_9]", "loss.perceptual_layers"),
    ("smoke", "model.overrides.hr_steps=0", "model.overrides.hr_steps"),
    ("smoke", "model.overrides.hr_steps=100000", "model.overrides.hr_steps"),
    ("smoke", "model.overrides.scale=3", "model.overrides.scale"),
    ("smoke", "model.overrides.coupling_hidden=wide", "model.overrides.coupling_hidden"),
    ("smoke", "model.overrides.bogus=1", "unknown key(s) in model.overrides: bogus"),
    ("smoke", "model.preset=huge", "model.preset"),
    ("smoke", "model.init=zeros", "model.init"),
    ("da_smoke", "loss.cyc=-1", "loss.cyc"),
    ("da_smoke", "loss.feature_disc_down=-1", "loss.feature_disc_down"),
    ("da_smoke", "model.overrides.sr_blocks=1000", "model.overrides.sr_blocks"),
])
def test_range_checks_name_the_key(preset, override, key):
    with pytest.raises(ConfigError) as info:
        load_config(preset, None, [override])
    assert str(info.value).startswith(key), str(info.value)


def test_every_preset_is_in_range():
    from sdflow.training.config import PRESETS

    for preset in PRESETS:
        load_config(preset)


# ---------------------------------------------------------------- --resume
@pytest.fixture(scope="module")
def small_run(shared, tmp_path_factory) -> tuple[list[str], Path]:
    """``--set`` options of a 1-iteration smoke run on two small images, and its run dir."""
    root = tmp_path_factory.mktemp("resume")
    data = make_pairs(shared, root / "data")
    opts = [f"data.lr_dirs={json.dumps([str(data / 'LR')])}",
            f"data.hr_dirs={json.dumps([str(data / 'HR')])}", "data.val_dir=null",
            "run.iterations=1", "run.threads=1", f"run.out_dir={json.dumps(str(root / 'run'))}"]
    Trainer(load_config("smoke", None, opts)).fit()
    return opts, root / "run"


def _train(opts: list[str], *extra: str) -> int:
    return main(["train", "--preset", "smoke", *sum((["--set", o] for o in opts), []), *extra])


def test_resume_from_an_exported_model_says_init_from(small_run, capsys):
    opts, run = small_run
    model = run / "model_ema.safetensors"
    one_line(capsys, _train(opts, "--resume", str(model)), str(model), "exported model",
             "--init-from")


def test_resume_a_checkpoint_of_another_model_names_the_setting(small_run, tmp_path, capsys):
    opts, run = small_run
    ckpt = run / "checkpoints" / "step_00000001.pt"
    config_before = (run / "config.json").read_text()
    one_line(capsys, _train(opts, "--resume", str(ckpt), "--set", "model.overrides.hr_steps=3"),
             str(ckpt), "another model", "model.overrides.hr_steps", "--init-from")
    assert (run / "config.json").read_text() == config_before  # the run was not touched


def test_resume_of_a_pickle_with_code_is_refused_without_weights_only_advice(
        small_run, tmp_path, capsys):
    opts, _ = small_run
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pt"
    torch.save({"iteration": 1, "payload": Evil()}, evil)
    line = one_line(capsys, _train(opts, "--resume", str(evil)), str(evil), "refused")
    assert "weights_only" not in line and not marker.exists()
    with pytest.raises(CheckpointError) as info:
        from sdflow.training.state import load_training_state

        load_training_state(evil)
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_resume_of_a_truncated_checkpoint_is_one_line(small_run, tmp_path, capsys):
    opts, run = small_run
    ckpt = run / "checkpoints" / "step_00000001.pt"
    cut = tmp_path / "cut.pt"
    cut.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    one_line(capsys, _train(opts, "--resume", str(cut)), str(cut), "truncated or corrupt")


# ---------------------------------------------------------------- pretrained weights
@pytest.fixture(scope="module")
def eval_data(shared, tmp_path_factory) -> Path:
    return make_pairs(shared, tmp_path_factory.mktemp("evaldata"))


@pytest.mark.parametrize("net, role", [("alex", "lpips_alex"), ("alex", "alexnet"),
                                       ("vgg", "vgg16"), ("vgg", "lpips_vgg")])
def test_truncated_weight_file_is_one_line_naming_it(shared, eval_data, tmp_path, capsys,
                                                     net, role):
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in WEIGHT_FILES.values():
        (weights / name).symlink_to(shared / "weights" / name)
    broken = weights / WEIGHT_FILES[role]
    data = (shared / "weights" / WEIGHT_FILES[role]).read_bytes()
    broken.unlink()
    broken.write_bytes(data[: len(data) // 2])
    code = main(["eval", "bicubic", "--data", str(eval_data), "--lpips", net, "--weights",
                 str(weights), "--out", str(tmp_path / "o"), "--quiet", "--limit", "1"])
    one_line(capsys, code, str(broken), "replace it", WEIGHT_FILES[role])


def test_weight_file_of_another_network_is_one_line(shared, eval_data, tmp_path, capsys):
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in WEIGHT_FILES.values():
        (weights / name).symlink_to(shared / "weights" / name)
    wrong = weights / WEIGHT_FILES["lpips_alex"]
    wrong.unlink()
    wrong.symlink_to(shared / "weights" / WEIGHT_FILES["lpips_vgg"])
    code = main(["eval", "bicubic", "--data", str(eval_data), "--weights", str(weights),
                 "--out", str(tmp_path / "o"), "--quiet", "--limit", "1"])
    one_line(capsys, code, str(wrong), "not the weights of this network", "replace it")


def test_missing_weight_file_is_one_line(eval_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SDFLOW_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code = main(["eval", "bicubic", "--data", str(eval_data), "--weights", str(tmp_path),
                 "--out", str(tmp_path / "o"), "--quiet"])
    one_line(capsys, code, WEIGHT_FILES["alexnet"], "SDFLOW_WEIGHTS")


# ---------------------------------------------------------------- convert
def test_convert_records_file_names_and_digests_not_the_path(shared, tmp_path, monkeypatch):
    import sdflow.cli.convert as convert

    parity = shared / "fixtures/official_parity"
    # the provenance logic is under test, not the conversion (tests/test_parity.py): a tiny
    # model stands in for the 14 M-parameter one
    monkeypatch.setattr(convert, "load_official", lambda directory, mixture_mode:
                        SDFlow(SDFlowConfig.preset("tiny"), seed=0))
    out = tmp_path / "converted.safetensors"
    assert main(["convert", "--official", str(parity), "--out", str(out)]) == 0
    info = read_info(out)
    assert str(parity) not in info.to_json() and "/" not in info.notes
    assert info.extra["converted_from"] == [
        {"file": name, "sha256": hashlib.sha256((parity / name).read_bytes()).hexdigest()}
        for name in OFFICIAL_FILES]


def test_convert_refuses_a_pickle_with_code_in_one_line(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    torch.save({"x": Evil()}, tmp_path / "lrencoder.pth")
    code = main(["convert", "--official", str(tmp_path), "--out", str(tmp_path / "o.st")])
    line = one_line(capsys, code, "lrencoder.pth", "refused")
    assert "weights_only" not in line and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("argv", [
    ["sr", "photo.png", "-o", "out"],
    ["downscale", "photo.png", "-o", "out"],
    ["make-pairs", "photo.png", "-o", "out"],
    ["eval", "sr", "--data", "d"],
    ["eval", "ds", "--data", "d"],
])
@pytest.mark.parametrize("threads", ["-1", "0", "two"])
def test_a_bad_thread_count_is_a_usage_line(argv, threads, capsys):
    """--threads -1 reached torch.set_num_threads and ended in a RuntimeError traceback."""
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--threads", threads])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --threads: expected an integer >= 1" in err and "Traceback" not in err


# ---------------------------------------------------------------- run folders (issue 24)
def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file()}


def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(small_run, capsys):
    """Retyping the train command after a crash without --resume must not clobber the run
    (config, metrics, checkpoints, model all kept byte for byte)."""
    opts, run = small_run
    before = _snapshot(run)
    one_line(capsys, _train(opts), str(run), "holds a run", "--resume auto", "--overwrite")
    assert _snapshot(run) == before
    one_line(capsys, _train(opts, "--resume", "auto", "--overwrite"), "give one of them")
    assert _snapshot(run) == before


def test_a_bad_init_from_writes_nothing_into_a_new_run_folder(small_run, tmp_path, capsys):
    opts, _ = small_run
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    fresh = tmp_path / "fresh"
    code = _train(opts, "--set", f"run.out_dir={json.dumps(str(fresh))}", "--init-from",
                  str(empty))
    one_line(capsys, code, str(empty))
    assert not fresh.exists()


def test_overwrite_starts_a_clean_run(small_run, tmp_path, capsys):
    opts, run = small_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "checkpoints" / "step_00000999.pt").write_bytes(b"an old run's checkpoint")
    (copy / "metrics.jsonl").write_text('{"type": "train", "iteration": 998}\n')
    assert _train(opts, "--set", f"run.out_dir={json.dumps(str(copy))}", "--overwrite") == 0
    capsys.readouterr()
    assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == \
        ["step_00000000.pt", "step_00000001.pt"]
    iterations = [json.loads(line)["iteration"] for line in
                  (copy / "metrics.jsonl").read_text().splitlines()]
    assert 998 not in iterations


# ---------------------------------------------------------------- divergence (issue 24)
def test_a_diverging_run_ends_in_one_line_with_compounding_cuts(small_run, tmp_path, capsys):
    """lr_g = 1 blows up at once: each rollback halves the learning rate again and replays
    other batches; after run.max_rollbacks the run stops (exit 1, one line naming the
    iteration, what was tried and what to change) and exports nothing."""
    opts, _ = small_run
    run = tmp_path / "div"
    code = _train(opts, "--set", f"run.out_dir={json.dumps(str(run))}", "--set",
                  "run.iterations=60", "--set", "optim.lr_g=1", "--set", "run.max_rollbacks=3",
                  "--set", "run.log_every=1")
    line = one_line(capsys, code, "diverged at iteration", "3 rollback(s)", "optim.lr_g",
                    "last healthy checkpoint")
    assert code == 1 and "step_00000000.pt" in line
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rollbacks = [r for r in records if r["type"] == "rollback"]
    assert [r["lr_scale"] for r in rollbacks] == [0.5, 0.25, 0.125]
    assert records[-1]["type"] == "diverged"
    # the replays saw other batches: the first replayed step's loss differs each time
    first = [r["loss"] for r in records if r["type"] == "train" and r["iteration"] == 0]
    assert len(first) == len(rollbacks) + 1 and len(set(first)) == len(first)
    assert not (run / "model_ema.safetensors").exists()


def test_health_rejects_a_loss_far_above_the_run_history():
    from sdflow.training.trainer import losses_look_healthy

    rng = np.random.default_rng(0)
    steady = list(1.0 + 0.05 * rng.standard_normal(60))
    assert losses_look_healthy(steady)
    assert losses_look_healthy(steady[:4] + [1e13] * 3)  # too little history to judge
    assert not losses_look_healthy(steady + [1e13] * 10)  # exploded but finite
    assert losses_look_healthy(steady + [0.2] * 10)  # a falling loss is fine
    assert losses_look_healthy(steady + [1.5] * 10)  # a GAN phase starting: a modest rise
    negative = [-3.0 + 0.02 * v for v in rng.standard_normal(60)]  # NLL-type losses
    assert losses_look_healthy(negative) and not losses_look_healthy(negative + [50.0] * 10)


# ---------------------------------------------------------------- Ctrl-C (issue 24)
def test_ctrl_c_in_training_saves_a_checkpoint_and_says_how_to_continue(small_run, tmp_path,
                                                                      capsys, monkeypatch):
    """The first SIGINT stops the loop at the next step boundary with a checkpoint; the CLI
    prints one line and exits 130; --resume auto continues from there."""
    import signal

    opts, _ = small_run
    run = tmp_path / "int"
    real_step = Trainer._step

    def step(self, *args):
        if self.iteration == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as if Ctrl-C came during step 3
        return real_step(self, *args)

    monkeypatch.setattr(Trainer, "_step", step)
    code = _train(opts, "--set", f"run.out_dir={json.dumps(str(run))}", "--set",
                  "run.iterations=8", "--set", "run.checkpoint_every=100")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and "Traceback" not in "\n".join(err)
    assert "interrupted at iteration 4; checkpoint saved; continue with --resume auto" in err[-1]
    assert (run / "checkpoints" / "step_00000004.pt").is_file()
    monkeypatch.setattr(Trainer, "_step", real_step)
    assert _train(opts, "--set", f"run.out_dir={json.dumps(str(run))}", "--set",
                  "run.iterations=8", "--set", "run.checkpoint_every=100",
                  "--resume", "auto") == 0
    assert "resumed at iteration 4" in capsys.readouterr().out


def test_ctrl_c_in_a_batch_is_one_line_and_leaves_no_half_set(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from sdflow.inference import batch
    from sdflow.models import DAICCV21, DAICCV21Config

    ckpt = tmp_path / "da.safetensors"
    sdflow.save(DAICCV21(DAICCV21Config.preset("tiny")), ckpt)
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(np.full((8, 8, 3), 40, np.uint8)).save(src / f"{name}.png")
    real = batch.process
    calls = []

    def process(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "process", process)
    code = main(["sr", str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and len(err) == 1
    assert "interrupted: 1 done, 0 skipped, 0 failed, 2 left; rerun the same command" in err[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_sr.png"]
    monkeypatch.setattr(batch, "process", real)
    assert main(["sr", str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt)]) == 0
    assert "1 skipped" in capsys.readouterr().err


def test_tiny_tiles_and_wrong_dtypes_are_refused(tiny_ckpt, tmp_path, capsys):
    """--tile 1 ran ~300x slower without a word; a float16 tensor in a float32 checkpoint
    loaded silently and gave pictures 21 dB off (issue 24, item 11)."""
    from PIL import Image

    path, meta, tensors = tiny_ckpt
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    one_line(capsys, main(["sr", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
                           "--model", str(path), "--tile", "1"]),
             "--tile must be 0 (untiled) or at least 16")
    key = next(k for k, v in tensors.items() if v.is_floating_point())
    bad = forge(tmp_path, {**tensors, key: tensors[key].half()}, meta, "half")
    with pytest.raises(CheckpointError, match=f"other dtype .e.g. {key} torch.float16"):
        sdflow.load(bad)


def test_messages_say_what_the_program_does(shared, tmp_path, capsys, monkeypatch):
    """README truths (issue 24, item 12): eval without LPIPS weights names --lpips none;
    bf16 on the default (da-iccv21) model says which models it applies to."""
    from PIL import Image

    for var in ("HOME", "XDG_CACHE_HOME"):  # no weights in any cache of this machine
        monkeypatch.setenv(var, str(tmp_path / "home"))
    monkeypatch.delenv("SDFLOW_WEIGHTS", raising=False)

    data = make_pairs(shared, tmp_path / "data")
    one_line(capsys, main(["eval", "bicubic", "--data", str(data), "--weights",
                           str(tmp_path / "none"), "--out", str(tmp_path / "e")]),
             "not found", "--lpips none")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    one_line(capsys, main(["sr", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
                           "--model", "da-iccv21-realsr-x4", "--precision", "bf16"]),
             "SDFlow's condition networks", "da-iccv21 has none")


def test_out_of_memory_in_training_names_the_batch_size(small_run, tmp_path, capsys,
                                                       monkeypatch):
    """--set data.batch_size=65536 ran into the allocator's traceback; now one line naming
    the settings to lower (issue 24, item 10)."""
    opts, _ = small_run

    def step(self, *args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 16307453952 bytes")

    monkeypatch.setattr(Trainer, "_step", step)
    code = _train(opts, "--set", f"run.out_dir={json.dumps(str(tmp_path / 'oom'))}")
    one_line(capsys, code, "out of memory at iteration 0", "data.batch_size",
             "--set data.batch_size=")

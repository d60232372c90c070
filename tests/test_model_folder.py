"""Model folders (``sdflow export --format folder``, ``sdflow.load(DIR)``) and hubconf.py."""

from __future__ import annotations

import filecmp
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import sdflow
from sdflow import registry
from sdflow.checkpoint import file_sha256, read_info, save
from sdflow.cli import main
from sdflow.errors import CheckpointError
from sdflow.export import export_folder, model_card
from sdflow.imageio import image_to_tensor, read_image
from sdflow.model_folder import (
    CARD_NAME,
    CONFIG_NAME,
    OPENMODELDB_NAME,
    WEIGHTS_NAME,
    ModelFolderError,
    is_model_folder,
    load_folder,
    verify_folder,
)

from helpers import tiny_model
from inference_helpers import one_thread

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)

REPO = Path(__file__).resolve().parents[1]
DA = "da-iccv21-realsr-x4"
LITE = "sdflow-lite-realsr-x4"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """Every registered model exported once, by name."""
    root = tmp_path_factory.mktemp("folders")
    return {name: export_folder(name, root / name).path for name in registry.available()}


@pytest.fixture(scope="module")
def lr_crop(shared) -> torch.Tensor:
    """A 32x32 crop of a real LR photo of RealSR val, in [-1, 1]."""
    image = image_to_tensor(read_image(shared / "data/RealSR_x4/val/LR/Canon_031.png").rgb)
    return image[:, :, 40:72, 40:72]


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", registry.available())
def test_export_of_a_registered_model_is_its_file_plus_a_config(exported, name):
    folder = exported[name]
    entry = registry.MODELS[name]
    assert sorted(p.name for p in folder.iterdir()) == sorted([CARD_NAME, CONFIG_NAME,
                                                               OPENMODELDB_NAME, WEIGHTS_NAME])
    assert filecmp.cmp(folder / WEIGHTS_NAME, registry.weights_dir() / entry.filename,
                       shallow=False)
    config = json.loads((folder / CONFIG_NAME).read_text())
    info = read_info(folder / WEIGHTS_NAME)
    assert config["format"] == "sdflow.model-folder" and config["format_version"] == 1
    assert config["weights"]["sha256"] == entry.sha256
    assert config["name"] == config["registered_name"] == name
    assert config["license"] == entry.license
    assert (config["architecture"], config["scale"], config["config"]) == \
        (info.architecture, info.scale, info.config)
    assert config["metadata"] == json.loads(info.to_json())
    assert "compute" in config["metadata"]["extra"] and config["metadata"]["extra"]["evidence"]
    assert config["tasks"] == {"sdflow": ["sr", "ds"], "gaussian-fit": ["ds"],
                               "da-iccv21": ["sr", "ds"]}[info.architecture]
    # Any safetensors reader takes the weights.
    assert load_file(folder / WEIGHTS_NAME).keys() == registry.load(name).state_dict().keys()
    assert is_model_folder(folder) and not is_model_folder(folder / WEIGHTS_NAME)


@pytest.mark.parametrize("name", registry.available())
def test_a_folder_loads_the_same_model(exported, lr_crop, name):
    original = registry.load(name)
    for model in (sdflow.load(exported[name]), load_folder(exported[name])):
        assert not model.training
        assert _states_equal(model, original)
        with torch.no_grad():
            assert torch.equal(model(lr_crop), original(lr_crop))  # tau 0 SR (DS: tau 0)


def test_a_saved_model_exports_and_round_trips(shared, tmp_path, lr_crop):
    model = tiny_model(shared)
    ckpt = tmp_path / "tiny.safetensors"
    save(model, ckpt, trained_on="three RealSR crops", notes="a test model",
         extra={"iterations": 7})
    folder = export_folder(ckpt, tmp_path / "from_file")
    assert folder.sha256 == file_sha256(ckpt, length=64)
    assert folder.config["name"] == "tiny" and folder.config["registered_name"] is None
    card = (folder.path / CARD_NAME).read_text()
    assert "not stated" in card and "torch.hub" not in card and "three RealSR crops" in card
    assert "7 iterations (no compute record)" in card and "sdflow downscale" in card
    loaded = sdflow.load(folder.path)
    assert _states_equal(loaded, model)
    with torch.no_grad():
        assert torch.equal(loaded.sr(lr_crop, tau=0.0), model.sr(lr_crop, tau=0.0))
    # From the module itself: saved fresh, the provenance of its checkpoint kept.
    again = export_folder(loaded, tmp_path / "from_module", name="tiny-x4", license="CC0")
    assert again.config["name"] == "tiny-x4" and again.config["license"] == "CC0"
    assert again.info.trained_on == "three RealSR crops" and again.info.notes == "a test model"
    assert _states_equal(load_folder(again.path), model)


def test_model_card_holds_architecture_numbers_and_how_to_load(exported):
    lite = (exported[LITE] / CARD_NAME).read_text()
    params = sum(p.numel() for p in registry.load(LITE).parameters())
    for text in ("# sdflow-lite-realsr-x4", "`sdflow`", "SDFlow (Sun & Chen, TPAMI 2024)",
                 f"{params:,}", "x4 super-resolution", "downscaling", "RealSR V3 x4",
                 "5 leg(s), 10000 iterations, 10.93 CPU-hours",
                 "| sdflow | 0 | 1 | 26.91 | 0.7677 | 0.3512 | 1.15 |",  # RealSR val, tau 0
                 "| sdflow | 0 | 3 | 32.86 | 0.9529 | 0.0560 |",  # downscaling, tau 0
                 "| bicubic | – | 1 | 27.00 | 0.7772 | 0.4550 | 1.18 |",
                 registry.MODELS[LITE].license, 'sdflow.load("path/to/this/folder")',
                 "--model path/to/this/folder",
                 'torch.hub.load("path/to/sdflow", "sdflow_lite_realsr_x4", source="local")',
                 'load_file("path/to/this/folder/model.safetensors")'):
        assert text in lite, text
    da = (exported[DA] / CARD_NAME).read_text()
    assert "| da-iccv21 | 0 | 1 | 27.41 | 0.7951 | 0.3717 | 0.98 |" in da
    assert "(deterministic)" in da and "sdflow downscale" in da  # G_t: it downscales
    assert "2 leg(s), 7600 iterations, 3.60 CPU-hours" in da
    # The card is a function of config.json alone.
    config = json.loads((exported[DA] / CONFIG_NAME).read_text())
    assert model_card(config) == da


@pytest.mark.parametrize("name", [DA, LITE, "gaussian-fit-realsr-x4"])
def test_the_model_cards_python_snippet_runs(exported, shared, tmp_path, monkeypatch, name):
    card = (exported[name] / CARD_NAME).read_text()
    snippet = card.split("```python\n", 1)[1].split("```", 1)[0]
    snippet = snippet.replace("path/to/this/folder", str(exported[name]))
    monkeypatch.chdir(tmp_path)
    Image.open(shared / "data/RealSR_x4/val/LR/Canon_031.png").crop((0, 0, 24, 20)).save(
        "photo.png")
    Image.open(shared / "data/RealSR_x4/val/HR/Canon_031.png").crop((0, 0, 96, 80)).save(
        "clean.png")
    exec(compile(snippet, "model card", "exec"), {})
    out, size = ("clean_lr.png", (24, 20)) if "sdflow.downscale" in snippet else \
        ("photo_sr.png", (96, 80))
    assert Image.open(out).size == size


def test_changed_weights_give_one_clear_error(exported, tmp_path, capsys):
    folder = _copy(exported[DA], tmp_path)
    with open(folder / WEIGHTS_NAME, "r+b") as f:  # one bit of the last tensor's data
        f.seek(-5, os.SEEK_END)
        byte = f.read(1)
        f.seek(-5, os.SEEK_END)
        f.write(bytes([byte[0] ^ 1]))
    recorded = registry.MODELS[DA].sha256[:8]
    with pytest.raises(ModelFolderError, match=f"sha256 .* differs from the {recorded}") as exc:
        sdflow.load(folder)
    assert "\n" not in str(exc.value)
    assert main(["info", str(folder)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sdflow info: error: ") and "sha256" in err[0]


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(scale=2), r"on scale \(config.json: 2, file: 4\)"),
    (lambda c: c["config"].update(sr_blocks=9), r"on config.sr_blocks \(config.json: 9"),
    (lambda c: c["metadata"].update(notes="other"), "on metadata.notes"),
    (lambda c: c.update(trained_on="DIV2K"), "on trained_on"),
    (lambda c: c.update(format="something.else"), "not an sdflow model folder's config"),
    (lambda c: c["weights"].update(sha256="0" * 64), "recorded in config.json"),
], ids=["scale", "config", "metadata", "trained_on", "format", "sha256"])
def test_an_edited_config_json_is_refused(exported, tmp_path, edit, message):
    folder = _copy(exported[DA], tmp_path)
    config = json.loads((folder / CONFIG_NAME).read_text())
    edit(config)
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match=message):
        verify_folder(folder)
    with pytest.raises(CheckpointError, match=message):
        sdflow.load(folder)


def test_a_non_empty_folder_is_refused_unless_overwrite(exported, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["export", DA, "--format", "folder", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sdflow export: error: ")
    assert "not empty" in err[0] and "--overwrite" in err[0]
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert main(["export", DA, "-o", str(out), "--overwrite"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "notes.txt").read_text() == "mine"
    assert verify_folder(out).config["name"] == DA
    # Over another model folder: all three files replaced.
    export_folder(exported[LITE], out, overwrite=True)
    assert verify_folder(out).config["name"] == LITE and "SDFlow" in (out / CARD_NAME).read_text()
    # An existing empty folder needs no --overwrite; nothing is left beside it.
    empty = tmp_path / "empty"
    empty.mkdir()
    export_folder(exported[DA], empty)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"]


def test_a_failed_export_leaves_nothing(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        export_folder(junk, tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["junk.safetensors"]


def test_model_dir_in_sdflow_sr(exported, tmp_path, shared):
    with Image.open(shared / "data/RealSR_x4/val/LR/Canon_031.png") as img:
        crop = np.asarray(img.convert("RGB"))[40:72, 40:72]
    Image.fromarray(crop).save(tmp_path / "crop.png")
    outputs = []
    for model in (str(exported[DA]), DA):
        out = tmp_path / f"out_{len(outputs)}"
        assert main(["sr", str(tmp_path / "crop.png"), "-o", str(out), "--model", model]) == 0
        (png,) = out.glob("*.png")
        with Image.open(png) as img:
            outputs.append(np.asarray(img))
    assert outputs[0].shape == (128, 128, 3) and np.array_equal(*outputs)


def test_folders_and_registered_names_resolve(exported, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resolved = registry.resolve(exported[DA])
    assert resolved.path == exported[DA] / WEIGHTS_NAME and resolved.entry is None
    (tmp_path / DA).mkdir()  # a plain folder named like a model does not shadow it
    assert registry.resolve(DA).entry is registry.MODELS[DA]
    (tmp_path / "plain").mkdir()
    with pytest.raises(ModelFolderError, match="without config.json"):
        registry.resolve("plain")


def _hub_kwargs() -> dict:
    params = inspect.signature(torch.hub.load).parameters
    return {"trust_repo": True} if "trust_repo" in params else {}


def test_hubconf_has_one_entry_per_registered_model():
    spec = importlib.util.spec_from_file_location("sdflow_hubconf", REPO / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    # What torch.hub.list reports: every public callable.
    entries = sorted(f for f in dir(hub) if callable(getattr(hub, f)) and not f.startswith("_"))
    assert entries == sorted(n.replace("-", "_") for n in registry.available())
    assert {"torch", "safetensors"} <= set(hub.dependencies)


def test_torch_hub_load_local():
    model = torch.hub.load(str(REPO), "da_iccv21_realsr_x4", source="local", **_hub_kwargs())
    assert not model.training and _states_equal(model, registry.load(DA))


def test_torch_hub_load_from_a_clone_without_sdflow_on_the_path(tmp_path):
    """From another folder with nothing on PYTHONPATH, hubconf imports the checkout's own
    src/ (not an installed sdflow) and leaves sys.path as it was."""
    code = (
        "import sys, torch\n"
        "before = list(sys.path)\n"
        f"m = torch.hub.load({str(REPO)!r}, 'sdflow_lite_realsr_x4', source='local'"
        f"{', trust_repo=True' if _hub_kwargs() else ''})\n"
        "import sdflow\n"
        "print(sdflow.__file__, type(m).__name__, m.training, sys.path == before)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    path, cls, training, unchanged = done.stdout.split()
    assert Path(path) == REPO / "src" / "sdflow" / "__init__.py"
    assert (cls, training, unchanged) == ("SDFlow", "False", "True")


@pytest.mark.parametrize("name", registry.available())
def test_cards_have_hub_front_matter_an_openmodeldb_record_and_no_local_paths(exported, name):
    """The Hub reads licence, library, pipeline tag, tags and model-index from the card's
    YAML header; OpenModelDB's schema sits beside it; nothing we write names a folder of
    the machine that wrote it (issue 21, item 4)."""
    import yaml

    folder = exported[name]
    card = (folder / CARD_NAME).read_text()
    assert card.startswith("---\n")
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["license"] == "mit" and header["library_name"] == "sdflow"
    assert header["pipeline_tag"] == "image-to-image" and "sdflow" in header["tags"]
    results = header["model-index"][0]["results"]
    assert header["model-index"][0]["name"] == name and results
    arch = registry.load(name).checkpoint_info.architecture
    for result in results:  # this model's rows only, on data named by what it is
        assert result["task"]["name"].split(", ")[1].startswith(arch)
        assert result["dataset"]["name"] == "RealSR_x4/val"
        assert {m["type"] for m in result["metrics"]} >= {"psnr", "ssim"}
    omdb = json.loads((folder / OPENMODELDB_NAME).read_text())
    assert omdb["name"] == name and omdb["license"] == "mit" and omdb["scale"] == 4
    assert omdb["resources"][0]["sha256"] == registry.MODELS[name].sha256
    with open(folder / WEIGHTS_NAME, "rb") as f:
        header_bytes = f.read(8 + int.from_bytes(f.read(8), "little"))
    for text in (card, (folder / CONFIG_NAME).read_text(), json.dumps(omdb),
                 header_bytes.decode("utf-8", "replace")):
        for local in ("../", "/work/", "/home/", "/tmp/", "/root/"):
            assert local not in text, (name, local)
    try:
        from huggingface_hub import ModelCard
    except ImportError:
        return
    parsed = ModelCard(card)
    assert parsed.data.license == "mit" and parsed.data.library_name == "sdflow"


def test_a_trained_model_records_no_local_paths(shared, tmp_path):
    """The trainer's export names data by what it is and the run by its name."""
    from sdflow.provenance import data_name, portable_train_config

    assert data_name("../shared/data/RealSR_x4/train/LR") == "RealSR_x4/train/LR"
    assert data_name("/home/me/photos/hr") == "photos/hr"
    config = {"data": {"lr_dirs": ["/home/me/data/camera/LR"], "hr_dirs": ["/srv/x/HR"],
                       "val_dir": "/home/me/data/val"},
              "run": {"out_dir": "/home/me/runs/mine", "weights_dir": "/home/me/w",
                      "init_from": "/home/me/runs/old/model_ema.safetensors"}}
    portable = portable_train_config(config)
    assert portable["data"] == {"lr_dirs": ["camera/LR"], "hr_dirs": ["x/HR"],
                                "val_dir": "val"}
    assert portable["run"] == {"out_dir": "mine", "weights_dir": None,
                               "init_from": "model_ema.safetensors"}
    assert config["run"]["out_dir"] == "/home/me/runs/mine"  # the input is not changed

import json

import pytest
import torch
from safetensors.torch import save_file

import sdflow
from sdflow.checkpoint import read_info
from sdflow.errors import CheckpointError
from sdflow.flows import all_initialized

from helpers import real_crops, tiny_model


def test_save_load_roundtrip(shared, tmp_path):
    m = tiny_model(shared)
    path = tmp_path / "sub" / "m.safetensors"
    info = sdflow.save(m, path, trained_on="RealSR train", notes="test")
    assert [p.name for p in path.parent.iterdir()] == ["m.safetensors"]  # no temp files left
    loaded = sdflow.load(path)
    assert not loaded.training and all_initialized(loaded)
    assert loaded.config == m.config
    for k, v in m.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    meta = read_info(path)
    assert meta.trained_on == "RealSR train" and meta.notes == "test"
    assert meta.sdflow_version == sdflow.__version__ and meta.scale == 4
    assert meta == info
    _, lr = real_crops(shared, 32)
    with torch.no_grad():
        assert torch.equal(loaded.sr(lr, 0.0), m.sr(lr, 0.0))


def test_load_as_float64(shared, tmp_path):
    m = tiny_model(shared)
    sdflow.save(m, tmp_path / "m.safetensors")
    loaded = sdflow.load(tmp_path / "m.safetensors", dtype=torch.float64)
    assert next(loaded.parameters()).dtype == torch.float64
    assert loaded.hr_flow.levels[0].steps[0].actnorm.initialized.dtype == torch.uint8


def test_bad_checkpoints_raise_clear_errors(shared, tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        sdflow.load(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        sdflow.load(garbage)
    plain = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="without sdflow metadata"):
        sdflow.load(plain)
    m = tiny_model(shared)
    sdflow.save(m, tmp_path / "ok.safetensors")
    meta = json.loads(read_info(tmp_path / "ok.safetensors").to_json())
    tensors = {k: v.contiguous() for k, v in m.state_dict().items()}
    for field, value, message in (("architecture", "gan", "unknown architecture"),
                                  ("format_version", 99, "newer"),
                                  ("config", {**meta["config"], "hr_steps": 3}, "do not match")):
        bad = tmp_path / f"bad_{field}.safetensors"
        save_file(tensors, bad, metadata={"sdflow": json.dumps({**meta, field: value})})
        with pytest.raises(CheckpointError, match=message):
            sdflow.load(bad)

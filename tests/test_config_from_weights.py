"""Architecture sizes read back from bare weights (key names and shapes), for tools that
hold a state dict without sdflow's header (spandrel)."""

from __future__ import annotations

import dataclasses

import pytest
from safetensors import safe_open

from sdflow import registry
from sdflow.checkpoint import model_config, read_info
from sdflow.models import da_iccv21, sdflow
from sdflow.models.base import numbered_children


def test_numbered_children_counts_module_lists():
    state = {"a.0.w": 0, "a.1.w": 0, "a.3.b.w": 0, "ab.7.w": 0, "a.x.w": 0}
    assert numbered_children(state, "a") == 3  # a.0, a.1, a.3: three with weights
    assert numbered_children(state, "b") == 0


def _sizes(cfg, skip=()):
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}


@pytest.mark.parametrize("preset,overrides", [
    ("paper", {}), ("lite", {"hf_predictor_kernel": 5}),
    ("lite", {"scale": 2, "transition_steps": 1, "mixture_components": 4,
              "encoder_mod_layers": 1, "deg_cond_blocks": 2}),
])
def test_sdflow_config_from_state_dict(preset, overrides):
    cfg = sdflow.SDFlowConfig.preset(preset, **overrides)
    state = {k: v for k, v in sdflow.SDFlow(cfg).state_dict().items()}
    got = sdflow.config_from_state_dict(state)
    skip = sdflow.SDFLOW_FIELDS_NOT_IN_WEIGHTS
    assert _sizes(got, skip) == _sizes(cfg, skip)


@pytest.mark.parametrize("preset", ["default", "lite", "tiny"])
def test_da_config_from_state_dict(preset):
    cfg = da_iccv21.DAICCV21Config.preset(preset)
    state = da_iccv21.DAICCV21(cfg).state_dict()
    assert da_iccv21.config_from_state_dict(state) == cfg
    no_gt = {k: v for k, v in state.items() if not k.startswith("lr_decoder.")}
    got = da_iccv21.config_from_state_dict(no_gt)
    assert _sizes(got, ("lr_channels", "lr_blocks")) == \
        _sizes(cfg, ("lr_channels", "lr_blocks"))


@pytest.mark.parametrize("name", ["sdflow-lite-realsr-x4", "da-iccv21-realsr-x4"])
def test_shipped_files_read_back_to_their_recorded_config(name):
    path = registry.resolve(name).path
    info = read_info(path)
    arch, recorded = model_config(info, path)
    with safe_open(str(path), "pt") as f:
        state = {k: f.get_slice(k) for k in f.keys()}

    class Shapes(dict):  # slices have get_shape(); the reader wants .shape
        def __getitem__(self, key):
            return type("T", (), {"shape": tuple(dict.__getitem__(self, key).get_shape())})

    shapes = Shapes(state)
    if info.architecture == "sdflow":
        got, skip = sdflow.config_from_state_dict(shapes), sdflow.SDFLOW_FIELDS_NOT_IN_WEIGHTS
    else:
        got, skip = da_iccv21.config_from_state_dict(shapes), ()
    assert _sizes(got, skip) == _sizes(recorded, skip)


def test_spandrel_missing_is_one_line(monkeypatch):
    import sys

    from sdflow.export.spandrel import SpandrelMissingError, register

    monkeypatch.setitem(sys.modules, "spandrel", None)
    with pytest.raises(SpandrelMissingError, match=r"pip install 'sdflow\[spandrel\]'"):
        register()

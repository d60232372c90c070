"""Our SDFlow is the authors' function: convert their checkpoint layout and reproduce every
tensor of ../shared/fixtures/official_parity/expected.pt (see its README)."""

from __future__ import annotations

import shutil

import pytest
import torch

import sdflow
from sdflow.cli import main as cli_main
from sdflow.errors import CheckpointError
from sdflow.official import OFFICIAL_FILES, load_official, read_official


@pytest.fixture(scope="module")
def parity_dir(shared):
    return shared / "fixtures/official_parity"


@pytest.fixture(scope="module")
def converted(parity_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("parity") / "official.safetensors"
    assert cli_main(["convert", "--official", str(parity_dir), "--out", str(out)]) == 0
    return sdflow.load(out)


@pytest.fixture(scope="module")
def expected(parity_dir):
    return torch.load(parity_dir / "expected.pt", weights_only=True)


def _close_rel(a, b, rel=1e-4):
    assert torch.allclose(a, b, rtol=rel, atol=0), (a, b)


def test_content_latents(converted, expected):
    with torch.no_grad():
        zl = converted.content_from_lr(expected["lr"])
        zh = converted.content_from_hr(expected["hr"])
    assert (zl - expected["zc_from_lr"]).abs().max() < 1e-4
    assert (zh - expected["zc_from_hr"]).abs().max() < 1e-4


def test_log_densities(converted, expected):
    with torch.no_grad():
        _close_rel(converted.log_prob_hr(expected["hr"]), expected["ll_hr"].reshape(1))
        _close_rel(converted.log_prob_lr(expected["lr"]), expected["ll_lr_total"].reshape(1))


def test_sr_at_tau0(converted, expected):
    with torch.no_grad():
        sr = converted.sr(expected["lr"], tau=0.0)
    assert sr.shape == expected["sr_tau0"].shape
    assert (sr - expected["sr_tau0"]).abs().max() < 1e-4


def test_ds_component5_at_tau0(converted, expected):
    with torch.no_grad():
        ds = converted.downscale(expected["hr"], tau=0.0, component=5)
    assert ds.shape == expected["ds_tau0_component5"].shape
    assert (ds - expected["ds_tau0_component5"]).abs().max() < 1e-4


def test_checkpoint_metadata(converted):
    info = converted.checkpoint_info
    assert info.architecture == "sdflow"
    assert info.config["mixture_mode"] == "official"
    assert converted.num_parameters() == 14_099_319
    assert not converted.training


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_any_float_dtype_is_read_as_float32(parity_dir, tmp_path, dtype):
    """The fixture stores float16. Re-saved as float32/float64 it must read identically (its
    values are float16-representable, so exact); bfloat16 must read within its precision."""
    ref = read_official(parity_dir)
    for name in OFFICIAL_FILES:
        sd = torch.load(parity_dir / name, weights_only=True)
        torch.save({k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()},
                   tmp_path / name)
    got = read_official(tmp_path)
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype, k
        if dtype is torch.bfloat16:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-2, atol=1e-6)
        else:
            assert torch.equal(got[k], ref[k]), k


def test_missing_official_file_is_reported(parity_dir, tmp_path):
    for name in list(OFFICIAL_FILES)[:3]:
        shutil.copy(parity_dir / name, tmp_path / name)
    with pytest.raises(CheckpointError, match="degnet.pth: missing"):
        load_official(tmp_path)

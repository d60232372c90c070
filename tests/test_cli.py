import json
import subprocess
import sys
from pathlib import Path

import pytest

from sdflow.checkpoint import save
from sdflow.cli import main

from helpers import tiny_model


def test_help_via_module_and_console_script():
    out = subprocess.run([sys.executable, "-m", "sdflow", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for command in ("selfcheck", "convert", "info"):
        assert command in out
    # the console script installed beside this interpreter (pip install -e .)
    exe = Path(sys.executable).parent / "sdflow"
    if not exe.exists():
        pytest.fail(f"no sdflow console script at {exe}; install with pip install -e .")
    assert subprocess.run([str(exe), "--help"], capture_output=True).returncode == 0


def test_selfcheck_on_real_image_passes(shared, capsys):
    image = shared / "data/RealSR_x4/val/HR/Canon_031.png"
    code = main(["selfcheck", "--preset", "lite", "--image", str(image), "--crop", "32",
                 "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["passed"]
    names = " ".join(c["check"] for c in report["checks"])
    for flow in ("f_HR", "f_LR", "f_Deg"):
        assert f"log-det vs Jacobian, {flow}" in names


def test_selfcheck_detects_a_broken_flow(shared, tmp_path, capsys, monkeypatch):
    """A selfcheck that cannot fail is worthless: break the inverse and expect exit 1."""
    from sdflow.flows import coupling

    original = coupling.AffineCoupling.inverse

    def broken(self, y, cond=None):
        x, ld = original(self, y, cond)
        return x + 1e-3, ld

    monkeypatch.setattr(coupling.AffineCoupling, "inverse", broken)
    code = main(["selfcheck", "--preset", "lite", "--crop", "32"])
    assert code == 1
    assert "FAILED" in capsys.readouterr().out


def test_info_and_selfcheck_on_checkpoint(shared, tmp_path, capsys):
    path = tmp_path / "m.safetensors"
    save(tiny_model(shared), path, trained_on="nothing")
    assert main(["info", str(path), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["architecture"] == "sdflow" and rec["trained_on"] == "nothing"
    assert main(["selfcheck", "--model", str(path), "--crop", "32"]) == 0


def test_convert_reports_missing_directory(tmp_path, capsys):
    assert main(["convert", "--official", str(tmp_path), "--out", str(tmp_path / "x")]) == 1
    assert "lrencoder.pth: missing" in capsys.readouterr().err


def test_the_cli_keeps_freed_memory_unless_told_not_to(monkeypatch):
    import sdflow.cli as cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.delenv("SDFLOW_SYSTEM_MALLOC", raising=False)
    assert cli.main(["info", "sdflow-lite-realsr-x4", "--json"]) == 0
    monkeypatch.setenv("SDFLOW_SYSTEM_MALLOC", "1")
    assert cli.main(["info", "sdflow-lite-realsr-x4", "--json"]) == 0
    assert calls == [1]


def test_keep_freed_memory_applies_on_glibc():
    import platform

    from sdflow.allocator import keep_freed_memory

    assert keep_freed_memory() == (platform.system() == "Linux"
                                   and platform.libc_ver()[0] == "glibc")


def test_models_lists_the_registered_models_with_their_recorded_numbers(capsys):
    from sdflow import registry

    assert main(["models", "--json"]) == 0
    table = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(table) == set(registry.available())
    assert registry.DEFAULT_MODEL and "sr" in table[registry.DEFAULT_MODEL]["default_for"]
    assert "ds" in table[registry.DEFAULT_DOWNSCALE_MODEL]["default_for"]
    for row in table.values():
        assert row["parameters"] > 0 or row["architecture"] == "gaussian-fit"
        if "sr" in row["tasks"]:
            assert 20 < row["sr_psnr"] < 40 and 0 < row["sr_lpips"] < 1
        if "ds" in row["tasks"]:
            assert 25 < row["ds_psnr"] < 40
    assert main(["models"]) == 0
    assert "DS PSNR" in capsys.readouterr().out

"""The compute record of trained models (sdflow.training.compute): legs, totals, and
models exported before compute was recorded."""

from __future__ import annotations

import pytest

from sdflow.training import compute


def test_a_cpu_leg_counts_threads_and_processes():
    leg = compute.leg_record(100, 1800.0, "cpu", processes=2, threads=4, init_from=None)
    assert leg["hours"] == 0.5 and leg["cpu_hours"] == 4.0 and leg["device_hours"] is None


def test_a_gpu_leg_counts_device_hours_and_no_cpu_hours():
    leg = compute.leg_record(100, 3600.0, "cuda", processes=8, threads=16, init_from=None)
    assert leg["device_hours"] == 8.0 and leg["cpu_hours"] is None
    assert leg["threads_per_process"] is None


def test_totals_add_legs_and_are_unknown_when_a_leg_is():
    a = compute.leg_record(10, 3600.0, "cpu", 1, 2, None)
    b = compute.leg_record(30, 7200.0, "cpu", 1, 2, {"model": "x.safetensors", "sha256": "0"})
    record = compute.with_totals([a, b])
    assert record["total_iterations"] == 40
    assert record["total_hours"] == pytest.approx(3.0)
    assert record["total_cpu_hours"] == pytest.approx(6.0)
    old = compute.earlier_legs({"iterations": 500})  # a file from before the record
    assert old[0]["iterations"] == 500 and old[0]["hours"] is None
    mixed = compute.with_totals(old + [a])
    assert mixed["total_iterations"] == 510 and mixed["total_hours"] is None
    gpu = compute.with_totals([a, compute.leg_record(5, 60.0, "cuda", 1, 2, None)])
    assert gpu["total_hours"] is not None and gpu["total_cpu_hours"] is None


def test_earlier_legs_are_read_from_an_exported_record_and_names_carry_no_path():
    record = compute.with_totals([compute.leg_record(7, 36.0, "cpu", 1, 2, None)])
    assert compute.earlier_legs({"compute": record, "iterations": 7}) == record["legs"]
    assert compute.earlier_legs({}) == []
    source = compute.init_source("/home/me/runs/a/model_ema.safetensors", "ab" * 32)
    assert source == {"model": "model_ema.safetensors", "sha256": "ab" * 32}

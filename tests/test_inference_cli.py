"""``sdflow sr`` / ``sdflow downscale``: bad inputs, naming, metadata, determinism,
uncertainty maps, non-finite retries, the model registry and the progress bar."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

import sdflow
from sdflow import registry
from sdflow.checkpoint import file_sha256, save
from sdflow.cli import main
from sdflow.errors import NonFiniteOutputError
from sdflow.imageio import from_array, read_image
from sdflow.inference import pipeline, uncertainty
from sdflow.inference.metadata import ModelIdentity, read_metadata
from sdflow.progress import Progress

from helpers import tiny_model
from inference_helpers import one_thread, real_pixels

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def model(shared):
    return tiny_model(shared)


@pytest.fixture(scope="module")
def ckpt(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "fast.safetensors"
    save(model, path, trained_on="nothing (test)")
    return path


def _leftovers(folder):
    """Temporary files a crashed write would leave (all start with a dot)."""
    return [p for p in folder.rglob(".*") if p.is_file()]


def test_bad_inputs_each_fail_alone_with_one_line(shared, ckpt, tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(real_pixels(shared, 8, 8)).save(d / "good.png")
    (d / "empty.png").write_bytes(b"")
    full = io.BytesIO()
    Image.fromarray(real_pixels(shared, 40, 40)).save(full, format="PNG")
    (d / "truncated.png").write_bytes(full.getvalue()[:300])
    (d / "notes.jpg").write_text("these are my notes, not a JPEG\n")
    Image.new("CMYK", (8, 8), (0, 200, 200, 0)).save(d / "cmyk.jpg")
    Image.new("RGB", (1, 1), (10, 20, 30)).save(d / "dot.png")
    Image.new("RGB", (60, 50)).save(d / "huge.png")
    out = tmp_path / "out"
    code = main(["sr", str(d), "-o", str(out), "--model", str(ckpt), "--seed", "0",
                 "--max-pixels", "2500"])
    err = capsys.readouterr().err
    assert code == 1
    lines = {ln.split(":")[0].rsplit("/", 1)[-1]: ln for ln in err.splitlines()
             if "failed:" in ln}
    assert set(lines) == {"empty.png", "truncated.png", "notes.jpg", "dot.png", "huge.png"}
    assert "empty file" in lines["empty.png"]
    assert "corrupt or truncated" in lines["truncated.png"]
    assert "not a readable image" in lines["notes.jpg"]
    assert "at least 2x2" in lines["dot.png"]
    assert "--max-pixels" in lines["huge.png"]
    assert "CMYK" in err  # converted, with a note
    assert "2 done, 0 skipped, 5 failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["cmyk_sr_t0.80_s0.png",
                                                     "good_sr_t0.80_s0.png"]
    assert not _leftovers(out)
    # a 1x1 image downscales fine (to 1x1)
    assert main(["downscale", str(d / "dot.png"), "-o", str(out), "--model", str(ckpt)]) == 0
    (ds,) = out.glob("dot_ds_*.png")
    assert Image.open(ds).size == (1, 1)


def test_unwritable_output_dir(shared, ckpt, tmp_path, capsys):
    Image.fromarray(real_pixels(shared, 8, 8)).save(tmp_path / "a.png")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["sr", str(tmp_path / "a.png"), "-o", str(blocker / "out"), "--model",
                 str(ckpt)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{blocker / 'out'}: cannot write to the output folder" in err
    assert len(err.strip().splitlines()) == 1


def test_existing_outputs_skip_and_overwrite(shared, ckpt, tmp_path, capsys):
    Image.fromarray(real_pixels(shared, 8, 8)).save(tmp_path / "a.png")
    args = ["sr", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(ckpt),
            "--seed", "1"]
    assert main(args) == 0
    target = tmp_path / "o" / "a_sr_t0.80_s0.png"
    before = target.stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0  # skipped, not failed: a batch can be resumed
    err = capsys.readouterr().err
    assert "skipped" in err and "--overwrite" in err and "0 done, 1 skipped" in err
    assert target.stat().st_mtime_ns == before
    assert main(args + ["--overwrite", "--tau", "0.8"]) == 0
    assert "1 done" in capsys.readouterr().err


def test_names_metadata_and_determinism(shared, ckpt, tmp_path, capsys):
    d = tmp_path / "in" / "trip"
    d.mkdir(parents=True)
    Image.fromarray(real_pixels(shared, 12, 10)).save(d / "photo.png")
    common = ["--model", str(ckpt), "--seed", "7", "--samples", "2"]
    assert main(["sr", str(tmp_path / "in"), "-r", "-o", str(tmp_path / "a")] + common) == 0
    assert main(["sr", str(tmp_path / "in" / "**" / "*.png"), "-o", str(tmp_path / "b")]
                + common) == 0
    names = sorted(p.relative_to(tmp_path / "a").as_posix()
                   for p in (tmp_path / "a").rglob("*.png"))
    assert names == ["trip/photo_sr_t0.80_s0.png", "trip/photo_sr_t0.80_s1.png"]
    for n in names:  # same seed, same pixels, whichever way the input was given
        assert np.array_equal(read_image(tmp_path / "a" / n).rgb,
                              read_image(tmp_path / "b" / n).rgb)
    s0, s1 = (read_image(tmp_path / "a" / n).rgb for n in names)
    assert not np.array_equal(s0, s1)
    meta = read_metadata(tmp_path / "a" / names[1])
    assert meta["tau"] == "0.8" and meta["seed"] == "7" and meta["sample"] == "1"
    assert meta["model"] == "fast.safetensors"
    assert meta["model_sha256"] == file_sha256(ckpt, 64)
    assert meta["sdflow_version"] and meta["task"] == "sr"
    # downscaling: the component is in the name and the metadata; JPEG gets a sidecar
    assert main(["downscale", str(d / "photo.png"), "-o", str(tmp_path / "c"), "--model",
                 str(ckpt), "--tau", "0", "--seed", "3", "--ext", "jpg"]) == 0
    (out,) = (tmp_path / "c").glob("photo_ds_t0.00_k*.jpg")
    side = json.loads((tmp_path / "c" / (out.name + ".json")).read_text())
    assert out.name == f"photo_ds_t0.00_k{side['component']}.jpg"
    assert side["tau"] == 0.0 and side["seed"] == 3
    # --component fixes it; --dry-run writes nothing
    capsys.readouterr()
    assert main(["downscale", str(d / "photo.png"), "-o", str(tmp_path / "e"), "--model",
                 str(ckpt), "--component", "2", "--tau", "0", "--dry-run"]) == 0
    assert "photo_ds_t0.00_k2.png" in capsys.readouterr().out
    assert not (tmp_path / "e").exists()


def test_each_image_of_a_batch_has_its_own_stream_and_reruns_alone_the_same(
        shared, ckpt, tmp_path):
    """Copies of one photo under different names get different noise and components
    (one --seed, streams keyed by the relative path), and one of them rerun alone gives
    the pixels it got inside the batch."""
    d = tmp_path / "in"
    d.mkdir()
    pixels = real_pixels(shared, 12, 10)
    for i in range(6):
        Image.fromarray(pixels).save(d / f"copy{i}.png")
    common = ["--model", str(ckpt), "--seed", "4"]
    assert main(["sr", str(d), "-o", str(tmp_path / "sr")] + common) == 0
    outs = [read_image(tmp_path / "sr" / f"copy{i}_sr_t0.80_s0.png").rgb for i in range(6)]
    assert all(not np.array_equal(outs[0], o) for o in outs[1:])
    assert main(["sr", str(d / "copy3.png"), "-o", str(tmp_path / "alone")] + common) == 0
    assert np.array_equal(read_image(tmp_path / "alone" / "copy3_sr_t0.80_s0.png").rgb,
                          outs[3])
    assert main(["downscale", str(d), "-o", str(tmp_path / "ds"), "--tau", "0"]
                + common) == 0
    components = {read_metadata(p)["component"] for p in (tmp_path / "ds").glob("*.png")}
    assert len(components) > 1
    seeds = {read_metadata(p)["image_seed"] for p in (tmp_path / "ds").glob("*.png")}
    assert len(seeds) == 6


def test_same_name_from_two_inputs_is_refused(shared, ckpt, tmp_path, capsys):
    Image.fromarray(real_pixels(shared, 8, 8)).save(tmp_path / "x.png")
    Image.fromarray(real_pixels(shared, 8, 8)).save(tmp_path / "x.jpg")
    code = main(["sr", str(tmp_path / "x.png"), str(tmp_path / "x.jpg"), "-o",
                 str(tmp_path / "o"), "--model", str(ckpt)])
    assert code == 1
    assert "would overwrite those of" in capsys.readouterr().err


def test_uncertainty_map_is_the_std_of_the_samples(shared, ckpt, tmp_path):
    Image.fromarray(real_pixels(shared, 10, 10)).save(tmp_path / "u.png")
    assert main(["sr", str(tmp_path / "u.png"), "-o", str(tmp_path / "o"), "--model",
                 str(ckpt), "--samples", "3", "--seed", "2", "--uncertainty"]) == 0
    o = tmp_path / "o"
    samples = np.stack([read_image(o / f"u_sr_t0.80_s{i}.png").rgb for i in range(3)])
    expect = np.sqrt(samples.astype(np.float64).var(axis=0, ddof=1).mean(axis=2))
    raw = np.asarray(Image.open(o / "u_sr_t0.80_std16.png")).astype(np.float64)
    got = raw / uncertainty.RAW_SCALE
    assert got.shape == expect.shape == (40, 40)
    assert np.abs(got - expect).mean() < 0.5  # up to the 8-bit rounding of the samples
    colour = Image.open(o / "u_sr_t0.80_std.png")
    assert colour.mode == "RGB" and colour.size == (40, 40)
    meta = read_metadata(o / "u_sr_t0.80_std.png")
    assert meta["kind"] == "uncertainty" and float(meta["colour_scale_max"]) > 0
    with pytest.raises(ValueError, match="2 samples"):
        uncertainty.std_map(torch.zeros(1, 3, 4, 4))


def test_colormap_is_ordered_dark_to_light():
    c = uncertainty.colormap(np.linspace(0, 1, 50)[None], 1.0)[0].astype(float)
    luma = c @ np.array([0.299, 0.587, 0.114])
    assert np.all(np.diff(luma) > 0)
    assert tuple(uncertainty.colormap(np.array([[5.0]]), 1.0)[0, 0]) == (253, 231, 37)


def test_non_finite_samples_are_retried_at_lower_tau(model, shared, monkeypatch):
    original = type(model).sr_decode
    calls = {"n": 0}

    def flaky(self, z_c, feats, z):
        calls["n"] += 1
        out = original(self, z_c, feats, z)
        return out * float("nan") if calls["n"] == 2 else out  # sample 1, first try

    monkeypatch.setattr(type(model), "sr_decode", flaky)
    messages = []
    res = pipeline.process(model, from_array(real_pixels(shared, 8, 8)), "sr", tau=0.8,
                           num_samples=2, tile=0, generator=torch.Generator().manual_seed(0),
                           message=messages.append)
    assert [s.tau for s in res.samples] == [0.8, pytest.approx(0.72)]
    assert [s.retries for s in res.samples] == [0, 1]
    assert any("retrying at tau 0.720" in m for m in messages)

    def always_bad_above_zero(self, z_c, feats, z):
        out = original(self, z_c, feats, z)
        return out * float("nan") if bool(z.abs().max() > 0) else out

    monkeypatch.setattr(type(model), "sr_decode", always_bad_above_zero)
    res = pipeline.process(model, from_array(real_pixels(shared, 8, 8)), "sr", tau=0.8,
                           tile=0, generator=torch.Generator().manual_seed(0))
    assert res.samples[0].tau == 0.0 and res.samples[0].retries == 4
    assert np.isfinite(res.outputs[0]).all()

    def always_bad(self, z_c, feats, z):
        return original(self, z_c, feats, z) * float("nan")

    monkeypatch.setattr(type(model), "sr_decode", always_bad)
    with pytest.raises(NonFiniteOutputError, match="even at tau = 0"):
        pipeline.process(model, from_array(real_pixels(shared, 8, 8)), "sr", tau=0.5, tile=0)


def test_registry_resolves_names_and_checks_hashes(ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "MODELS", {})  # as if nothing were shipped
    monkeypatch.setattr(registry, "DEFAULT_MODEL", None)
    monkeypatch.setattr(registry, "DEFAULT_DOWNSCALE_MODEL", None)
    assert registry.available() == []
    with pytest.raises(registry.ModelNotFoundError, match="no models are registered"):
        registry.resolve("realsr-x4")
    with pytest.raises(registry.ModelNotFoundError, match="no model given"):
        registry.resolve(None)
    assert main(["sr", str(ckpt), "-o", str(tmp_path / "o"), "--model", "realsr-x4"]) == 2
    assert "neither a checkpoint file nor a registered model" in capsys.readouterr().err

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "fast.safetensors").write_bytes(ckpt.read_bytes())
    entry = registry.RegisteredModel("fast-x4", "fast.safetensors", file_sha256(ckpt, 64),
                                     trained_on="nothing")
    monkeypatch.setattr(registry, "MODELS", {"fast-x4": entry})
    monkeypatch.setattr(registry, "weights_dir", lambda: weights)
    monkeypatch.setattr(registry, "DEFAULT_MODEL", "fast-x4")
    assert registry.resolve(None).path == weights / "fast.safetensors"
    with pytest.raises(registry.ModelNotFoundError, match="no model given"):
        registry.resolve(None, "ds")  # the downscaling default is separate
    monkeypatch.setattr(registry, "DEFAULT_DOWNSCALE_MODEL", "fast-x4")
    assert registry.resolve(None, "ds").path == weights / "fast.safetensors"
    with pytest.raises(ValueError, match="task must be"):
        registry.resolve(None, "sharpen")
    assert registry.load("fast-x4").config.hr_steps == 2
    with pytest.raises(registry.ModelNotFoundError, match="no such checkpoint"):
        registry.resolve("missing/fast.safetensors")
    (weights / "fast.safetensors").write_bytes(ckpt.read_bytes()[:-1] + b"\0")
    with pytest.raises(Exception, match="sha256"):
        registry.load("fast-x4")


def test_progress_bar_only_on_a_terminal():
    quiet = io.StringIO()
    p = Progress(3, quiet, enabled=None)  # StringIO is not a TTY
    p.image(1, "a.png")
    p.tile(2, 4)
    p.message("a line")
    p.close()
    assert quiet.getvalue() == "a line\n"
    tty = io.StringIO()
    p = Progress(3, tty, enabled=True)
    p.image(1, "a.png")
    time.sleep(0.11)  # tile redraws are limited to 10 a second
    p.tile(2, 4)
    p.message("note")
    p.image(2, "d/" + "b" * 60 + ".png")
    p.close()
    out = tty.getvalue()
    frames = out.split("\r")
    assert any(f.startswith("a.png:  33%") and "1/3" in f for f in frames)
    before, after = out.split("\rnote\n")  # the bar is cleared before the message
    assert any("1/3" in f and "tile 2/4" in f for f in before.split("\r"))
    assert after.split("\r")[1].startswith("a.png:  33%")  # and redrawn after it
    assert any(f.startswith("..." + "b" * 33 + ".png:  67%") for f in frames)  # name cut
    assert frames[-1] == "" and frames[-2].strip() == ""  # closing clears the bar line


def test_formats_without_alpha_or_16_bits_say_what_they_dropped(shared, ckpt, tmp_path,
                                                                 capsys):
    rgb = real_pixels(shared, 8, 8)
    Image.fromarray(np.dstack([rgb, np.full((8, 8), 128, np.uint8)])).save(tmp_path / "a.png")
    from sdflow.imageio import write_image

    write_image(tmp_path / "d.png", rgb.astype(np.uint16) * 257)
    assert main(["sr", str(tmp_path / "a.png"), str(tmp_path / "d.png"), "-o",
                 str(tmp_path / "o"), "--model", str(ckpt), "--ext", "jpg"]) == 0
    err = capsys.readouterr().err
    assert "alpha dropped" in err and "rounded to 8 bits" in err
    assert Image.open(tmp_path / "o" / "a_sr_t0.80_s0.jpg").mode == "RGB"
    assert read_image(tmp_path / "o" / "d_sr_t0.80_s0.jpg").bit_depth == 8
    assert main(["sr", str(tmp_path / "d.png"), "-o", str(tmp_path / "t"), "--model",
                 str(ckpt), "--ext", "tiff"]) == 0
    assert read_image(tmp_path / "t" / "d_sr_t0.80_s0.tif").bit_depth == 16
    assert read_metadata(tmp_path / "t" / "d_sr_t0.80_s0.tif")["bit_depth"] == "16"


def test_bf16_precision_is_close_to_fp32_recorded_and_scoped(shared, ckpt, tmp_path,
                                                            monkeypatch):
    from sdflow.inference import batch

    seen = []

    def spy(model, *args, **kwargs):
        seen.append(model.preparation.precision)
        return pipeline.process(model, *args, **kwargs)

    monkeypatch.setattr(batch, "process", spy)
    src = tmp_path / "photo.png"
    Image.fromarray(real_pixels(shared, 24, 20)).save(src)
    common = [str(src), "--model", str(ckpt), "--seed", "5"]
    assert main(["sr", *common, "-o", str(tmp_path / "fp32")]) == 0
    assert main(["sr", *common, "-o", str(tmp_path / "bf16"), "--precision", "bf16"]) == 0
    assert seen == ["fp32", "bf16"]  # each batch ran a model prepared for its precision
    a = read_image(tmp_path / "fp32" / "photo_sr_t0.80_s0.png").rgb.astype(int)
    b = read_image(tmp_path / "bf16" / "photo_sr_t0.80_s0.png").rgb.astype(int)
    assert read_metadata(tmp_path / "bf16" / "photo_sr_t0.80_s0.png")["precision"] == "bf16"
    assert read_metadata(tmp_path / "fp32" / "photo_sr_t0.80_s0.png")["precision"] == "fp32"
    assert np.abs(a - b).max() <= 3  # grey levels, 8-bit (a random-weight model)
    with pytest.raises(SystemExit):
        main(["sr", *common, "-o", str(tmp_path / "x"), "--precision", "fp16"])
    # without bf16 matrix units bf16 is emulated: the run says so once, and still runs
    from sdflow import hardware

    plain = hardware.CPUFeatures(avx2=True, avx512=False, avx512_bf16=False, amx=False,
                                 cores=2)
    monkeypatch.setattr(batch, "cpu_features", lambda: plain)
    err = io.StringIO()
    model = sdflow.load(ckpt)
    batch.run_batch(model, ModelIdentity("m", "0"), [], batch.Options(
        task="sr", tau=0.8, precision="bf16"), tmp_path / "z", stream=err)
    assert err.getvalue().count("without bf16 matrix units") == 1
    assert "2 cores" in err.getvalue() and "AVX2" in err.getvalue()
    assert batch.bf16_note("fp32", torch.device("cpu")) is None
    monkeypatch.setattr(batch, "cpu_features", lambda: hardware.CPUFeatures(
        avx2=True, avx512=True, avx512_bf16=True, amx=False, cores=2))
    assert batch.bf16_note("bf16", torch.device("cpu")) is None
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        batch.Options(task="sr", tau=0.8, precision="fp16")

"""``sdflow sr`` / ``downscale``: the conventions SR users know from Real-ESRGAN (-i, -n,
-t, -s, --suffix, --ext, --device cuda:N), options defined once, and the input errors that
must be one line (NaN tau, permission denied, symlink loops, animated GIFs, adding
samples next to an uncertainty map)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import numpy as np
import pytest
from PIL import Image

from sdflow.checkpoint import save
from sdflow.cli import main
from sdflow.imageio import read_image
from sdflow.inference import batch
from sdflow.inference.metadata import read_metadata
from sdflow.metrics import imresize_uint8
from sdflow.options import add_flags, flag_fields, from_args

from helpers import tiny_model
from inference_helpers import one_thread, real_pixels

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def ckpt(shared, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "fast.safetensors"
    save(tiny_model(shared), path)
    return path


@pytest.fixture
def photo(shared, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(real_pixels(shared, 10, 12)).save(d / "photo.png")
    return d / "photo.png"


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_every_option_field_is_a_flag_and_comes_back_from_the_parsed_arguments():
    for command in ("sr", "downscale"):
        p = argparse.ArgumentParser()
        add_flags(p, batch.Options, command, {"unit": "LR", "default_tau": 0.8,
                                              "default_overlap": 16})
        args = p.parse_args(["--tau", "0.5", "--samples", "3", "--overwrite", "-t", "64",
                             "--ext", "jpg", "--suffix", "x"])
        opts = from_args(batch.Options, args, command, task="sr")
        assert (opts.tau, opts.samples, opts.overwrite, opts.tile, opts.ext, opts.suffix) == \
            (0.5, 3, True, 64, "jpg", "x")
        flagged = {f.name for f, _ in flag_fields(batch.Options, command)}
        unflagged = {f.name for f in dataclasses.fields(batch.Options)} - flagged
        assert unflagged == {"task"} | ({"component"} if command == "sr" else {"outscale"})


def test_outscale_resizes_samples_alpha_and_uncertainty_maps_alike(ckpt, tmp_path):
    """`-s 2 --samples 2 --uncertainty` on an RGBA image: every output, its alpha and
    both uncertainty maps are 2x the input (they were 4x before the pipeline owned it)."""
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., :3] = (np.random.default_rng(1).random((10, 12, 3)) * 255).astype(np.uint8)
    rgba[..., 3] = np.linspace(0, 255, 12).astype(np.uint8)[None, :]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = tmp_path / "o"
    assert main(["sr", str(tmp_path / "a.png"), "-o", str(out), "-n", str(ckpt), "-s", "2",
                 "--samples", "2", "--uncertainty", "--seed", "3"]) == 0
    for name in ("a_sr_t0.80_s0.png", "a_sr_t0.80_s1.png", "a_sr_t0.80_std.png",
                 "a_sr_t0.80_std16.png"):
        assert Image.open(out / name).size == (24, 20), name
    img = np.array(Image.open(out / "a_sr_t0.80_s0.png"))
    assert img.shape == (20, 24, 4)
    assert img[:, 0, 3].mean() < 40 and img[:, -1, 3].mean() > 215  # alpha ramp kept


def test_real_esrgan_spellings_suffix_ext_and_outscale(ckpt, photo, tmp_path, capsys):
    out = tmp_path / "out"
    # -i/-n/-t/-s and --suffix '' (the input's own name): what `eval folders` pairs on
    assert main(["sr", "-i", str(photo), "-o", str(out), "-n", str(ckpt), "-t", "0",
                 "-s", "2", "--suffix", "", "--seed", "1"]) == 0
    sr = read_image(out / "photo.png")
    assert sr.size == (20, 24)  # (h, w): 2x the 10x12 input, not 4x
    assert read_metadata(out / "photo.png")["outscale"] == "2.0"
    # the same image at x4, resized by us: what -s 2 must equal
    assert main(["sr", str(photo), "-o", str(tmp_path / "x4"), "-n", str(ckpt), "--seed",
                 "1"]) == 0
    full = read_image(tmp_path / "x4" / "photo_sr_t0.80_s0.png").rgb
    # -s 2 resizes the float SR once, before rounding; resizing the rounded x4 output
    # differs by rounding only
    assert np.abs(sr.rgb.astype(int) - imresize_uint8(full, size=(20, 24))).max() <= 1
    # a suffix with several samples, --ext auto keeps the input's format (JPEG + sidecar)
    Image.open(photo).save(photo.with_suffix(".jpg"), quality=95)
    assert main(["sr", str(photo.with_suffix(".jpg")), "-o", str(tmp_path / "j"), "-n",
                 str(ckpt), "--suffix", "out", "--samples", "2", "--ext", "auto"]) == 0
    names = sorted(p.name for p in (tmp_path / "j").iterdir())
    assert names == ["photo_out_s0.jpg", "photo_out_s0.jpg.json", "photo_out_s1.jpg",
                     "photo_out_s1.jpg.json"]
    assert json.loads((tmp_path / "j" / "photo_out_s1.jpg.json").read_text())["sample"] == 1
    # the input's own name into the input's own folder: refused, nothing overwritten
    capsys.readouterr()
    assert main(["sr", str(photo.parent), "-o", str(photo.parent), "-n", str(ckpt),
                 "--suffix", ""]) != 0
    assert "inside the output folder" in capsys.readouterr().err
    # --suffix cannot smuggle a path in
    capsys.readouterr()
    assert main(["sr", str(photo), "-o", str(out), "-n", str(ckpt), "--suffix", "../x"]) == 2
    assert "--suffix" in _one_error_line(capsys)


@pytest.mark.parametrize("argv, expect", [
    (["--tau", "nan"], "--tau must be a finite number"),
    (["--tau", "inf"], "--tau must be a finite number"),
    (["--tau", "-1"], "--tau must be a finite number >= 0"),
    (["-s", "0"], "--outscale must be in (0, 16]"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--quality", "0"], "--quality must be in 1..100"),
    (["--device", "cuda:3"], "--device cuda:3"),
    (["--device", "gpu"], "--device gpu: not a device"),
])
def test_bad_option_values_are_one_line_and_write_nothing(ckpt, photo, tmp_path, capsys,
                                                          argv, expect):
    out = tmp_path / "out"
    assert main(["sr", str(photo), "-o", str(out), "-n", str(ckpt), *argv]) != 0
    assert expect in _one_error_line(capsys)
    assert not list(out.glob("*.png")) if out.exists() else True


def test_unusable_inputs_say_why(ckpt, photo, tmp_path, capsys, monkeypatch):
    d = photo.parent
    os.symlink(d / "loop_b.png", d / "loop_a.png")
    os.symlink(d / "loop_a.png", d / "loop_b.png")
    os.symlink(d / "gone.png", d / "broken.png")
    out = tmp_path / "out"
    code = main(["sr", str(d / "loop_a.png"), str(d / "broken.png"), str(photo), "-o",
                 str(out), "-n", str(ckpt)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"{d / 'loop_a.png'}: a symbolic link loop" in err
    assert f"{d / 'broken.png'}: a broken symbolic link" in err
    assert (out / "photo_sr_t0.80_s0.png").is_file()  # the batch went on
    # unreadable: Pillow's PermissionError (root reads any file, so it is raised here)
    real_open = Image.open

    def refuse(path, *a, **k):
        if str(path).endswith("photo.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr("sdflow.imageio.Image.open", refuse)
    assert main(["sr", str(photo), "-o", str(tmp_path / "p"), "-n", str(ckpt)]) == 1
    err = capsys.readouterr().err
    assert "permission denied" in err and "corrupt" not in err


def test_an_animated_gif_is_its_first_frame_with_a_note(shared, ckpt, tmp_path, capsys):
    frames = [Image.fromarray(real_pixels(shared, 8, 8, top=t)) for t in (0, 20, 40)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert main(["sr", str(gif), "-o", str(tmp_path / "o"), "-n", str(ckpt)]) == 0
    err = capsys.readouterr().err
    assert "3 frames (animated or multi-page): only the first is used" in err


def test_more_samples_next_to_an_uncertainty_map_adds_them(ckpt, photo, tmp_path, capsys):
    out = tmp_path / "out"
    common = [str(photo), "-o", str(out), "-n", str(ckpt), "--uncertainty"]
    assert main(["sr", *common, "--samples", "2", "--seed", "5"]) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["sr", *common, "--samples", "3"]) == 0  # no --seed: continues seed 5
    err = capsys.readouterr().err
    assert "continued with seed 5" in err
    for name in ("photo_sr_t0.80_s0.png", "photo_sr_t0.80_s1.png"):
        assert (out / name).read_bytes() == first[name]  # kept, not redone
    assert read_metadata(out / "photo_sr_t0.80_s2.png")["seed"] == "5"
    # the maps now describe the three samples: as a fresh 3-sample run with seed 5
    fresh = tmp_path / "fresh"
    assert main(["sr", str(photo), "-o", str(fresh), "-n", str(ckpt), "--uncertainty",
                 "--samples", "3", "--seed", "5"]) == 0
    for name in ("photo_sr_t0.80_s2.png", "photo_sr_t0.80_std16.png"):
        assert np.array_equal(np.asarray(Image.open(out / name)),
                              np.asarray(Image.open(fresh / name)))

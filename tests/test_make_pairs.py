"""``sdflow make-pairs``: names and sizes, manifest, seeds, resume, shards, patches, bad
inputs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from sdflow.checkpoint import save
from sdflow.cli import main
from sdflow.imageio import read_image
from sdflow.inference.pairs import Shard, patch_boxes

from helpers import tiny_model
from inference_helpers import one_thread

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def ckpt(shared, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "fast.safetensors"
    save(tiny_model(shared), path, trained_on="nothing (test)")
    return path


@pytest.fixture(scope="module")
def hr_dir(shared, tmp_path_factory):
    """Four real HR crops of odd sizes (not multiples of 4) and one in a subfolder."""
    d = tmp_path_factory.mktemp("hr")
    src = shared / "data/RealSR_x4/train/HR"
    for i, (name, (h, w)) in enumerate(zip(["a", "b", "c"], [(50, 46), (41, 64), (36, 36)],
                                           strict=True)):
        with Image.open(sorted(src.iterdir())[i]) as img:
            Image.fromarray(np.asarray(img.convert("RGB"))[:h, :w]).save(d / f"{name}.png")
    (d / "sub").mkdir()
    with Image.open(sorted(src.iterdir())[3]) as img:
        Image.fromarray(np.asarray(img.convert("RGB"))[:40, :40]).save(d / "sub" / "d.png")
    return d


def _run(args, capsys):
    code = main(["make-pairs", *args])
    return code, capsys.readouterr().err


def _manifest(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_pairs_have_identical_names_and_exact_sizes(ckpt, hr_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run([str(hr_dir), "-r", "-o", str(out), "--model", str(ckpt),
                      "--samples", "2", "--seed", "3"], capsys)
    assert code == 0, err
    hr_names = sorted(p.relative_to(out / "HR").as_posix() for p in (out / "HR").rglob("*.png"))
    lr_names = sorted(p.relative_to(out / "LR").as_posix() for p in (out / "LR").rglob("*.png"))
    assert hr_names == lr_names == sorted(f"{s}_s{k}.png" for s in ("a", "b", "c", "sub/d")
                                          for k in (0, 1))
    for name in hr_names:
        hr = read_image(out / "HR" / name).rgb
        lr = read_image(out / "LR" / name).rgb
        assert hr.shape[0] % 4 == 0 and hr.shape[1] % 4 == 0
        assert lr.shape[:2] == (hr.shape[0] // 4, hr.shape[1] // 4)
    # the HR is a top-left crop of the source, pixels unchanged
    src = read_image(hr_dir / "a.png").rgb
    np.testing.assert_array_equal(read_image(out / "HR" / "a_s0.png").rgb, src[:48, :44])
    rows = _manifest(out / "manifest.tsv")
    assert len(rows) == 8 and {r["pair"] for r in rows} == {n[:-4] for n in hr_names}
    row = next(r for r in rows if r["pair"] == "b_s1")
    assert row["source"] == "b.png" and row["seed"] == "3" and row["tau"] == "0.8"
    assert row["hr_box"] == "0 0 40 64" and row["lr_box"] == "0 0 10 16"
    assert len(row["model_sha256"]) == 64 and row["component"].isdigit()
    assert "8 pairs written" in err


def test_same_seed_same_pairs_and_a_single_image_rerun_matches_the_batch(
        ckpt, hr_dir, tmp_path, capsys):
    base = ["--model", str(ckpt), "--tau", "0.8", "--seed", "5"]
    _run([str(hr_dir), "-o", str(tmp_path / "x"), *base], capsys)
    _run([str(hr_dir), "-o", str(tmp_path / "y"), *base], capsys)
    _run([str(hr_dir / "b.png"), "-o", str(tmp_path / "single"), *base], capsys)
    _run([str(hr_dir), "-o", str(tmp_path / "z"), *base[:-1], "6"], capsys)
    x, y = (read_image(tmp_path / d / "LR" / "b.png").rgb for d in ("x", "y"))
    np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(x, read_image(tmp_path / "single" / "LR" / "b.png").rgb)
    assert not np.array_equal(x, read_image(tmp_path / "z" / "LR" / "b.png").rgb)


def test_rerun_skips_finished_pairs_and_redoes_a_half_written_one(ckpt, hr_dir, tmp_path,
                                                                  capsys):
    out = tmp_path / "out"
    args = [str(hr_dir), "-o", str(out), "--model", str(ckpt), "--seed", "1"]
    assert _run(args, capsys)[0] == 0
    before = (out / "LR" / "c.png").read_bytes()
    (out / "HR" / "c.png").unlink()  # as if the run had stopped between the two files
    code, err = _run(args, capsys)
    assert code == 0
    assert "a.png: skipped" in err and "c.png: skipped" not in err
    assert "1 pairs written, 2 already finished" in err
    assert (out / "LR" / "c.png").read_bytes() == before  # the same pair again
    assert len(_manifest(out / "manifest.tsv")) == 4  # 3 + the redone one's new row
    code, err = _run(args + ["--overwrite"], capsys)
    assert "3 pairs written" in err and len(_manifest(out / "manifest.tsv")) == 3


def test_shards_are_disjoint_and_cover_the_inputs(ckpt, hr_dir, tmp_path, capsys,
                                                  monkeypatch):
    out = tmp_path / "out"
    args = [str(hr_dir), "-r", "-o", str(out), "--model", str(ckpt), "--seed", "2"]
    _run(args + ["--shard", "0/2"], capsys)
    monkeypatch.setenv("RANK", "1")  # torchrun's variables, picked up without --shard
    monkeypatch.setenv("WORLD_SIZE", "2")
    _run(args, capsys)
    first = {r["source"] for r in _manifest(out / "manifest.shard-0-of-2.tsv")}
    second = {r["source"] for r in _manifest(out / "manifest.shard-1-of-2.tsv")}
    assert first and second and not first & second
    assert first | second == {"a.png", "b.png", "c.png", "sub/d.png"}
    # a shard's pairs equal the unsharded run's
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    _run(args + ["-o", str(tmp_path / "whole")], capsys)
    for name in ("a.png", "sub/d.png"):
        np.testing.assert_array_equal(read_image(out / "LR" / name).rgb,
                                      read_image(tmp_path / "whole" / "LR" / name).rgb)
    with pytest.raises(ValueError, match="0 <= I < N"):
        Shard.parse("2/2")
    assert _run(args + ["--shard", "x"], capsys)[0] == 2


def test_lr_crop_cuts_aligned_patches(ckpt, hr_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code, _ = _run([str(hr_dir / "b.png"), "-o", str(out), "--model", str(ckpt),
                    "--lr-crop", "5", "--seed", "0"], capsys)
    assert code == 0
    whole = tmp_path / "whole"
    _run([str(hr_dir / "b.png"), "-o", str(whole), "--model", str(ckpt), "--seed", "0"],
         capsys)
    lr_full, hr_full = (read_image(whole / d / "b.png").rgb for d in ("LR", "HR"))
    boxes = list(patch_boxes(10, 16, 5))
    assert len(boxes) == 6
    rows = {r["pair"]: r for r in _manifest(out / "manifest.tsv")}
    for j, (y0, x0, y1, x1) in enumerate(boxes):
        lr = read_image(out / "LR" / f"b_p{j}.png").rgb
        hr = read_image(out / "HR" / f"b_p{j}.png").rgb
        np.testing.assert_array_equal(lr, lr_full[y0:y1, x0:x1])
        np.testing.assert_array_equal(hr, hr_full[4 * y0:4 * y1, 4 * x0:4 * x1])
        assert rows[f"b_p{j}"]["lr_box"] == f"{y0} {x0} {y1} {x1}"


def test_bad_inputs_fail_alone_and_leave_no_partial_pair(ckpt, hr_dir, shared, tmp_path,
                                                        capsys):
    d = tmp_path / "in"
    d.mkdir()
    for name in ("a.png", "b.png"):
        (d / name).write_bytes((hr_dir / name).read_bytes())
    (d / "broken.png").write_bytes((hr_dir / "c.png").read_bytes()[:200])
    Image.new("RGB", (6, 6)).save(d / "tiny.png")
    (d / "a.jpg").write_bytes((tmp_path / "in" / "a.png").read_bytes())  # a name clash
    out = tmp_path / "out"
    code, err = _run([str(d), "-o", str(out), "--model", str(ckpt)], capsys)
    assert code == 1
    failed = [line for line in err.splitlines() if "failed:" in line]
    assert len(failed) == 3
    assert any("broken.png" in line for line in failed)
    assert any("tiny.png" in line and "too small" in line for line in failed)
    assert not any("Traceback" in line for line in err.splitlines())
    assert sorted(p.name for p in (out / "LR").iterdir()) == ["a.png", "b.png"]
    assert sorted(p.name for p in (out / "HR").iterdir()) == ["a.png", "b.png"]
    assert _run([str(d), "-o", str(tmp_path / "o2"), "--tau", "nan", "--model", str(ckpt)],
                capsys)[0] == 2


def test_sixteen_bit_input_gives_sixteen_bit_pairs(ckpt, hr_dir, tmp_path, capsys):
    from sdflow.imageio import write_image

    src = read_image(hr_dir / "c.png").rgb.astype(np.uint16) * 257
    d = tmp_path / "in"
    d.mkdir()
    write_image(d / "deep.png", src)
    out = tmp_path / "out"
    assert _run([str(d), "-o", str(out), "--model", str(ckpt)], capsys)[0] == 0
    assert read_image(out / "LR" / "deep.png").rgb.dtype == np.uint16
    np.testing.assert_array_equal(read_image(out / "HR" / "deep.png").rgb, src[:36, :36])


def test_da_iccv21_makes_deterministic_pairs_and_a_file_without_g_t_is_refused(
        shared, tmp_path, capsys):
    from sdflow.models.da_iccv21 import DAICCV21, DAICCV21Config

    from helpers import without_g_t

    path = tmp_path / "da.safetensors"
    save(DAICCV21(DAICCV21Config.preset("tiny")), path)
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray((np.random.default_rng(0).random((40, 44, 3)) * 255).astype(np.uint8)
                    ).save(d / "a.png")
    code, err = _run([str(d), "-o", str(tmp_path / "o"), "--model", str(path), "--tau",
                      "0.8"], capsys)
    assert code == 2 and "deterministically" in err
    code, err = _run([str(d), "-o", str(tmp_path / "o"), "--model", str(path)], capsys)
    assert code == 0, err
    rows = _manifest(tmp_path / "o" / "manifest.tsv")
    assert len(rows) == 1 and rows[0]["tau"] == "0" and rows[0]["component"] == ""
    assert read_image(tmp_path / "o" / "LR" / "a.png").rgb.shape == (10, 11, 3)
    old = without_g_t(path, tmp_path / "old.safetensors")
    code, err = _run([str(d), "-o", str(tmp_path / "o2"), "--model", str(old)], capsys)
    assert code == 1 and "no downscaling part" in err and len(err.strip().splitlines()) == 1

"""Nothing the user already has is overwritten: a command never writes over one of its own
inputs, however the file is named (issue 24)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sdflow
from sdflow.cli import main
from sdflow.models import DAICCV21, DAICCV21Config


@pytest.fixture(scope="module")
def da_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "da.safetensors"
    torch.manual_seed(0)
    sdflow.save(DAICCV21(DAICCV21Config.preset("tiny")), path)
    return path


def _photo(folder, name="photo.png", size=(16, 20)):
    folder.mkdir(parents=True, exist_ok=True)
    arr = (np.random.default_rng(0).random((*size, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(folder / name)
    return folder / name


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("naming", ["relative", "absolute", "symlink", "hardlink"])
def test_sr_into_the_photos_own_folder_with_its_own_name_is_refused(da_ckpt, tmp_path,
                                                                     monkeypatch, capsys,
                                                                     naming):
    photo = _photo(tmp_path / "photos")
    before = _digest(photo)
    monkeypatch.chdir(tmp_path)
    if naming == "relative":
        source, out = "photos/photo.png", "photos"
    elif naming == "absolute":
        source, out = str(photo), str(tmp_path / "photos")
    elif naming == "symlink":  # the input named through a link in another folder
        (tmp_path / "links").mkdir()
        os.symlink(photo, tmp_path / "links" / "photo.png")
        source, out = str(tmp_path / "links" / "photo.png"), str(tmp_path / "photos")
    else:  # a hard link of the photo sits where the output would go
        (tmp_path / "elsewhere").mkdir()
        os.link(photo, tmp_path / "elsewhere" / "photo.png")
        source, out = str(photo), str(tmp_path / "elsewhere")
    code = main(["sr", source, "-o", out, "--model", str(da_ckpt), "--suffix", "",
                 "--overwrite"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "is the input" in err[0] and "-o" in err[0]
    assert _digest(photo) == before


def test_downscale_and_make_pairs_refuse_their_own_inputs(da_ckpt, tmp_path, capsys):
    photo = _photo(tmp_path / "p", size=(32, 32))
    before = _digest(photo)
    assert main(["downscale", str(photo), "-o", str(tmp_path / "p"), "--model",
                 str(da_ckpt), "--suffix", "", "--overwrite"]) == 2
    assert "is the input" in capsys.readouterr().err
    # an HR image that lives in the pair folder's own HR/ (e.g. made pairs used as input)
    out = tmp_path / "pairs"
    hr = _photo(out / "HR", "a.png", size=(32, 32))
    hr_before = _digest(hr)
    assert main(["make-pairs", str(hr), "-o", str(out), "--model", str(da_ckpt),
                 "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is the input" in err[0]
    assert _digest(hr) == hr_before and _digest(photo) == before


def test_another_output_folder_is_fine(da_ckpt, tmp_path):
    photo = _photo(tmp_path / "photos")
    assert main(["sr", str(photo), "-o", str(tmp_path / "out"), "--model", str(da_ckpt),
                 "--suffix", ""]) == 0
    assert Image.open(tmp_path / "out" / "photo.png").size == (80, 64)


def test_outputs_of_another_model_or_setting_are_not_taken_as_done(da_ckpt, tmp_path,
                                                                   capsys):
    """Output names hold task, tau and sample only: a rerun with another model, tau or
    outscale must not print 'skipped' and keep the first run's picture."""
    photo = _photo(tmp_path / "photos")
    other = tmp_path / "other.safetensors"
    torch.manual_seed(1)
    sdflow.save(DAICCV21(DAICCV21Config.preset("tiny"), seed=7), other)
    out = str(tmp_path / "out")
    assert main(["sr", str(photo), "-o", out, "--model", str(da_ckpt)]) == 0
    first = _digest(tmp_path / "out" / "photo_sr.png")
    capsys.readouterr()
    assert main(["sr", str(photo), "-o", out, "--model", str(da_ckpt)]) == 0  # same: skip
    assert "skipped" in capsys.readouterr().err
    assert main(["sr", str(photo), "-o", out, "--model", str(other)]) == 1
    err = capsys.readouterr().err
    assert "made by another model (da.safetensors)" in err
    assert "--overwrite" in err
    assert main(["sr", str(photo), "-o", out, "--model", str(da_ckpt), "-s", "2"]) == 1
    assert "other settings (outscale" in capsys.readouterr().err
    assert _digest(tmp_path / "out" / "photo_sr.png") == first
    assert main(["sr", str(photo), "-o", out, "--model", str(other), "--overwrite"]) == 0
    assert _digest(tmp_path / "out" / "photo_sr.png") != first


def test_a_second_job_into_a_busy_folder_is_refused_in_one_line(da_ckpt, tmp_path, capsys):
    """Two jobs into one folder would both do all the work and mix their sample sets; the
    second is refused while the first holds the folder (a lock another process holds)."""
    import subprocess
    import sys

    photo = _photo(tmp_path / "photos")
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from sdflow.inference.folders import claim_output_folder; "
         "cm = claim_output_folder(Path(sys.argv[1])); cm.__enter__(); print('held', "
         "flush=True); time.sleep(60)", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["sr", str(photo), "-o", str(out), "--model", str(da_ckpt)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "another sdflow job is writing into this folder" in err[0]
        assert main(["make-pairs", str(photo), "-o", str(out), "--model",
                     str(da_ckpt)]) == 0  # its own lock name: pairs may share a folder
        capsys.readouterr()
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its holder (even kill -9): the next job runs
    assert main(["sr", str(photo), "-o", str(out), "--model", str(da_ckpt)]) == 0
    assert (out / "photo_sr.png").is_file()


def test_a_header_claiming_more_pixels_than_memory_is_refused_before_decoding(tmp_path,
                                                                              monkeypatch):
    """A few hundred bytes may claim 20000x20000 pixels (the default --max-pixels itself):
    the memory that decoding needs is compared with what is available first."""
    import struct
    import zlib

    from sdflow import hardware
    from sdflow.imageio import ImageReadError, read_image

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)  # 8-bit RGB
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                     chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    assert bomb.stat().st_size < 1000
    monkeypatch.setattr(hardware, "available_ram", lambda: 8 * 2**30)  # an 8 GiB machine
    with pytest.raises(ImageReadError, match=r"20000x20000 pixels need about 11\.9 GiB"):
        read_image(bomb)


def test_odd_file_names_are_processed_not_fatal(da_ckpt, tmp_path, capsys):
    """A name that is not UTF-8 (old shares) and one whose output name would pass 255 bytes
    are processed with the rest of the batch; reruns find their outputs."""
    src = tmp_path / "in"
    _photo(src, "ok.png")
    _photo(src, os.fsdecode(b"caf\xe9.png"))
    _photo(src, "x" * 245 + ".png")
    out = tmp_path / "out"
    assert main(["sr", str(src), "-o", str(out), "--model", str(da_ckpt)]) == 0
    names = sorted(os.fsencode(p.name) for p in out.iterdir() if p.suffix == ".png")
    assert b"caf\xe9_sr.png" in names and b"ok_sr.png" in names
    long = [n for n in names if n.startswith(b"xxx")]
    assert len(long) == 1 and len(long[0]) <= 239 and b"~" in long[0]
    capsys.readouterr()
    assert main(["sr", str(src), "-o", str(out), "--model", str(da_ckpt)]) == 0
    assert "3 skipped" in capsys.readouterr().err
    pairs = tmp_path / "pairs"
    assert main(["make-pairs", str(src), "-o", str(pairs), "--model", str(da_ckpt)]) == 0
    manifest = (pairs / "manifest.tsv").read_text(encoding="utf-8")
    assert "caf\\xe9" in manifest
    assert main(["make-pairs", str(src), "-o", str(pairs), "--model", str(da_ckpt)]) == 0
    assert "3 already finished" in capsys.readouterr().err


def test_a_full_disk_stops_the_batch_in_one_line(da_ckpt, tmp_path, capsys, monkeypatch):
    import errno

    from sdflow import atomic

    src = tmp_path / "in"
    for name in ("a.png", "b.png", "c.png"):
        _photo(src, name)
    tries = []

    def replace(a, b):
        tries.append(b)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", replace)
    assert main(["sr", str(src), "-o", str(tmp_path / "out"), "--model", str(da_ckpt)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left on the disk" in err[0] and "free" in err[0]
    assert len(tries) == 1  # the batch stopped at the first full-disk failure
    assert not [p for p in (tmp_path / "out").iterdir()]  # no temporary files left


def test_a_full_disk_during_a_checkpoint_is_one_line(tmp_path, monkeypatch):
    """PyTorch reports ENOSPC as '[enforce fail at inline_container.cc] unexpected pos';
    with the disk nearly full that becomes sdflow's one line."""
    from collections import namedtuple

    from sdflow import atomic
    from sdflow.atomic import DiskFullError, write_atomic

    def torch_save(tmp):
        Path(tmp).write_bytes(b"x" * 1000)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4544")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: usage(10, 10, 2**20))
    with pytest.raises(DiskFullError, match=r"no space left on the disk \(1 MiB free"):
        write_atomic(tmp_path / "ckpt.pt", torch_save)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="unexpected pos"):  # plenty of space: not ours
        write_atomic(tmp_path / "ckpt.pt", torch_save)


def test_samples_that_cannot_fit_and_out_of_memory_are_one_line(da_ckpt, tmp_path, capsys,
                                                                 monkeypatch):
    """--samples N holds N full-size samples per image: refused up front when they cannot
    fit; an allocator failure anywhere names the options to lower (issue 24, item 10)."""
    from sdflow import hardware
    from sdflow.inference import batch
    from sdflow.models import SDFlow, SDFlowConfig

    photo = _photo(tmp_path / "p", size=(100, 100))
    ckpt = tmp_path / "sd.safetensors"
    monkeypatch.setattr(hardware, "available_ram", lambda: 64 * 2**20)  # a 64 MiB machine
    sdflow.save(SDFlow(SDFlowConfig.preset("lite", hr_steps=1, lr_steps=1, hf_steps=1,
                                           deg_steps=1, transition_steps=1)), ckpt)
    code = main(["sr", str(photo), "-o", str(tmp_path / "o"), "--model", str(ckpt),
                 "--samples", "30"])
    err = capsys.readouterr().err
    assert code == 1 and "30 samples of 400x400 need about" in err and "--samples" in err
    monkeypatch.undo()

    def oom(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 76800000000 bytes")

    monkeypatch.setattr(batch, "process", oom)
    assert main(["sr", str(photo), "-o", str(tmp_path / "o2"), "--model", str(da_ckpt)]) == 1
    err = capsys.readouterr().err
    assert "out of memory" in err and "lower --samples or --max-memory" in err


def test_a_killed_jobs_temporary_files_are_removed_by_the_next(da_ckpt, tmp_path):
    """kill -9 during a write leaves a hidden temporary file; the next job into the folder
    (which holds the folder lock, so nothing else writes there) removes it, and only such
    files: the user's own hidden files stay (issue 24, item 11)."""
    from sdflow.atomic import TEMP_MARK

    photo = _photo(tmp_path / "p")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    stale = [out / f".photo_sr{TEMP_MARK}k3x9_q2a.png", out / "sub" / f".b{TEMP_MARK}zz11aa00.json"]
    for path in stale:
        path.write_bytes(b"half a file")
    mine = [out / ".config.settings.json", out / ".photo.png"]
    for path in mine:
        path.write_bytes(b"the user's")
    assert main(["sr", str(photo), "-o", str(out), "--model", str(da_ckpt)]) == 0
    assert not any(path.exists() for path in stale)
    assert all(path.read_bytes() == b"the user's" for path in mine)

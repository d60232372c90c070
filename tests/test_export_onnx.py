"""``sdflow export --format onnx``: the exported graphs run in ONNX Runtime and equal what
``sdflow sr --tau 0`` / ``sdflow downscale`` write, on real images, at several sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sdflow.checkpoint import save
from sdflow.cli import main
from sdflow.export.onnx import ExportError, export_onnx
from sdflow.imageio import read_image
from sdflow.models import DAICCV21, DAICCV21Config

from helpers import tiny_model, without_g_t
from inference_helpers import one_thread, real_pixels

ort = pytest.importorskip("onnxruntime")
_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def checkpoints(shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    paths = {"sdflow": root / "sdflow.safetensors", "da": root / "da.safetensors"}
    save(tiny_model(shared), paths["sdflow"])
    torch.manual_seed(0)
    save(DAICCV21(DAICCV21Config.preset("tiny")), paths["da"])
    return paths


def _run(path, **feeds) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _to_input(arr: np.ndarray) -> np.ndarray:
    return (arr.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]


def _to_uint8(out: np.ndarray) -> np.ndarray:
    return np.round(out[0].transpose(1, 2, 0) * 255.0).astype(np.uint8)


@pytest.mark.slow  # over 10 s on 2 cores: run by .ci/run's second step
@pytest.mark.parametrize("which", ["sdflow", "da"])
def test_onnx_sr_equals_sdflow_sr_at_tau_0_on_a_real_image(shared, checkpoints, tmp_path,
                                                         capsys, which):
    onnx_path = tmp_path / "sr.onnx"
    check = tmp_path / "check.png"
    Image.fromarray(real_pixels(shared, 40, 40)).save(check)
    assert main(["export", str(checkpoints[which]), "--format", "onnx", "-o", str(onnx_path),
                 "--check-image", str(check)]) == 0
    line = capsys.readouterr().out
    assert "verified on a 40x40 crop of the check image" in line
    assert "max |onnxruntime - torch|" in line
    for h, w in ((20, 24), (13, 17)):  # dynamic height and width, odd sizes
        lr = real_pixels(shared, h, w, top=30)
        src = tmp_path / f"lr_{h}.png"
        Image.fromarray(lr).save(src)
        tau = [] if which == "da" else ["--tau", "0"]
        assert main(["sr", str(src), "-o", str(tmp_path / "cli"), "-n",
                     str(checkpoints[which]), "-t", "0", "--suffix", "", *tau]) == 0
        cli = read_image(tmp_path / "cli" / src.name).rgb.astype(int)
        feeds = {"image": _to_input(lr)}
        if which == "sdflow":
            feeds["noise"] = np.zeros((1, 45, h, w), np.float32)  # zeros = tau 0
        out = _run(onnx_path, **feeds)
        assert out.shape == (1, 3, 4 * h, 4 * w) and 0 <= out.min() and out.max() <= 1
        assert np.abs(_to_uint8(out).astype(int) - cli).max() <= 1  # within 1 grey level


@pytest.mark.slow  # over 10 s on 2 cores: run by .ci/run's second step
@pytest.mark.parametrize("which", ["sdflow", "da"])
def test_onnx_ds_equals_sdflow_downscale_with_the_same_component(shared, checkpoints,
                                                                 tmp_path, which):
    """SDFlow's DS graph takes image, noise and component; da-iccv21's (deterministic:
    bicubic x1/4, E, G_t) takes the image alone, as single-input runners call it."""
    onnx_path = tmp_path / "ds.onnx"
    assert main(["export", str(checkpoints[which]), "--format", "onnx", "--task", "ds",
                 "-o", str(onnx_path)]) == 0
    hr = real_pixels(shared, 48, 64)
    src = tmp_path / "hr.png"
    Image.fromarray(hr).save(src)
    sampling = ["--tau", "0", "--component", "3"] if which == "sdflow" else []
    assert main(["downscale", str(src), "-o", str(tmp_path / "cli"), "-n",
                 str(checkpoints[which]), *sampling, "-t", "0", "--suffix", ""]) == 0
    cli = read_image(tmp_path / "cli" / "hr.png").rgb.astype(int)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    if which == "sdflow":
        out = _run(onnx_path, image=_to_input(hr), noise=np.zeros((1, 12, 6, 8), np.float32),
                   component=np.array([3], np.int64))
    else:  # exactly the call a single-input runner (chaiNNer) makes
        assert len(session.get_inputs()) == 1
        out = session.run(None, {session.get_inputs()[0].name: _to_input(hr)})[0]
    assert out.shape == (1, 3, 12, 16)
    assert np.abs(_to_uint8(out).astype(int) - cli).max() <= 1


def test_onnx_export_refusals_are_one_line(checkpoints, tmp_path, capsys):
    # a da-iccv21 file from sdflow 0.1 has no G_t: it cannot downscale
    old = without_g_t(checkpoints["da"], tmp_path / "old_da.safetensors")
    assert main(["export", str(old), "--format", "onnx", "--task", "ds",
                 "-o", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot downscale" in err[0]
    assert not (tmp_path / "x.onnx").exists()
    existing = tmp_path / "there.onnx"
    existing.write_bytes(b"keep me")
    assert main(["export", str(checkpoints["da"]), "--format", "onnx", "-o",
                 str(existing)]) == 1
    assert "--overwrite" in capsys.readouterr().err and existing.read_bytes() == b"keep me"
    with pytest.raises(ExportError, match="too small"):
        export_onnx(DAICCV21(DAICCV21Config.preset("tiny")), tmp_path / "y.onnx",
                    check_image=np.zeros((1, 1, 3), np.uint8))


@pytest.mark.slow  # over 10 s on 2 cores: run by .ci/run's second step
@pytest.mark.parametrize("which", ["sdflow", "da"])
def test_onnxruntime_backend_gives_the_torch_outputs(shared, checkpoints, tmp_path,
                                                     monkeypatch, capsys, which):
    """Tiled, several samples with one noise field per image: the same pixels as the
    PyTorch backend within 1 grey level; the graph is exported once and cached."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    src = tmp_path / "lr.png"
    Image.fromarray(real_pixels(shared, 22, 26)).save(src)
    sampling = ["--samples", "2", "--seed", "3", "--uncertainty"] if which == "sdflow" else []
    common = [str(src), "-n", str(checkpoints[which]), "-t", "16", *sampling]
    for backend in ("onnxruntime", "torch", "onnxruntime"):
        assert main(["sr", *common, "-o", str(tmp_path / backend), "--backend", backend,
                     "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert err.count("exporting the SR graph for onnxruntime once") == 1  # then cached
    names = sorted(p.name for p in (tmp_path / "torch").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "onnxruntime").iterdir())
    for name in names:
        a = np.asarray(Image.open(tmp_path / "torch" / name)).astype(int)
        b = np.asarray(Image.open(tmp_path / "onnxruntime" / name)).astype(int)
        assert np.abs(a - b).max() <= 1, name
    assert main(["sr", *common, "-o", str(tmp_path / "x"), "--backend", "onnxruntime",
                 "--precision", "bf16"]) == 2
    assert "fp32 on the CPU" in capsys.readouterr().err


@pytest.mark.slow  # over 10 s on 2 cores: run by .ci/run's second step
def test_one_input_sr_graph_at_tau_0_runs_as_chainner_calls_it(shared, checkpoints, tmp_path):
    """`--tau 0` bakes the mode in: one input, and exactly the call single-input runners
    make gives `sdflow sr --tau 0`'s pixels (issue 21, item 2)."""
    onnx_path = tmp_path / "one.onnx"
    assert main(["export", str(checkpoints["sdflow"]), "--format", "onnx", "--tau", "0",
                 "-o", str(onnx_path)]) == 0
    lr = real_pixels(shared, 20, 24, top=30)
    src = tmp_path / "lr.png"
    Image.fromarray(lr).save(src)
    assert main(["sr", str(src), "-o", str(tmp_path / "cli"), "-n", str(checkpoints["sdflow"]),
                 "-t", "0", "--suffix", "", "--tau", "0"]) == 0
    cli = read_image(tmp_path / "cli" / src.name).rgb.astype(int)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    out = session.run(None, {session.get_inputs()[0].name: _to_input(lr)})[0]
    assert np.abs(_to_uint8(out).astype(int) - cli).max() <= 1


@pytest.mark.slow
def test_one_input_sr_graph_at_tau_draws_its_noise_in_the_graph(checkpoints, tmp_path, capsys):
    onnx_path = tmp_path / "t.onnx"
    assert main(["export", str(checkpoints["sdflow"]), "--format", "onnx", "--tau", "0.8",
                 "-o", str(onnx_path)]) == 0
    assert "samples differ" in capsys.readouterr().out
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 16, 20), dtype=np.float32)
    a, b = (session.run(None, {session.get_inputs()[0].name: x})[0] for _ in range(2))
    assert a.shape == (1, 3, 64, 80) and np.abs(a - b).max() > 0


def test_tau_is_refused_where_it_means_nothing(checkpoints, tmp_path, capsys):
    for args in (["--tau", "0.5"], ["--tau", "-1", "--task", "sr"]):
        model = checkpoints["da"] if args[1] == "0.5" else checkpoints["sdflow"]
        assert main(["export", str(model), "--format", "onnx", *args, "-o",
                     str(tmp_path / "x.onnx")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--tau" in err[0]


def test_a_damaged_onnx_cache_is_rebuilt_not_fatal(checkpoints, tmp_path, monkeypatch, capsys):
    """A truncated or foreign file where the cached graph should be is exported again, with
    one note (it broke --backend onnxruntime for good with a traceback; issue 24, item 11)."""
    from sdflow.checkpoint import file_sha256
    from sdflow.export.onnxruntime_backend import cache_dir
    from sdflow.version import __version__

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sha = file_sha256(checkpoints["da"], length=64)
    cached = cache_dir() / f"{sha[:16]}-sr-sdflow{__version__}.onnx"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"not an onnx graph")
    src = tmp_path / "a.png"
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(src)
    assert main(["sr", str(src), "-o", str(tmp_path / "o"), "--model", str(checkpoints["da"]),
                 "--backend", "onnxruntime"]) == 0
    err = capsys.readouterr().err
    assert "does not load" in err and "exporting it again" in err
    assert cached.stat().st_size > 1000 and (tmp_path / "o" / "a_sr.png").is_file()

"""``sdflow demo``: the work layer on arrays, and the page in headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdflow.demo import DemoSession
from sdflow.errors import SDFlowError
from sdflow.imageio import read_image

SR_MODEL = "sdflow-lite-realsr-x4"
DA_MODEL = "da-iccv21-realsr-x4"


@pytest.fixture(scope="module")
def photo(shared, tmp_path_factory) -> Path:
    """A 40x32 crop of a real LR photo."""
    src = Image.open(shared / "data" / "RealSR_x4" / "val" / "LR" / "Canon_031.png")
    path = tmp_path_factory.mktemp("demo") / "photo.png"
    src.convert("RGB").crop((100, 60, 140, 92)).save(path)
    return path


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> DemoSession:
    return DemoSession([SR_MODEL, DA_MODEL], device="cpu",
                       workdir=tmp_path_factory.mktemp("demo-work"))


def test_sr_samples_seed_reference_uncertainty_and_files(session, photo):
    res = session.run(photo, SR_MODEL, "sr", tau=0.8, samples=3, seed=7)
    assert len(res.samples) == 3 and res.samples[0].shape == (128, 160, 3)
    assert res.reference.shape == (128, 160, 3) and res.uncertainty.shape == (128, 160, 3)
    assert res.seed == 7 and "seed 7" in res.summary and "tau 0.8" in res.summary
    assert not np.array_equal(res.samples[0], res.samples[1])  # one-to-many
    # the files are the pipeline's outputs, named as sdflow sr names them
    assert [f.name for f in res.files] == [f"photo_sr_t0.80_s{i}.png" for i in range(3)]
    np.testing.assert_array_equal(read_image(res.files[1]).rgb, res.samples[1])
    again = session.run(photo, SR_MODEL, "sr", tau=0.8, samples=3, seed=7)
    np.testing.assert_array_equal(again.samples[2], res.samples[2])  # the seed reproduces
    other = session.run(photo, SR_MODEL, "sr", tau=0.8, samples=1, seed=None)
    assert other.seed is not None and f"seed {other.seed}" in other.summary


def test_tau_zero_is_the_latent_mode_and_ds_takes_a_component(session, photo):
    a = session.run(photo, SR_MODEL, "sr", tau=0.0, samples=1, seed=1)
    b = session.run(photo, SR_MODEL, "sr", tau=0.0, samples=1, seed=2)
    np.testing.assert_array_equal(a.samples[0], b.samples[0])
    ds = session.run(photo, SR_MODEL, "ds", tau=0.8, samples=2, seed=3, component=1)
    assert ds.samples[0].shape == (8, 10, 3) and ds.components == [1, 1]
    assert "component 1, 1" in ds.summary
    assert session.facts(SR_MODEL).components > 1


def test_deterministic_model_ignores_tau_and_seed(session, photo):
    facts = session.facts(DA_MODEL)
    assert facts.tasks == ("sr", "ds") and not facts.stochastic["sr"]
    res = session.run(photo, DA_MODEL, "sr", tau=0.8, samples=4, seed=5)
    assert len(res.samples) == 1 and res.seed is None and "deterministic" in res.summary
    assert [f.name for f in res.files] == ["photo_sr.png"]


def test_bad_requests_are_one_line_errors(session, photo, tmp_path):
    with pytest.raises(SDFlowError, match="unknown model"):
        session.run(photo, "no-such-model", "sr", 0.8)
    with pytest.raises(SDFlowError, match="tau must be in"):
        session.run(photo, SR_MODEL, "sr", 5.0)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(SDFlowError, match="broken.png"):
        session.run(broken, SR_MODEL, "sr", 0.8)


# ----------------------------------------------------------------- the page in a browser
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(_chromium() is None,
                    reason="headless Chromium is not installed (Debian package 'chromium'; "
                    ".ci/run installs it)")
def test_page_in_headless_chromium(session, photo, tmp_path):
    """Open the page, drop an image, move tau with the mouse, resample: a new image each
    time, the seed shown, no console error, and no request leaving this machine."""
    pytest.importorskip("gradio")
    sync_api = pytest.importorskip("playwright.sync_api")
    from sdflow.demo import launch

    app, url = launch(session, port=_free_port(), block=False, default_model=SR_MODEL)
    errors, outside = [], []
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def route(r):
                if r.request.url.startswith(("http://127.0.0.1", "http://localhost", "data:",
                                             "blob:")):
                    return r.continue_()
                outside.append(r.request.url)
                return r.abort()

            page.route("**/*", route)
            page.goto(url)
            summary = page.locator("#summary textarea")

            def wait_summary(previous: str) -> str:
                page.wait_for_function(
                    "([el, prev]) => el.value.includes('seed') && el.value !== prev",
                    arg=[summary.element_handle(), previous], timeout=120_000)
                return summary.input_value()

            def shown() -> str:
                return page.locator("#gallery img").first.get_attribute("src")

            page.locator("#input-image input[type=file]").set_input_files(str(photo))
            first = wait_summary("")
            assert "tau 0.8" in first and "sdflow-lite-realsr-x4" in first
            image_1 = shown()

            # move tau with the mouse: drag the slider's thumb to the left end
            box = page.locator("#tau input[type=range]").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.66, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + 1, box["y"] + box["height"] / 2, steps=5)
            page.mouse.up()
            second = wait_summary(first)
            assert "tau 0 ·" in second, second
            assert shown() != image_1

            seed_before = page.locator("#seed input").input_value()
            page.locator("#resample").click()
            third = wait_summary(second)
            assert page.locator("#seed input").input_value() != seed_before or \
                third != second
            assert page.locator("#compare img").count() >= 1
            shot = os.environ.get("SDFLOW_DEMO_SCREENSHOT")
            page.screenshot(path=shot or str(tmp_path / "demo.png"), full_page=True)
            browser.close()
    finally:
        app.close()
    assert not errors, errors
    assert not outside, f"the page fetched from outside this machine: {outside}"


def test_without_gradio_the_command_says_how_to_install(monkeypatch, capsys):
    import sys

    from sdflow.cli import main
    from sdflow.demo import DemoInstallError, require_gradio

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    with pytest.raises(DemoInstallError, match=r"pip install 'sdflow\[demo\]'"):
        require_gradio()
    assert main(["demo", "--model", SR_MODEL, "--port", str(_free_port())]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sdflow demo: error: sdflow demo needs Gradio")


def test_a_bad_model_fails_in_one_line(capsys):
    from sdflow.cli import main

    assert main(["demo", "--model", "no-such-model"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-model" in err[0]

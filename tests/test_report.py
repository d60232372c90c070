"""The HTML report: self-contained, and every image renders in a real browser."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _evaldata import make_model, make_pairs, one_thread  # noqa: F401
from PIL import Image

import sdflow
from sdflow.cli import main
from sdflow.evaluation import EvalOptions, evaluate_ds, evaluate_sr
from sdflow.evaluation.report import ReportError, require_matplotlib, write_report

IMG_SRC = re.compile(r"<img\b[^>]*\bsrc='([^']*)'")
# Panels per image: LR nearest, bicubic, tau 0, tau 0.8 #1, #2, GT.
SR_PANELS = 6


@pytest.fixture(scope="module")
def sr_report(shared, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    data = make_pairs(shared, root / "data")
    model = sdflow.load(make_model(data, root / "m.safetensors"))
    options = EvalOptions(taus=(0.0, 0.8), samples=2, crop=64, weights_dir=shared / "weights")
    result = evaluate_sr(model, data / "LR", data / "HR", options)
    return write_report(result, root / "report")


def test_report_is_self_contained(sr_report):
    text = sr_report.read_text(encoding="utf-8")
    sources = IMG_SRC.findall(text)
    assert len(sources) == 1 + 2 * SR_PANELS  # the plot and two rows of crops
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as img:
            assert img.size[0] > 0
    assert "http://" not in text and "https://" not in text
    assert "τ=0.8 #2" in text and "Perception–distortion" in text


def test_ds_report_has_its_panels(shared, tmp_path):
    data = make_pairs(shared, tmp_path / "data")
    model = sdflow.load(make_model(data, tmp_path / "m.safetensors"))
    result = evaluate_ds(model, data / "HR", data / "LR",
                         EvalOptions(taus=(0.0,), samples=2, crop=64, lpips_net=None))
    text = write_report(result, tmp_path / "report").read_text(encoding="utf-8")
    for label in ("HR", "bicubic ×1/4", "τ=0 #1", "τ=0 #2", "real LR"):
        assert f"<figcaption>{label}</figcaption>" in text
    assert "LPIPS was not computed" in text


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


# Appended to a copy of the report: after the load event, record for every <img> whether it
# decoded (naturalWidth > 0), so --dump-dom shows it.
_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = document.createElement('pre');
  out.id = 'img-probe';
  out.textContent = JSON.stringify(imgs.map(function (i) {
    return [i.complete, i.naturalWidth, i.naturalHeight]; }));
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(_chromium() is None,
                    reason="headless Chromium is not installed (Debian package 'chromium'; "
                    ".ci/run installs it when apt-get is usable)")
def test_report_renders_in_headless_chromium(sr_report, tmp_path):
    page = tmp_path / "page.html"
    text = sr_report.read_text(encoding="utf-8")
    page.write_text(text.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
           "--dump-dom", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="img-probe">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"no probe output; chromium said: {proc.stderr[-2000:]}"
    images = json.loads(match.group(1))
    assert len(images) == len(IMG_SRC.findall(text)) == 1 + 2 * SR_PANELS
    assert all(done and w > 0 and h > 0 for done, w, h in images), images


def test_missing_matplotlib_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ReportError, match=r"sdflow\[report\]"):
        require_matplotlib()
    # The CLI refuses before evaluating anything.
    code = main(["eval", "bicubic", "--data", str(tmp_path / "nowhere"), "--report",
                 str(tmp_path / "r"), "--out", str(tmp_path / "o")])
    assert code == 1 and "matplotlib" in capsys.readouterr().err

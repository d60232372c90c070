"""A screenshot of ``sdflow demo`` for the docs, taken in headless Chromium (playwright).

    python scripts/demo_screenshot.py --image ../shared/data/RealSR_x4/train/LR/<name>.png \
        --out docs/figures/demo.png

Serves the page on a free local port, drops the image (a centre crop of ``--crop`` pixels),
sets ``--samples`` with the samples box and ``--tau``, runs, and saves the full page.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
from pathlib import Path

from PIL import Image

from sdflow.demo import DemoSession, launch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default="sdflow-lite-realsr-x4")
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--tau", type=float, default=0.8)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="sdflow-shot-"))
    img = Image.open(args.image).convert("RGB")
    left, top = (img.width - args.crop) // 2, (img.height - args.crop) // 2
    photo = work / args.image.name
    img.crop((left, top, left + args.crop, top + args.crop)).save(photo)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app, url = launch(DemoSession([args.model], device="cpu", workdir=work), port=port,
                      block=False)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"),
                                         args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            for elem, value in (("#samples", args.samples), ("#tau", args.tau)):
                box = page.locator(f"{elem} input[type=number]")
                box.fill(str(value))
                box.press("Enter")
            page.locator("#input-image input[type=file]").set_input_files(str(photo))
            page.wait_for_function("el => el.value.includes('seed')",
                                   arg=page.locator("#summary textarea").element_handle(),
                                   timeout=300_000)
            page.wait_for_selector("#uncertainty img", timeout=60_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        app.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""``sdflow demo``: the local page to explore SR and downscaling at a temperature."""

from __future__ import annotations

import argparse
import sys

from sdflow.errors import SDFlowError


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="explore SR and downscaling in the browser (local page)",
        description="Serve a local page (http://127.0.0.1:7860 by default) to open or drop "
        "an image, pick a model, move the temperature tau, resample, compare with bicubic, "
        "see the samples and their uncertainty map, and download the results. Works "
        "offline; needs the demo extra: pip install 'sdflow[demo]'.")
    p.add_argument("--model", action="append", default=None, metavar="NAME_OR_PATH",
                   help="a model to offer (repeat for several; default: every registered "
                   "model, the default SR model first)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1: this machine only; "
                   "0.0.0.0 serves the local network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--open", action="store_true", help="open the page in the browser")
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sdflow import registry
    from sdflow.demo import DemoSession, launch, require_gradio

    models = args.model
    if not models:
        first = registry.default_model("sr")
        models = [first] + [n for n in registry.available() if n != first]
    try:
        require_gradio()
        session = DemoSession(models, device=args.device)
        for name in models:
            session.model(name)  # a bad --model fails here, in one line
        print(f"sdflow demo: serving http://{args.host}:{args.port} (Ctrl-C to stop)",
              file=sys.stderr)
        launch(session, host=args.host, port=args.port, open_browser=args.open)
    except (SDFlowError, OSError) as exc:
        print(f"sdflow demo: error: {exc}", file=sys.stderr)
        return 1
    return 0

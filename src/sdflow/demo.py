"""``sdflow demo``: a local page to explore SR and downscaling at a temperature.

Two layers, so that the page stays thin:

- :class:`DemoSession` does the work on plain arrays, through the same tiled pipeline as
  ``sdflow sr`` / ``sdflow downscale`` (:func:`sdflow.inference.pipeline.process`): it
  loads registered models once, runs N samples at a temperature and seed, and returns the
  images to show (samples, a bicubic reference for the before/after slider, the
  uncertainty map) plus the files to download. It needs no Gradio and is tested as is.
- :func:`build_app` lays that out with Gradio's public components (an optional extra,
  ``pip install 'sdflow[demo]'``). Nothing is fetched at run time: the theme uses the
  system's fonts and analytics are off, so the page works offline.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sdflow import registry
from sdflow.errors import SDFlowError
from sdflow.imageio import (
    image_to_tensor,
    read_image,
    tensor_to_image,
    to_uint8,
    write_image,
)
from sdflow.inference.batch import open_model
from sdflow.inference.naming import output_names
from sdflow.inference.pipeline import process
from sdflow.inference.uncertainty import colormap, default_vmax
from sdflow.metrics.resize import imresize
from sdflow.models.base import SuperResolver, downscales, is_stochastic
from sdflow.models.sampling import default_tau
from sdflow.seeding import new_seed

TASK_LABELS = {"sr": "Super-resolve x4", "ds": "Downscale x1/4"}
MAX_SAMPLES = 4
MAX_TAU = 1.2


class DemoInstallError(SDFlowError):
    """Gradio (the ``demo`` extra) is not installed."""


@dataclass
class ModelFacts:
    """What the page needs to know about a model to offer the right controls."""

    name: str
    tasks: tuple[str, ...]
    stochastic: dict[str, bool]
    components: int  # DS mixture components (0: none to choose)


@dataclass
class DemoResult:
    """One run: ``samples`` (8-bit RGB for display), ``reference`` (bicubic at the output
    size: the 'before' of the slider), ``uncertainty`` (colour map, N >= 2), ``files``
    (full-fidelity PNGs to download) and a one-line ``summary`` (model, tau, seed, time)."""

    samples: list[np.ndarray]
    reference: np.ndarray
    uncertainty: np.ndarray | None
    files: list[Path]
    summary: str
    seed: int | None
    components: list[int | None] = field(default_factory=list)


def _display(arr: np.ndarray) -> np.ndarray:
    """Any pipeline output (gray, alpha, 16-bit) as 8-bit RGB for the page."""
    a = to_uint8(np.asarray(arr))
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] in (1, 2):
        a = np.repeat(a[..., :1], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


class DemoSession:
    """Models loaded once per process; one call per button press or tau change."""

    def __init__(self, models: list[str] | None = None, device: str = "auto",
                 workdir: str | Path | None = None) -> None:
        self.names = list(models) if models else registry.available()
        if not self.names:
            raise SDFlowError("no model to show: none is registered; pass --model CHECKPOINT")
        self.device = device
        self._loaded: dict[str, Any] = {}
        self._workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="sdflow-demo-"))

    def model(self, name: str):
        if name not in self.names:
            raise SDFlowError(f"unknown model {name!r}; choose one of {', '.join(self.names)}")
        if name not in self._loaded:
            model, _ = open_model(registry.resolve(name), self.device)
            self._loaded[name] = model
        return self._loaded[name]

    def facts(self, name: str) -> ModelFacts:
        model = self.model(name)
        tasks = tuple(t for t, ok in (("sr", isinstance(model, SuperResolver)),
                                      ("ds", downscales(model))) if ok)
        deg_prior = getattr(model, "deg_prior", None)
        k = int(deg_prior.num_components) if is_stochastic(model, "ds") and \
            deg_prior is not None else 0
        return ModelFacts(name, tasks, {t: is_stochastic(model, t) for t in ("sr", "ds")}, k)

    def run(self, image_path: str | Path, model_name: str, task: str, tau: float | None,
            samples: int = 1, seed: int | None = None, component: int | None = None,
            progress=None) -> DemoResult:
        """Run ``task`` on the image file; ``seed`` None draws one (shown on the page).
        ``progress(done, total)`` is called per tile."""
        if task not in TASK_LABELS:
            raise SDFlowError(f"task must be one of {', '.join(TASK_LABELS)}, got {task!r}")
        model = self.model(model_name)
        facts = self.facts(model_name)
        if task not in facts.tasks:
            raise SDFlowError(f"{model_name} cannot {TASK_LABELS[task].lower()}; pick "
                              f"another model or task")
        loaded = read_image(image_path)
        stochastic = facts.stochastic[task]
        if stochastic:
            tau = default_tau(True, task) if tau is None else float(tau)
            if not 0.0 <= tau <= MAX_TAU:
                raise SDFlowError(f"tau must be in 0..{MAX_TAU}, got {tau}")
            samples = max(1, min(int(samples), MAX_SAMPLES))
            seed = new_seed() if seed is None else int(seed)
            generator = torch.Generator().manual_seed(seed)
        else:
            tau, samples, seed, generator, component = 0.0, 1, None, None, None
        if component is not None and not 0 <= component < max(facts.components, 1):
            raise SDFlowError(f"component must be in 0..{facts.components - 1}")
        result = process(model, loaded, task, tau=tau, num_samples=samples,
                         generator=generator, component=component,
                         want_uncertainty=samples >= 2, progress=progress)
        x = image_to_tensor(loaded.rgb)
        out_h, out_w = result.outputs[0].shape[:2]
        reference = tensor_to_image(imresize(x.double(), size=(out_h, out_w)).float())
        comps = [s.component for s in result.samples]
        rel = Path(Path(loaded.name).name)
        names = output_names(rel, task, tau, comps, "png", deterministic=not stochastic)
        folder = Path(tempfile.mkdtemp(dir=self._workdir))
        record = {"sdflow:model": model_name, "sdflow:task": task, "sdflow:tau": f"{tau:g}",
                  "sdflow:seed": "" if seed is None else str(seed)}
        files = [write_image(folder / n.name, out, pnginfo=record)
                 for n, out in zip(names, result.outputs, strict=True)]
        unc = None
        if result.uncertainty is not None:
            unc = colormap(result.uncertainty, default_vmax(result.uncertainty))
        parts = [model_name, TASK_LABELS[task], f"{out_w}x{out_h}"]
        if stochastic:
            parts += [f"tau {tau:g}", f"seed {seed}", f"{samples} sample(s)"]
            if task == "ds" and any(k is not None for k in comps):
                parts.append("component " + ", ".join(str(k) for k in comps))
        else:
            parts.append("deterministic")
        parts.append(f"{result.seconds:.1f} s, {result.tiles} tile(s)")
        return DemoResult([_display(o) for o in result.outputs], _display(reference), unc,
                          files, " · ".join(parts), seed, comps)


# ------------------------------------------------------------------------ the Gradio page
def require_gradio():
    try:
        import gradio as gr
    except ImportError as exc:
        raise DemoInstallError("sdflow demo needs Gradio: pip install 'sdflow[demo]' "
                               f"(importing it failed: {exc})") from None
    return gr


def offline_theme(gr):
    """Gradio's default look with the system's fonts: nothing loaded from the internet."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


def build_app(session: DemoSession, default_model: str | None = None):
    """The page: image in; model, task, tau, samples, seed, component; a before/after
    slider against bicubic, the samples, the uncertainty map, the files."""
    gr = require_gradio()
    first = default_model if default_model in session.names else session.names[0]
    facts0 = session.facts(first)

    def controls(name: str, task: str):
        facts = session.facts(name)
        task = task if task in facts.tasks else facts.tasks[0]
        stochastic = facts.stochastic[task]
        comps = ["any"] + [str(k) for k in range(facts.components)]
        return (gr.update(choices=[(TASK_LABELS[t], t) for t in facts.tasks], value=task),
                gr.update(interactive=stochastic, value=default_tau(stochastic, task)),
                gr.update(interactive=stochastic),
                gr.update(interactive=stochastic),
                gr.update(choices=comps, value="any",
                          visible=task == "ds" and facts.components > 0))

    def run(image, name, task, tau, samples, seed, component, new_seed, progress):
        if image is None:
            raise gr.Error("Open or drop an image first.")
        comp = None if component in (None, "", "any") else int(component)
        use_seed = None if new_seed or seed in (None, "") else int(seed)
        try:
            res = session.run(image, name, task, tau, int(samples), use_seed, comp,
                              progress=lambda done, total: progress((done, total),
                                                                    desc="tiles"))
        except (SDFlowError, ValueError, OSError) as exc:
            raise gr.Error(str(exc)) from None
        gallery = [(img, f"sample {i}") for i, img in enumerate(res.samples)]
        return ((res.reference, res.samples[0]), gallery,
                gr.update(value=res.uncertainty, visible=res.uncertainty is not None),
                [str(f) for f in res.files], res.summary,
                gr.update(value=res.seed if res.seed is not None else 0))

    with gr.Blocks(title="sdflow demo", analytics_enabled=False) as app:
        gr.Markdown("## sdflow: super-resolution and realistic downscaling at a temperature\n"
                    "Open or drop an image. Each run draws new samples at the temperature "
                    "tau; *Resample* draws a new seed, *Run* keeps the one shown.")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label="input", type="filepath", elem_id="input-image",
                                 sources=["upload", "clipboard"])
                model = gr.Dropdown(choices=session.names, value=first, label="model",
                                    elem_id="model")
                task = gr.Radio(choices=[(TASK_LABELS[t], t) for t in facts0.tasks],
                                value=facts0.tasks[0], label="task", elem_id="task")
                stochastic0 = facts0.stochastic[facts0.tasks[0]]
                tau = gr.Slider(0.0, MAX_TAU, value=default_tau(stochastic0, facts0.tasks[0]),
                                step=0.05, label="temperature tau", elem_id="tau",
                                interactive=stochastic0)
                samples = gr.Slider(1, MAX_SAMPLES, value=1, step=1, label="samples",
                                    elem_id="samples", interactive=stochastic0)
                seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed",
                                 interactive=stochastic0)
                component = gr.Dropdown(choices=["any"], value="any",
                                        label="DS mixture component", visible=False,
                                        elem_id="component")
                with gr.Row():
                    run_button = gr.Button("Run", variant="primary", elem_id="run")
                    resample = gr.Button("Resample", elem_id="resample")
            with gr.Column(scale=2):
                compare = gr.ImageSlider(label="bicubic | model", elem_id="compare",
                                         type="numpy")
                summary = gr.Textbox(label="what ran", interactive=False, elem_id="summary")
                gallery = gr.Gallery(label="samples", columns=MAX_SAMPLES, height=320,
                                     object_fit="contain", elem_id="gallery")
                unc = gr.Image(label="uncertainty (std over samples; yellow = samples differ)",
                               visible=False, height=320, elem_id="uncertainty")
                files = gr.File(label="download", file_count="multiple", elem_id="files")

        inputs = [image, model, task, tau, samples, seed, component]
        outputs = [compare, gallery, unc, files, summary, seed]
        model.change(controls, [model, task], [task, tau, samples, seed, component])
        task.change(controls, [model, task], [task, tau, samples, seed, component])

        # Gradio finds the progress tracker by a parameter's default value, so each event
        # gets a named function with it in its signature.
        tracker = gr.Progress()

        def same_seed(image, name, task, tau, samples, seed, component, progress=tracker):
            return run(image, name, task, tau, samples, seed, component, False, progress)

        def new_seed(image, name, task, tau, samples, seed, component, progress=tracker):
            return run(image, name, task, tau, samples, seed, component, True, progress)

        run_button.click(same_seed, inputs, outputs)
        resample.click(new_seed, inputs, outputs)
        tau.release(same_seed, inputs, outputs)
        image.upload(new_seed, inputs, outputs)
    return app


def launch(session: DemoSession, *, host: str = "127.0.0.1", port: int | None = None,
           open_browser: bool = False, default_model: str | None = None,
           block: bool = True):
    """Serve the page; returns ``(app, url)``. ``block=False`` returns at once (tests)."""
    gr = require_gradio()
    app = build_app(session, default_model)
    app.queue(default_concurrency_limit=1)  # one job at a time: the CPU is the limit
    _, url, _ = app.launch(server_name=host, server_port=port, inbrowser=open_browser,
                           share=False, prevent_thread_lock=not block, quiet=True,
                           show_error=True, theme=offline_theme(gr), footer_links=[])
    return app, url

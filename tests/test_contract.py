"""The model contract: one-way imports, capabilities as protocols (isinstance, not
attribute probing), a ``forward`` on every model, tensors-only methods beside the image
API."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sdflow
from sdflow.models import (
    ARCHITECTURES,
    DAICCV21,
    DAICCV21Config,
    GaussianDownscaler,
    GaussianFitConfig,
    SDFlow,
    SDFlowConfig,
)
from sdflow.models.base import (
    DensityModel,
    Downscaler,
    LatentModel,
    StochasticDS,
    StochasticSR,
    SuperResolver,
    downscales,
    is_stochastic,
)

from inference_helpers import real_pixels

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_graph() -> dict[str, set[str]]:
    """sdflow module -> the sdflow modules it imports, anywhere in the file (imports
    inside functions count: a lazy import hides a cycle, it does not remove it)."""
    files = {}
    for path in (SRC / "sdflow").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path

    def owner(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]
            for target in targets:
                found = owner(target) if target.startswith("sdflow") else None
                if found and found != module:
                    graph[module].add(found)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_in_sdflow():
    graph = _module_graph()
    # the walk sees module-level, relative-free and lazy (function-level) imports
    assert "sdflow.inference.batch" in graph["sdflow.cli._inference"]
    assert "sdflow.models" in graph["sdflow.checkpoint"]  # imported inside save()
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_capabilities_are_protocols_of_each_architecture():
    sd, da = SDFlow(SDFlowConfig.preset("tiny")), DAICCV21(DAICCV21Config.preset("tiny"))
    for proto in (SuperResolver, StochasticSR, Downscaler, StochasticDS, LatentModel,
                  DensityModel):
        assert isinstance(sd, proto)
    assert isinstance(da, SuperResolver) and isinstance(da, Downscaler)  # deterministic
    assert not any(isinstance(da, p) for p in (StochasticSR, StochasticDS, LatentModel,
                                                DensityModel))
    gf = GaussianDownscaler(GaussianFitConfig(sigma=1.5))
    assert isinstance(gf, Downscaler) and isinstance(gf, StochasticDS)
    assert not any(isinstance(gf, p) for p in (SuperResolver, LatentModel, DensityModel))
    for model, sr, ds in ((sd, True, True), (da, False, False), (gf, False, True)):
        assert is_stochastic(model, "ds") is ds and downscales(model)
        if isinstance(model, SuperResolver):
            assert is_stochastic(model, "sr") is sr
    for arch in ARCHITECTURES.values():  # checkable on the class, before building
        assert issubclass(arch.model_cls, (SuperResolver, Downscaler))


def test_forward_is_sr_with_an_explicit_latent(shared):
    torch.manual_seed(0)
    model = SDFlow(SDFlowConfig.preset("tiny")).eval()
    y = torch.from_numpy(real_pixels(shared, 12, 10)).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        assert torch.equal(model(y), model.sr(y, tau=0.0))
        eps = torch.randn(model.sr_latent_shape(12, 10), generator=torch.Generator().manual_seed(1))
        assert torch.allclose(model(y, 0.7 * eps), model.sr(y, tau=0.7, noise=eps), atol=1e-6)
        da = DAICCV21(DAICCV21Config.preset("tiny")).eval()
        assert torch.equal(da(y), da.sr(y))


def test_model_methods_take_tensors_and_the_image_api_takes_images(shared):
    model = SDFlow(SDFlowConfig.preset("tiny")).eval()
    image = Image.fromarray(real_pixels(shared, 8, 8))
    for method, api in ((model.sr, "super_resolve"), (model.downscale, "downscale")):
        with pytest.raises(TypeError, match=f"sdflow.{api}"):
            method(image)
    sr = sdflow.super_resolve(model, image, seed=0)
    assert isinstance(sr, Image.Image) and sr.size == (32, 32)
    again = sdflow.super_resolve(model, image, seed=0)
    assert np.array_equal(np.asarray(sr), np.asarray(again))
    lrs = sdflow.downscale(model, np.asarray(sr), num_samples=2, seed=0)
    assert len(lrs) == 2 and lrs[0].shape == (8, 8, 3)
    with pytest.raises(ValueError, match="seed= or generator="):
        sdflow.super_resolve(model, image, seed=0, generator=torch.Generator())


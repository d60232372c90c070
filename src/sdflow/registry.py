"""Named, pretrained sdflow models shipped inside the package.

A registered model is a checkpoint file in ``sdflow/weights/`` plus what is known about it
(sha256, training data, licence). ``sdflow sr --model NAME`` and :func:`resolve` accept a
registered name, a checkpoint path or a model folder (:mod:`sdflow.model_folder`);
:func:`load` loads any of them and checks the sha256 of registered files and folders.
Nothing is ever downloaded.

To ship a trained model: copy its ``.safetensors`` into ``src/sdflow/weights/`` and add one
:class:`RegisteredModel` to :data:`MODELS` (``sha256`` from ``sha256sum``); set
:data:`DEFAULT_MODEL` to make it the default of ``--model``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sdflow.checkpoint import file_sha256
from sdflow.errors import CheckpointError
from sdflow.model_folder import CONFIG_NAME, verify_folder

WEIGHTS_PACKAGE = "sdflow"
WEIGHTS_DIR = "weights"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    filename: str  # inside sdflow/weights/
    sha256: str  # full hex digest of the file
    trained_on: str
    description: str = ""
    license: str = ""


#: Every registered model by name.
MODELS: dict[str, RegisteredModel] = {
    "sdflow-lite-realsr-x4": RegisteredModel(
        name="sdflow-lite-realsr-x4",
        filename="sdflow_lite_realsr_x4.safetensors",
        sha256="d8149ad4ba0c03d05932e0f5887cc6649fff60bc0a64fae02a7c1a3c1aa40278",
        trained_on="RealSR V3 x4, unpaired: train/LR + train/LR_full (LR) and train/HR (HR) "
                   "of the RealSR x4 split in sdflow's shared data",
        description="SDFlow, lite preset with the lifting predict step (1.43 M parameters), "
                    "the degradation anchor (loss.degradation_blur auto: a Gaussian camera "
                    "blur of 1.775 HR pixels fitted to the training folders by unpaired "
                    "statistics) and unpaired power-spectrum matching of its downscaling "
                    "(loss.spectrum, last in luma and colour differences, without the DS "
                    "perceptual term), x4; five legs of sdflow train --preset cpu_x4, 10000 "
                    "iterations, 10.93 CPU-hours recorded (2026-12-06/07, docs/training.md). "
                    "RealSR x4 val: DS tau 0 32.86 dB / LPIPS 0.056 vs the real LR (bicubic "
                    "30.69, gaussian-fit 32.22), noise 1.35 and blur 0.289 (real 1.35 / "
                    "0.310); SR tau 0 26.91 dB / SSIM 0.7677 / LPIPS 0.351, tau 0.8 LPIPS "
                    "0.339 (bicubic 27.00 / 0.7772 / 0.455).",
        license="MIT (weights); trained on RealSR images, which are for research use only",
    ),
    "da-iccv21-realsr-x4": RegisteredModel(
        name="da-iccv21-realsr-x4",
        filename="da_iccv21_realsr_x4.safetensors",
        sha256="d697db81645d78f62b1c33f255e990fcb7222ff11642f99783675e4c4e5d317c",
        trained_on="RealSR V3 x4, unpaired: train/LR + train/LR_full (target LR) and "
                   "train/HR (source HR) of the RealSR x4 split in sdflow's shared data",
        description="da-iccv21 (our re-implementation of Wang et al., ICCV 2021), lite "
                    "preset, E + G_SR + G_t (0.74 M parameters), x4, deterministic SR and "
                    "downscaling; sdflow train --preset da_cpu_x4 in two legs, 7600 "
                    "iterations, 3.60 CPU-hours (docs/domain-adaptation.md). RealSR x4 val: "
                    "SR 27.41 dB / SSIM 0.7951 / LPIPS 0.372 (bicubic 27.00 / 0.7772 / "
                    "0.455); DS vs the real LR 30.63 dB (bicubic 30.69: G_t reproduces "
                    "bicubic).",
        license="MIT (weights); trained on RealSR images, which are for research use only",
    ),
    "gaussian-fit-realsr-x4": RegisteredModel(
        name="gaussian-fit-realsr-x4",
        filename="gaussian_fit_realsr_x4.safetensors",
        sha256="97ecc2a119e8d5e42dd583fb2b3f587c5b735d4953ef1d105f1b772236753307",
        trained_on="RealSR V3 x4, unpaired: train/LR + train/LR_full (real LR, 60 images) "
                   "and train/HR (30 other scenes)",
        description="gaussian-fit, the parametric baseline downscaler: Gaussian blur sigma "
                    "1.773 HR pixels (the colour differences 2.635, the real LR's colour "
                    "detail) before MATLAB bicubic x1/4 and 0.02 grey levels of white noise "
                    "(the blurred images already have the real LR's noise floor); fitted by "
                    "sdflow fit-degradation from unpaired statistics in 28 s on 2 CPU cores. "
                    "RealSR x4 val DS vs the real LR: 32.22 dB (bicubic 30.69).",
        license="MIT; fitted to statistics of RealSR images (research use only)",
    ),
}

#: The name ``--model`` defaults to (None: the user must pass --model): the registered
#: model that is best on RealSR x4 val at SR (README). Downscaling needs a model with a
#: downscaling direction; its default is the best of those.
DEFAULT_MODEL: str | None = "da-iccv21-realsr-x4"
DEFAULT_DOWNSCALE_MODEL: str | None = "sdflow-lite-realsr-x4"
TASKS = ("sr", "ds")
#: The downscaler ``sdflow eval ds`` scores beside bicubic unless told otherwise.
DEFAULT_DS_BASELINE = "gaussian-fit-realsr-x4"


def default_model(task: str = "sr") -> str | None:
    """The default registered model for ``task`` ("sr" or "ds")."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return DEFAULT_MODEL if task == "sr" else DEFAULT_DOWNSCALE_MODEL


class ModelNotFoundError(CheckpointError):
    """``--model`` names neither a checkpoint file nor a registered model."""


def available() -> list[str]:
    """Names of the registered models."""
    return sorted(MODELS)


def weights_dir() -> Path:
    return Path(str(resources.files(WEIGHTS_PACKAGE) / WEIGHTS_DIR))


def _names_hint() -> str:
    names = available()
    return ("registered models: " + ", ".join(names)) if names else \
        "no models are registered yet; pass a checkpoint path (sdflow convert / sdflow train)"


@dataclass(frozen=True)
class ResolvedModel:
    """Where a ``--model`` value points: the file, a display name, and the registry entry
    (None for a plain path)."""

    path: Path
    name: str
    entry: RegisteredModel | None


def resolve(name_or_path: str | os.PathLike | None, task: str = "sr") -> ResolvedModel:
    """A checkpoint path, a model folder (``sdflow export``) or a registered name ->
    :class:`ResolvedModel`; None: the default model for ``task``. Paths win over names
    (anything with a path separator or an existing file is a path; so is an existing folder,
    unless it is named like a registered model and has no config.json). A model folder
    resolves to its ``model.safetensors`` once verified."""
    if name_or_path is None or str(name_or_path) == "":
        default = default_model(task)
        if default is None:
            raise ModelNotFoundError(f"no model given: pass --model CHECKPOINT or a "
                                     f"registered name ({_names_hint()})")
        name_or_path = default
    text = str(name_or_path)
    path = Path(text).expanduser()
    looks_like_path = os.sep in text or "/" in text or path.suffix == ".safetensors"
    if path.is_dir():
        if looks_like_path or text not in MODELS or (path / CONFIG_NAME).is_file():
            folder = verify_folder(path)  # sha256 and config.json checked here
            return ResolvedModel(folder.weights_path, path.resolve().name, None)
    if path.is_file():
        return ResolvedModel(path, path.name, None)
    if not looks_like_path and text in MODELS:
        entry = MODELS[text]
        file = weights_dir() / entry.filename
        if not file.is_file():
            raise ModelNotFoundError(f"registered model {text!r}: its file {file} is missing "
                                     "from the installation; reinstall sdflow")
        return ResolvedModel(file, text, entry)
    if looks_like_path:
        raise ModelNotFoundError(f"{text}: no such checkpoint file")
    raise ModelNotFoundError(f"{text!r} is neither a checkpoint file nor a registered "
                             f"model ({_names_hint()})")


def sha256_of(resolved: ResolvedModel) -> str:
    """Full sha256 of the model file, checked against the registry for registered models."""
    digest = file_sha256(resolved.path, length=64)
    if resolved.entry is not None and digest != resolved.entry.sha256.lower():
        raise CheckpointError(f"registered model {resolved.name!r}: {resolved.path} has "
                              f"sha256 {digest}, expected {resolved.entry.sha256}; the file "
                              "is corrupt or was replaced, reinstall sdflow")
    return digest


def load(name_or_path: str | os.PathLike | None = None, device="cpu", dtype=None,
         task: str = "sr"):
    """Load a registered model (sha256 checked), a checkpoint path or a model folder
    (verified), in eval mode (``sdflow.load``). Without a name: the default model for
    ``task``."""
    import torch

    from sdflow.checkpoint import load as load_checkpoint

    resolved = resolve(name_or_path, task)
    sha256_of(resolved)
    return load_checkpoint(resolved.path, device=device, dtype=dtype or torch.float32)

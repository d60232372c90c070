"""torch.hub entry points: the registered sdflow models.

    model = torch.hub.load("path/to/sdflow", "sdflow_lite_realsr_x4", source="local")

One entry per model of ``sdflow.registry.MODELS`` (its name with ``_`` for ``-``), written
out rather than generated so that ``torch.hub.list`` / ``help`` read this file without
importing sdflow. The weights ship inside the repository (``src/sdflow/weights``), so
nothing is downloaded; each entry returns the model in eval mode, sha256-checked.
"""

from __future__ import annotations

import os
import sys

# What loading a model imports (torch.hub checks these are installed before any entry runs).
dependencies = ["torch", "safetensors", "numpy", "tqdm"]

# Only modules and the entries are public names here: torch.hub lists every public callable.
_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")


def _sdflow():
    """The sdflow package of this checkout.

    ``src/`` goes on ``sys.path`` only inside the entry functions, only while ``sdflow`` is
    first imported, and is then taken off again: importing hubconf (``torch.hub.list``)
    changes nothing for the caller, this checkout's code is what loads this checkout's
    weights even when another sdflow is installed, and later imports of sdflow's
    submodules go through the package's own ``__path__``. If the caller has imported
    sdflow already, that package is used as it is.
    """
    if "sdflow" not in sys.modules and os.path.isdir(_SRC):
        sys.path.insert(0, _SRC)
        try:
            import sdflow
        finally:
            sys.path.remove(_SRC)
    import sdflow

    return sdflow


def _load(name: str, device: str):
    return _sdflow().load(name, device=device)


def sdflow_lite_realsr_x4(device: str = "cpu"):
    """SDFlow (Sun & Chen, TPAMI 2024), lite preset with the predict step and the
    degradation anchor, 1.43 M parameters: x4 SR (stochastic, ``model.sr(y, tau=...)``) and
    realistic /4 downscaling (``model.downscale``), trained unpaired on RealSR x4 (registered
    ``sdflow-lite-realsr-x4``). ``device``: where to put it."""
    return _load("sdflow-lite-realsr-x4", device)


def da_iccv21_realsr_x4(device: str = "cpu"):
    """da-iccv21 (our re-implementation of Wang et al., ICCV 2021), 0.74 M parameters:
    deterministic x4 SR (``model.sr(y)``) and downscaling (``model.downscale(x)``: G_t),
    trained unpaired on RealSR x4 (registered
    ``da-iccv21-realsr-x4``; sdflow's default SR model). ``device``: where to put it."""
    return _load("da-iccv21-realsr-x4", device)


def gaussian_fit_realsr_x4(device: str = "cpu"):
    """gaussian-fit, the parametric baseline downscaler: Gaussian blur (sigma 1.773 HR
    pixels) before bicubic x1/4, fitted to RealSR x4's real LR by unpaired statistics
    (registered ``gaussian-fit-realsr-x4``; ``model.downscale(x)``). ``device``: where to
    put it."""
    return _load("gaussian-fit-realsr-x4", device)

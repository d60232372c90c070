"""sdflow models in spandrel (the loader chaiNNer and ComfyUI use for SR checkpoints).

    import spandrel, sdflow.export.spandrel as sdflow_spandrel
    sdflow_spandrel.register()            # adds SDFlow and da-iccv21 to spandrel's registry
    model = spandrel.ModelLoader().load_from_file("sdflow_lite_realsr_x4.safetensors")
    sr = model(image)                     # [1, 3, H, W] in [0, 1] -> [1, 3, 4H, 4W]

spandrel reads only the tensors of a file, not sdflow's header, so the architecture and its
sizes are detected from the key names and shapes (``config_from_state_dict`` of each
model). The descriptor runs SR at tau 0 (the latent mode; the same graph as
``sdflow export --format onnx --tau 0``): spandrel's interface is one image in, one image
out. Sampling at a temperature, downscaling and the DS mixture need sdflow itself.

Needs the ``spandrel`` extra (spandrel imports torchvision: install a torch/torchvision
pair built together).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from sdflow.errors import SDFlowError
from sdflow.export.onnx import SRGraph
from sdflow.models import da_iccv21, sdflow

#: A key only each architecture's state dict has (with the others checked in ``detect``).
_SDFLOW_KEYS = ("hr_flow.split.flow.cond_net.conv_in.weight", "deg_prior.means",
                "content_extractor.head.0.weight", "lr_flow.steps.layers.0.invconv.upper")
_DA_KEYS = ("encoder.head.weight", "sr_decoder.conv_first.weight",
            "sr_decoder.conv_last.weight", "sr_decoder.upconvs.0.weight")


class SpandrelMissingError(SDFlowError):
    """spandrel (the ``spandrel`` extra) is not installed or does not import."""


def require_spandrel():
    try:
        import spandrel
    except ImportError as exc:
        raise SpandrelMissingError(
            "the spandrel integration needs spandrel: pip install 'sdflow[spandrel]' with a "
            f"torch/torchvision pair built together (importing it failed: {exc})") from None
    return spandrel


def _architectures(spandrel) -> list:
    """The two spandrel ``Architecture`` classes (built here: spandrel is optional)."""

    class _SRArchitecture(spandrel.Architecture):
        def __init__(self, arch_id: str, name: str, keys: tuple[str, ...],
                     build: Callable[[dict], nn.Module], tags: Callable[[nn.Module], list[str]]):
            super().__init__(id=arch_id, name=name,
                             detect=lambda state: all(k in state for k in keys))
            self._build = build
            self._tags = tags

        def load(self, state_dict):
            model = self._build(state_dict)  # the descriptor loads state_dict into it
            return spandrel.ImageModelDescriptor(
                model, state_dict, architecture=self, purpose="SR", tags=self._tags(model),
                # both run (the invertible 1x1 convolutions solve in float32) and stay
                # within 1 grey level on average of float32 (tests/test_spandrel.py)
                supports_half=True, supports_bfloat16=True,
                scale=model.scale, input_channels=3, output_channels=3,
                size_requirements=spandrel.SizeRequirements(minimum=2),
                tiling=spandrel.ModelTiling.SUPPORTED,
                call_fn=lambda m, image: SRGraph(m, tau=0.0)(image))

    def build_sdflow(state):
        return sdflow.SDFlow(sdflow.config_from_state_dict(state))

    def build_da(state):
        model = da_iccv21.DAICCV21(da_iccv21.config_from_state_dict(state))
        if "lr_decoder.head.weight" not in state:  # an sdflow 0.1 file: SR part only
            model.lr_decoder = None
        return model

    def sdflow_tags(model) -> list[str]:
        c = model.config
        return [f"{c.hr_steps}x{c.coupling_hidden} steps", f"{c.mixture_components} comps",
                "tau 0"]

    def da_tags(model) -> list[str]:
        c = model.config
        return [f"{c.sr_blocks}rrdb", f"{c.sr_channels}nf"]

    return [_SRArchitecture("SDFlow", "SDFlow", _SDFLOW_KEYS, build_sdflow, sdflow_tags),
            _SRArchitecture("DA-ICCV21", "da-iccv21", _DA_KEYS, build_da, da_tags)]


def register(registry=None) -> None:
    """Add SDFlow and da-iccv21 to spandrel's ``MAIN_REGISTRY`` (or ``registry``); calling
    it again changes nothing."""
    spandrel = require_spandrel()
    target = registry if registry is not None else spandrel.MAIN_REGISTRY
    target.add(*(spandrel.ArchSupport.from_architecture(a) for a in _architectures(spandrel)),
               ignore_duplicates=True)

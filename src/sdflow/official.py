"""Read the authors' released SDFlow weights (four PyTorch state-dict files) into our model.

The authors' files: ``lrencoder.pth`` (E), ``hrnet.pth`` (HR flow with the HF flow),
``contentnet.pth`` (LR flow), ``degnet.pth`` (degradation flow and mixture). They are read
with ``weights_only=True`` (no pickled code runs) and cast from any float dtype to float32.
Key names are translated by the rules below; every key must be used exactly once.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sdflow.errors import CheckpointError
from sdflow.models import SDFlow, SDFlowConfig

OFFICIAL_FILES = {
    "lrencoder.pth": "content_extractor.",
    "hrnet.pth": "hr_flow.",
    "contentnet.pth": "lr_flow.",
    "degnet.pth": "",
}

# Derived buffers of the authors' 1x1 conv that our layer computes itself.
_DERIVED = re.compile(r"\.(u_mask|l_mask|l_eye)$")

_FLOW_STEP = [
    (r"\.(?:permute|inv_conv)\.w_p$", ".invconv.perm"),
    (r"\.(?:permute|inv_conv)\.w_l$", ".invconv.lower"),
    (r"\.(?:permute|inv_conv)\.w_u$", ".invconv.upper"),
    (r"\.(?:permute|inv_conv)\.w_s$", ".invconv.log_abs_diag"),
    (r"\.(?:permute|inv_conv)\.s_sign$", ".invconv.sign_diag"),
    (r"\.affine_coulping\.", ".coupling."),
    (r"\.affine_injector\.", ".injector."),
    (r"\.net\.conv1\.conv2d\.", ".net.conv_in."),
    (r"\.net\.conv2\.conv2d\.", ".net.conv_mid."),
    (r"\.net\.conv3\.logs$", ".net.conv_out.log_scale"),
    (r"\.net\.conv3\.conv\.", ".net.conv_out.conv."),
]

_CONDITION_NET = [
    (r"cond_net\.(0\.)?in_conv\.1\.", r"cond_net.\1conv_in."),
    (r"cond_net\.(0\.)?trans\.1\.", r"cond_net.\1conv_trunk."),
    (r"cond_net\.(0\.)?out_conv\.1\.", r"cond_net.\1head.0."),
    (r"cond_net\.(0\.)?out_conv\.4\.", r"cond_net.\1head.2."),
    (r"\.RDB(\d)\.", r".rdb\1."),
]

_RULES: dict[str, list[tuple[str, Any]]] = {
    "lrencoder.pth": [
        (r"^in_conv\.1\.", "head.0."),
        (r"^out_conv\.1\.", "tail.0."),
        (r"^out_conv\.3\.", "tail.2."),
        (r"^trunk\.(\d+)\.fm(\d)\.log_scale$", r"trunk.\1.mod\2.log_kappa"),
        (r"^trunk\.(\d+)\.fm(\d)\.affine\.", r"trunk.\1.mod\2.proj."),
        (r"^trunk\.(\d+)\.conv(\d)\.1\.", r"trunk.\1.conv\2."),
        # Sequential(pad, conv, act) x 8 -> Sequential(conv, act) x 8
        (r"^mf_conv\.(\d+)\.", lambda m: f"modulation.{2 * (int(m.group(1)) // 3)}."),
    ],
    "hrnet.pth": [
        (r"^blocks\.(\d+)\.squeeze_transition\.transitions\.", r"levels.\1.transition_in.layers."),
        (r"^blocks\.(\d+)\.steps\.", r"levels.\1.steps.layers."),
        (r"^blocks\.\d+\.split\.conditional_flow\.additional_flow_steps\.",
         "split.flow.steps.layers."),
        (r"^blocks\.\d+\.split\.conditional_flow\.cond_net\.", "split.flow.cond_net."),
        *_CONDITION_NET,
        *_FLOW_STEP,
    ],
    "contentnet.pth": [
        (r"^blocks\.0\.squeeze_transition\.transitions\.", "transition_in.layers."),
        (r"^blocks\.0\.expand_transition\.transitions\.", "transition_out.layers."),
        (r"^blocks\.0\.steps\.", "steps.layers."),
        *_FLOW_STEP,
    ],
    "degnet.pth": [
        (r"^means$", "deg_prior.means"),
        (r"^log_stds$", "deg_prior.log_stds"),
        (r"^deg_net\.squeeze_transition\.transitions\.", "deg_flow.transition.layers."),
        (r"^deg_net\.additional_flow_steps\.", "deg_flow.steps.layers."),
        (r"^deg_net\.cond_net\.", "deg_flow.cond_net."),
        *_CONDITION_NET,
        *_FLOW_STEP,
    ],
}


def translate_key(file_name: str, key: str) -> str:
    new = key
    for pattern, repl in _RULES[file_name]:
        new = re.sub(pattern, repl, new)
    return OFFICIAL_FILES[file_name] + new


def _check_derived(key: str, value: Tensor) -> None:
    """The authors' masks must be the standard LU masks, or the weights mean something else."""
    n = value.shape[0]
    ones = torch.ones(n, n)
    expected = {"l_mask": torch.tril(ones, -1), "u_mask": torch.triu(ones, 1),
                "l_eye": torch.eye(n)}[key.rsplit(".", 1)[1]]
    if not torch.equal(value.float().cpu(), expected):
        raise CheckpointError(f"{key}: unexpected LU mask; not an SDFlow 1x1-conv layout")


def _load_weights_only(path: Path) -> Any:
    """``torch.load(weights_only=True)``; a refusal or a corrupt file is a one-line
    :class:`CheckpointError` that never repeats torch's advice to turn weights_only off."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        error = CheckpointError(f"{path}: refused: it holds pickled objects other than "
                                "tensors (sdflow never runs code from a file); use the "
                                "authors' released state-dict files")
    except Exception:  # RuntimeError, EOFError, KeyError... for truncated or corrupt files
        error = CheckpointError(f"{path}: not a readable PyTorch weights file (truncated or "
                                "corrupt); download the authors' file again")
    raise error  # outside the except blocks: torch's message is not chained


def read_official(directory: str | os.PathLike) -> dict[str, Tensor]:
    """The four official state dicts, translated to our key names, floats as float32."""
    directory = Path(directory)
    state: dict[str, Tensor] = {}
    for file_name in OFFICIAL_FILES:
        path = directory / file_name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing; an authors' checkpoint directory holds "
                                  f"{', '.join(OFFICIAL_FILES)}")
        part = _load_weights_only(path)
        if isinstance(part, dict) and "state_dict" in part and isinstance(part["state_dict"], dict):
            part = part["state_dict"]
        if not isinstance(part, dict) or not all(isinstance(v, Tensor) for v in part.values()):
            raise CheckpointError(f"{path}: not a state dict of tensors; an authors' "
                                  f"checkpoint directory holds {', '.join(OFFICIAL_FILES)}")
        for key, value in part.items():
            key = key.removeprefix("module.")
            if _DERIVED.search(key):
                _check_derived(key, value)
                continue
            if value.is_floating_point():
                value = value.float()
            state[translate_key(file_name, key)] = value
    return state


def load_official(directory: str | os.PathLike, mixture_mode: str = "official") -> SDFlow:
    """Build the ``paper`` model from the authors' four files (eval mode, float32)."""
    model = SDFlow(SDFlowConfig.preset("paper", mixture_mode=mixture_mode), seed=None)
    state = read_official(directory)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{directory}: the authors' weights do not match the paper architecture "
            f"(missing {result.missing_keys[:5]}..., unexpected {result.unexpected_keys[:5]}...)")
    return model.eval()

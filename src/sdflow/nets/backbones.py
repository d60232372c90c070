"""ImageNet feature extractors (AlexNet and VGG16 ``features``) in plain torch.

The module layout and parameter names match torchvision's ``features`` (``features.N.weight``),
so the safetensors files of ``shared/weights`` load as they are. Used by LPIPS and by VGG
perceptual losses; both are frozen and kept in eval mode by their users.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sdflow.value_range import to_unit
from sdflow.weights import find_weights, load_weights_into

#: torchvision VGG16 ``features``: channel widths, "M" = 2x2 max-pool.
_VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                     512, 512, 512, "M", 512, 512, 512, "M")


def _vgg16_relu_names() -> dict[str, int]:
    """``"relu{block}_{conv}"`` -> index of that ReLU in ``features``."""
    names: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for item in _VGG16_CFG:
        if item == "M":
            index += 1
            block, conv = block + 1, 1
        else:
            names[f"relu{block}_{conv}"] = index + 1
            index += 2
            conv += 1
    return names


#: Named ReLU outputs of VGG16 (``relu1_1`` .. ``relu5_3``) and their ``features`` index.
VGG16_RELUS: dict[str, int] = _vgg16_relu_names()
#: Named ReLU outputs of AlexNet ``features``.
ALEXNET_RELUS: dict[str, int] = {"relu1": 1, "relu2": 4, "relu3": 7, "relu4": 9, "relu5": 11}

#: ImageNet normalisation of [0, 1] RGB input (what VGG perceptual losses use).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Features(nn.Module):
    """A ``features`` Sequential that returns the outputs of chosen layers."""

    features: nn.Sequential
    relu_names: dict[str, int]

    def forward(self, x: Tensor, layers: Sequence[str]) -> list[Tensor]:
        """Outputs of the named ReLUs, in the order asked; stops after the deepest one."""
        unknown = [n for n in layers if n not in self.relu_names]
        if unknown:
            raise ValueError(f"unknown layers {unknown}; choose from {list(self.relu_names)}")
        wanted = {self.relu_names[n]: n for n in layers}
        last = max(wanted)
        found: dict[str, Tensor] = {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in wanted:
                found[wanted[i]] = x
            if i == last:
                break
        return [found[n] for n in layers]

    def load_weights(self, path: str | os.PathLike) -> None:
        load_weights_into(self, path)

    def freeze(self) -> _Features:
        """No parameter gradients; eval mode. Gradients still flow to the input."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()


class AlexNetFeatures(_Features):
    """torchvision ``alexnet().features`` (ReLUs not in place, so taps stay intact)."""

    def __init__(self) -> None:
        super().__init__()
        self.relu_names = dict(ALEXNET_RELUS)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )

    @classmethod
    def pretrained(cls, weights_dir: str | os.PathLike | None = None) -> AlexNetFeatures:
        """ImageNet weights, found by :func:`sdflow.weights.find_weights`; frozen."""
        net = cls()
        net.load_weights(find_weights("alexnet", weights_dir))
        return net.freeze()


class VGG16Features(_Features):
    """torchvision ``vgg16().features`` (13 convs; ReLUs not in place)."""

    def __init__(self) -> None:
        super().__init__()
        self.relu_names = dict(VGG16_RELUS)
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*layers)

    @classmethod
    def pretrained(cls, weights_dir: str | os.PathLike | None = None) -> VGG16Features:
        """ImageNet weights, found by :func:`sdflow.weights.find_weights`; frozen."""
        net = cls()
        net.load_weights(find_weights("vgg16", weights_dir))
        return net.freeze()


class VGGPerceptualFeatures(nn.Module):
    """Frozen VGG16 features for perceptual losses: takes images in [-1, 1], applies the
    ImageNet mean/std normalisation of [0, 1] input and returns the chosen ReLU outputs."""

    def __init__(self, layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
                 weights_dir: str | os.PathLike | None = None,
                 vgg: VGG16Features | None = None):
        super().__init__()
        self.layers = tuple(layers)
        self.vgg = vgg if vgg is not None else VGG16Features.pretrained(weights_dir)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def train(self, mode: bool = True) -> VGGPerceptualFeatures:
        super().train(mode)
        self.vgg.eval()  # the backbone always stays in eval mode
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        x01 = to_unit(x)
        return self.vgg((x01 - self.mean) / self.std, self.layers)

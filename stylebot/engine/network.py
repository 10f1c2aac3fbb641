"""The network: the first five convolutions of VGG-19, built from the weights cache."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .weights import LAYER_SHAPES, load_state_dict

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "VGGFeatures", "load_network"]

# ImageNet statistics the VGG weights were trained with (inputs in 0..1, normalised per channel).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """conv1_1, conv1_2, pool, conv2_1, conv2_2, pool, conv3_1 of VGG-19 (named conv_1..conv_5).

    The cut after conv3_1 is the original bot's; deeper layers would see larger shapes but cost more per
    pixel, and the coarse-to-fine pyramid gives the large shapes more cheaply (see DESIGN.md).
    ``forward`` returns the five feature maps, either before ReLU (``taps="conv"``, as the tutorial) or after
    it (``taps="relu"``; then the ReLU runs in place and saves one activation copy per layer).
    """

    #: The network in three stages, cut at the two 2x2 poolings: conv_1-2 | pool, conv_3-4 | pool, conv_5.
    #: Strip tiling (see ``strips.py``) works stage by stage, because within a stage every feature map has
    #: the stage input's resolution and a receptive-field radius of at most 2 rows.
    STAGES = ((0, 1), (2, 3), (4,))
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        for i in range(1, 6):
            out_c, in_c, kh, kw = LAYER_SHAPES[f"conv_{i}.weight"]
            conv = nn.Conv2d(in_c, out_c, (kh, kw), padding=1)
            conv.weight.data.copy_(state[f"conv_{i}.weight"])
            assert conv.bias is not None
            conv.bias.data.copy_(state[f"conv_{i}.bias"])
            self.convs.append(conv)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def stage(
        self, s: int, x: torch.Tensor, taps: str = "relu", pool: str = "avg"
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Stage ``s`` on ``x``: (its feature maps, its pooled output, which is the next stage's input).

        Stage 0 takes the image (1, 3, H, W) in 0..1 and normalises it as in training (3 channels: fp32 is
        free). The last stage has no pooling; its "output" is its last feature map.
        """
        if s == 0:
            x = (x - self.mean) / self.std
        feats = []
        for i in self.STAGES[s]:
            x = self.convs[i](x)
            if taps == "conv":
                feats.append(x)
                x = F.relu(x)  # not in place: the pre-ReLU map is kept for the loss
            else:
                x = F.relu_(x)
                feats.append(x)
        if s < len(self.STAGES) - 1:
            x = (F.max_pool2d if pool == "max" else F.avg_pool2d)(x, 2)
        return feats, x

    def forward(self, x: torch.Tensor, taps: str = "relu", pool: str = "avg") -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        for s in range(len(self.STAGES)):
            f, x = self.stage(s, x, taps, pool)
            feats += f
        return feats


def load_network(weights: str | os.PathLike[str], device: torch.device) -> VGGFeatures:
    """The read-only network on ``device``. :raises WeightsError: missing, corrupt or foreign file."""
    return VGGFeatures(load_state_dict(weights)).to(device)

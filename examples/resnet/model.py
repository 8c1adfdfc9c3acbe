"""A small ResNet-style CNN with depthwise-separable residual blocks (an example for structured pruning).

Input ``[N, 1, 16, 16]`` (the digits upsampled 2x, see ``data.py``), output 10 logits.

* stem: 3x3 conv 1 -> 32, BatchNorm, ReLU (16x16);
* stage 1: two basic residual blocks (two 3x3 convs each, identity shortcuts), 32 channels (16x16);
* stage 2: two depthwise-separable residual blocks (3x3 depthwise + 1x1 pointwise, twice), 64 channels,
  the first with stride 2 and a 1x1 projection shortcut (8x8);
* stage 3: the same with 128 channels (4x4);
* global average pooling, then a linear classifier.

The identity shortcuts tie the channels of the stem and both stage-1 blocks together, and each depthwise conv
ties its channels to the pointwise conv before it: structured pruning must remove channels from whole coupled
groups at once, which is what torch-pruning's dependency graph does.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 10
IMAGE_SIZE = 16


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


class SeparableBlock(nn.Module):
    """Depthwise 3x3 + pointwise 1x1, twice; a 1x1 projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.dw1 = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pw1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.dw2 = nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.pw2 = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn4 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn2(self.pw1(torch.relu(self.bn1(self.dw1(x))))))
        out = self.bn4(self.pw2(torch.relu(self.bn3(self.dw2(out)))))
        return torch.relu(out + self.shortcut(x))


class ResNetDW(nn.Module):
    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128), num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.stem = nn.Sequential(nn.Conv2d(1, w1, 3, padding=1, bias=False), nn.BatchNorm2d(w1), nn.ReLU())
        self.stage1 = nn.Sequential(BasicBlock(w1), BasicBlock(w1))
        self.stage2 = nn.Sequential(SeparableBlock(w1, w2, stride=2), SeparableBlock(w2, w2))
        self.stage3 = nn.Sequential(SeparableBlock(w2, w3, stride=2), SeparableBlock(w3, w3))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a (N, 1, 16, 16) batch to (N, 10) logits."""
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def build_model() -> nn.Module:
    """A freshly initialised :class:`ResNetDW` (seeded, so every call builds the same weights)."""
    torch.manual_seed(0)
    return ResNetDW()

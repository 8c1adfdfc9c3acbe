"""A Linear-heavy, transformer-shaped classifier for weight-only quantization (examples, tests, benchmarks).

``x [N, 1, 8, 8]`` (the digits images, or any 64 features) -> flatten -> ``proj`` Linear(64, width) -> ``blocks``:
an ``nn.ModuleList`` of pre-norm residual MLP blocks (LayerNorm, Linear(width, width), ReLU, Linear(width, width))
-> LayerNorm -> ``head`` Linear(width, 10).

With the defaults (width 512, 2 blocks) it holds four 512x512 Linear layers: 1.1M parameters, 4.4 MB in float32,
97% of them in Linear weights. The blocks sit in an ``nn.ModuleList`` as in a transformer, which INC's GPTQ and AWQ
need (they calibrate block by block).

Factories: ``build_model`` (random init, seed 0: deterministic), ``build_small`` (width 128, for quick tests);
``train(model, x, y)`` fits one on the digits in a few seconds.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(self.norm(x))))


class LinearStack(nn.Module):
    def __init__(self, width: int = 512, blocks: int = 2, features: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.proj = nn.Linear(features, width)
        self.blocks = nn.ModuleList([Block(width) for _ in range(blocks)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x.flatten(1))
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))


def build_model() -> nn.Module:
    torch.manual_seed(0)
    return LinearStack()


def build_small() -> nn.Module:
    torch.manual_seed(0)
    return LinearStack(width=128)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 8, seed: int = 0) -> nn.Module:
    """Adam, batch 64, cosine decay: about 97-98% on the digits' held-out split for the default model."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = epochs * ((len(x) + 63) // 64)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            index = order[start : start + 64]
            loss = nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()

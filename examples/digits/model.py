"""Small CNN for scikit-learn's 8x8 digits dataset (bundled example model).

Architecture: two 3x3 conv blocks (Conv2d + BatchNorm2d + ReLU, padding 1),
1 -> 32 -> 64 channels, a 2x2 max-pool after the second block, then
flatten -> Linear(1024, 128) -> ReLU -> Linear(128, 10) logits.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 10
IMAGE_SIZE = 8


class DigitsCNN(nn.Module):
    """Two conv blocks followed by a two-layer MLP head; outputs 10 logits."""

    def __init__(
        self,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 128,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3, padding=1),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        flat = c2 * (IMAGE_SIZE // 2) ** 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a (N, 1, 8, 8) float batch in [0, 1] to (N, 10) logits."""
        return self.classifier(self.features(x))


def build_model() -> nn.Module:
    """Return a freshly initialised :class:`DigitsCNN` with default sizes."""
    return DigitsCNN()

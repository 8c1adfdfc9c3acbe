"""Train the ResNet-style example briefly on the digits (upsampled to 16x16) and save its weights.

    python examples/resnet/train.py [--epochs 6] [--out examples/resnet/resnet.safetensors]

Deterministic (fixed seeds, one thread). Takes about half a minute on 2 cores and reaches about 98% test accuracy;
the benchmark (``benchmarks/pruning.py``) calls :func:`train` into a temporary folder, so nothing needs to be
committed. The data comes from ``data.py`` (scikit-learn's digits, the same split as the digits CNN).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import data  # noqa: E402
from model import build_model  # noqa: E402

SEED = 0
BATCH_SIZE = 64
LR = 3e-3


def accuracy(model: nn.Module, split: dict[str, np.ndarray]) -> float:
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(split["input"])).argmax(dim=1).numpy()
    return float((predicted == split["labels"]).mean())


def train(out: Path, epochs: int = 6, log=print) -> tuple[Path, float]:  # type: ignore[no-untyped-def]
    """Train from the seeded initialisation and save the state dict to ``out``; returns (path, test accuracy)."""
    torch.manual_seed(SEED)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model()
        split = data.train()
        x, y = torch.from_numpy(split["input"]), torch.from_numpy(split["labels"])
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        steps = -(-len(x) // BATCH_SIZE)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=epochs * steps)
        generator = torch.Generator().manual_seed(SEED)
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(x), generator=generator)
            total = 0.0
            for start in range(0, len(x), BATCH_SIZE):
                index = order[start : start + BATCH_SIZE]
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x[index]), y[index])
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item() * len(index)
            log(f"epoch {epoch + 1}/{epochs}: train loss {total / len(x):.4f}")
        model.eval()
        out.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
        return out, accuracy(model, data.test())
    finally:
        torch.set_num_threads(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=HERE / "resnet.safetensors")
    args = parser.parse_args()
    started = time.perf_counter()
    path, acc = train(args.out, args.epochs)
    print(f"wrote {path} in {time.perf_counter() - started:.1f} s; test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()

"""Train the bundled digits example model and export its artifacts.

Run from anywhere (e.g. the repo root)::

    python examples/digits/train.py

Writes next to this file:

* ``digits_cnn.onnx``         - ONNX model (input ``input`` [batch,1,8,8], output ``logits``)
* ``digits_cnn.safetensors``  - trained ``state_dict``
* ``calib.npz``               - 256 training samples (``input``, ``labels``) for calibration
* ``test.npz``                - the held-out split (``input``, ``labels``)

Training is deterministic (fixed seeds, deterministic algorithms, fixed split).
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from model import build_model  # noqa: E402

SEED = 0
EPOCHS = 6
BATCH_SIZE = 64
LR = 2e-3
TEST_SIZE = 0.2
CALIB_SIZE = 256

ONNX_PATH = HERE / "digits_cnn.onnx"
WEIGHTS_PATH = HERE / "digits_cnn.safetensors"
CALIB_PATH = HERE / "calib.npz"
TEST_PATH = HERE / "test.npz"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; use deterministic, single-threaded kernels."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    # Float reduction order depends on the intra-op thread count; pin it so the
    # artifacts are byte-identical regardless of how many cores the host has.
    torch.set_num_threads(1)


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x_train, y_train, x_test, y_test); x is float32 (N,1,8,8) in [0,1]."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=TEST_SIZE, stratify=y, random_state=SEED)
    return x_train, y_train, x_test, y_test


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on numpy arrays."""
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    return float((pred == y).mean())


def train(model: nn.Module, x: np.ndarray, y: np.ndarray) -> None:
    """Train ``model`` in place with Adam on (x, y) for ``EPOCHS`` epochs."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), BATCH_SIZE):
            idx = perm[i : i + BATCH_SIZE]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{EPOCHS}: train loss {total / len(xt):.4f}")


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Export ``model`` to a single-file ONNX model with a symbolic batch dim."""
    model.eval()
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        external_data=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        verbose=False,
    )
    # The exporter stores a stack trace per node; the example ships without them.
    model_proto = onnx.load(str(path))
    for node in model_proto.graph.node:
        del node.metadata_props[:]
    onnx.save_model(model_proto, str(path))


def ort_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the ONNX model at ``path`` under ONNX Runtime (CPU)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(["logits"], {"input": x})
    return float((logits.argmax(axis=1) == y).mean())


def main() -> None:
    """Train, evaluate, export and report."""
    seed_everything(SEED)
    x_train, y_train, x_test, y_test = load_data()
    print(f"train {x_train.shape}, test {x_test.shape}")

    model = build_model()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params}")

    start = time.perf_counter()
    train(model, x_train, y_train)
    print(f"training took {time.perf_counter() - start:.1f} s")

    torch_acc = accuracy(model, x_test, y_test)
    print(f"torch test accuracy: {torch_acc:.4f}")

    model.eval()
    save_file(model.state_dict(), str(WEIGHTS_PATH))
    export_onnx(model, torch.from_numpy(x_test[:2]), ONNX_PATH)

    calib_idx = np.random.default_rng(SEED).choice(len(x_train), CALIB_SIZE, replace=False)
    calib_idx.sort()
    np.savez_compressed(CALIB_PATH, input=x_train[calib_idx], labels=y_train[calib_idx])
    np.savez_compressed(TEST_PATH, input=x_test, labels=y_test)

    with np.load(TEST_PATH) as test:
        onnx_acc = ort_accuracy(ONNX_PATH, test["input"], test["labels"])
    print(f"onnxruntime test accuracy: {onnx_acc:.4f}")
    if onnx_acc != torch_acc:
        raise SystemExit(f"accuracy mismatch: torch {torch_acc} vs onnxruntime {onnx_acc}")

    total = 0
    for path in (ONNX_PATH, WEIGHTS_PATH, CALIB_PATH, TEST_PATH):
        size = path.stat().st_size
        total += size
        print(f"{path.name}: {size / 1024:.1f} KiB")
    print(f"total: {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()

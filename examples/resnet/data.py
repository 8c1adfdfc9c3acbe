"""The digits data for the torch examples, as ``module.py:function`` datasets (no files needed).

scikit-learn's 8x8 digits, split exactly as ``examples/digits/train.py`` splits them (80/20, stratified,
seed 0): 1437 training and 360 test images, pixels scaled to [0, 1].

* ``train_8x8`` / ``test_8x8``: for the digits CNN (input ``[N, 1, 8, 8]``);
* ``train`` / ``test`` / ``calib``: upsampled to 16x16 (nearest neighbour, each pixel repeated 2x2) for the
  ResNet-style CNN, which needs a few stride-2 stages of spatial extent.

Use them anywhere a dataset is accepted, e.g. ``--data examples/resnet/data.py:train``.
"""

from __future__ import annotations

import functools

import numpy as np

SEED = 0
TEST_SIZE = 0.2
CALIB_SIZE = 256


@functools.cache
def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=TEST_SIZE, stratify=y, random_state=SEED)
    return x_train, y_train, x_test, y_test


def upsample(images: np.ndarray, factor: int = 2) -> np.ndarray:
    """Nearest-neighbour upsampling of [N, C, H, W] images."""
    return images.repeat(factor, axis=2).repeat(factor, axis=3)


def train_8x8() -> dict[str, np.ndarray]:
    x, y, _, _ = _split()
    return {"input": x, "labels": y}


def test_8x8() -> dict[str, np.ndarray]:
    _, _, x, y = _split()
    return {"input": x, "labels": y}


def train() -> dict[str, np.ndarray]:
    x, y, _, _ = _split()
    return {"input": upsample(x), "labels": y}


def test() -> dict[str, np.ndarray]:
    _, _, x, y = _split()
    return {"input": upsample(x), "labels": y}


def calib() -> dict[str, np.ndarray]:
    """256 training images (16x16), for static quantization."""
    x, y, _, _ = _split()
    index = np.sort(np.random.default_rng(SEED).choice(len(x), CALIB_SIZE, replace=False))
    return {"input": upsample(x[index]), "labels": y[index]}

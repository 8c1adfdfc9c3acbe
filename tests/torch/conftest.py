"""Fixtures for the torch plugin's tests: the digits CNN as a factory with its weights, and small torch models."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tests.conftest import DIGITS, ROOT

RESNET = ROOT / "examples" / "resnet"
#: The digits CNN's training split (1437 images, labels), as a module.py:function dataset.
TRAIN_8X8 = f"{RESNET / 'data.py'}:train_8x8"


@pytest.fixture
def torch_digits(digits_dir: Path) -> Path:
    """The digits folder with the model's factory and trained weights beside the ONNX model and data."""
    pytest.importorskip("compressor_torch")
    for name in ("model.py", "digits_cnn.safetensors"):
        shutil.copy(DIGITS / name, digits_dir / name)
    return digits_dir


def factory(folder: Path) -> str:
    return f"{folder / 'model.py'}:build_model"


def write_module(folder: Path, name: str, source: str) -> Path:
    """Write a Python module for a test (a factory, a student, a model that breaks something)."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path

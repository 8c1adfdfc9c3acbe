"""A small Keras CNN on digits, trained once per session, saved as .keras and exported as a SavedModel.

Keras writes ``~/.keras/keras.json`` on first import: KERAS_HOME points it into a temporary folder, set
here before anything imports Keras. TF_CPP_MIN_LOG_LEVEL keeps TensorFlow's C++ logs quiet.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, load_module

if "KERAS_HOME" not in os.environ:
    _keras_home = tempfile.mkdtemp(prefix="keras-home-")
    atexit.register(shutil.rmtree, _keras_home, ignore_errors=True)
    os.environ["KERAS_HOME"] = _keras_home
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
pytest.importorskip("compressor_tensorflow")

FAST = ("--min-runs", "3", "--min-time", "0", "--warmup", "1")


#: examples/frameworks/train.py, under a name no other ``train`` module shadows.
train = load_module(ROOT / "examples" / "frameworks" / "train.py", "frameworks_example")


@dataclass(frozen=True)
class KerasModels:
    keras_file: Path
    saved_model: Path
    test: Path  # held-out digits as 8x8x1 images, array 'pixels', and labels
    calib: Path


@pytest.fixture(scope="session")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> KerasModels:
    import keras

    folder = tmp_path_factory.mktemp("keras")
    x_train, x_test, y_train, y_test = train.split("digits")
    keras_file = train.train_keras_cnn(
        folder / "cnn.keras", train.as_images(x_train), y_train, epochs=5, width=8, batch=64
    )
    keras.saving.load_model(keras_file).export(str(folder / "cnn_savedmodel"), verbose=False)
    test = train.save_data(folder / "test.npz", "pixels", train.as_images(x_test), y_test)
    calib = train.save_data(folder / "calib.npz", "pixels", train.as_images(x_train[:128]))
    return KerasModels(keras_file, folder / "cnn_savedmodel", test, calib)

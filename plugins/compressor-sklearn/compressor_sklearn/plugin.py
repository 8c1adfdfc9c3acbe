"""Entry point of compressor-sklearn. Registering imports no framework: only the classes' own modules,
which import scikit-learn, XGBoost, LightGBM, skops, skl2onnx and onnxmltools inside their methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressor import hookimpl


@hookimpl
def register_loaders(register: Callable[[Any], None]) -> None:
    from compressor_sklearn.loaders import LightGBMLoader, PickleLoader, SkopsLoader, XGBoostLoader

    for loader in (SkopsLoader, PickleLoader, XGBoostLoader, LightGBMLoader):
        register(loader)


@hookimpl
def register_runners(register: Callable[[Any], None]) -> None:
    from compressor_sklearn.runner import NativeRunner

    register(NativeRunner)


@hookimpl
def register_passes(register: Callable[[Any], None]) -> None:
    from compressor_sklearn.convert import SklearnToOnnx
    from compressor_sklearn.prune import PruneTrees

    register(SklearnToOnnx)
    register(PruneTrees)

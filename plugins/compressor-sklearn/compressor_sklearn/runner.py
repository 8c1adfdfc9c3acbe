"""The native runner: scikit-learn, XGBoost and LightGBM models run in their own libraries.

Its outputs match the ONNX conversion's (``label`` and ``probabilities``, or ``variable``), so
``compressor compare model.json model.onnx`` measures both in one table, fidelity and accuracy included.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any

import numpy as np

from compressor.artifacts import Artifact, TensorSpec
from compressor.errors import CompressorError, ModelRunError
from compressor.measure.runner import Runner, RunOptions
from compressor_sklearn.native import (
    FORMAT_LIGHTGBM,
    FORMAT_XGBOOST,
    FORMATS,
    NativeModel,
    first_line,
    open_native,
)

LIBRARY = {FORMAT_XGBOOST: "xgboost", FORMAT_LIGHTGBM: "lightgbm"}


class NativeSession:
    """A native model behind the runner Session protocol."""

    def __init__(self, name: str, model: NativeModel, inputs: list[TensorSpec], backend: str) -> None:
        self.name = name
        self.model = model
        self.inputs = inputs
        self.outputs = model.output_specs()
        self.backend = backend

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        name = self.inputs[0].name
        x = feeds[name] if name in feeds else next(iter(feeds.values()))
        try:
            return self.model.predict(x)
        except CompressorError:
            raise
        except Exception as exc:  # the libraries raise ValueError, XGBoostError, LightGBMError ...
            raise ModelRunError(f"{self.name} failed on its inputs: {type(exc).__name__}: {first_line(exc)}") from exc

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]


def _version(dist: str) -> str:
    for name in (dist, f"{dist}-cpu"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


class NativeRunner(Runner):
    name = "sklearn-native"
    summary = "scikit-learn, XGBoost and LightGBM models in their own libraries (CPU)"
    formats = FORMATS
    devices = ("cpu",)
    libraries = ("scikit-learn", "xgboost", "xgboost-cpu", "lightgbm")

    def open(self, artifact: Artifact, options: RunOptions) -> NativeSession:
        model = open_native(artifact)
        threads = options.resolved_threads
        wait = f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
        if artifact.format == FORMAT_XGBOOST:
            model.obj.set_param({"nthread": threads})
            backend = f"xgboost {_version('xgboost')} ({threads} threads, {wait})"
        elif artifact.format == FORMAT_LIGHTGBM:
            model.facts["threads"] = threads
            backend = f"lightgbm {_version('lightgbm')} ({threads} threads, {wait})"
        else:
            backend = f"scikit-learn {_version('scikit-learn')} ({wait})"
        return NativeSession(artifact.path.name, model, list(artifact.inputs), backend)

    def stats(self, artifact: Artifact) -> dict[str, Any]:
        return open_native(artifact).stats()

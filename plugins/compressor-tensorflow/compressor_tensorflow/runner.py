"""The TensorFlow runner: SavedModels and Keras models run in TensorFlow, beside their ONNX conversions."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import numpy as np

from compressor.artifacts import Artifact, TensorSpec
from compressor.errors import ModelRunError
from compressor.measure.runner import Runner, RunOptions
from compressor_tensorflow.models import FORMATS, Served, first_line, import_tensorflow, serve, set_threads


class TensorFlowSession:
    def __init__(self, name: str, served: Served, artifact: Artifact, backend: str) -> None:
        self.name = name
        self._served = served
        self.inputs: list[TensorSpec] = list(artifact.inputs)
        self.outputs: list[TensorSpec] = list(artifact.outputs)
        self.backend = backend
        self._function = served.function.get_concrete_function()
        self._tf = import_tensorflow()

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        names = self._served.input_names
        if len(names) == 1 and names[0] not in feeds and len(feeds) == 1:
            feeds = {names[0]: next(iter(feeds.values()))}
        try:
            args = [self._tf.constant(feeds[name]) for name in names]
            result = self._function(*args)
            return [result[name].numpy() for name in self._served.output_names]
        except KeyError as exc:
            raise ModelRunError(f"{self.name}: no input named {exc}; it takes {names}") from exc
        except Exception as exc:  # InvalidArgumentError and friends
            raise ModelRunError(f"{self.name} failed on its inputs: {type(exc).__name__}: {first_line(exc)}") from exc

    def close(self) -> None:
        self._served = None  # type: ignore[assignment]
        self._function = None


class TensorFlowRunner(Runner):
    name = "tensorflow"
    summary = "TensorFlow SavedModels and Keras models in TensorFlow (CPU)"
    formats = FORMATS
    devices = ("cpu",)
    libraries = ("tensorflow", "tensorflow-cpu", "keras")

    def open(self, artifact: Artifact, options: RunOptions) -> TensorFlowSession:
        threads = set_threads(options.resolved_threads)
        served = serve(artifact)
        version = importlib.metadata.version("keras") if artifact.format == "keras" else None
        tf_version = import_tensorflow().__version__
        backend = f"tensorflow {tf_version} CPU ({threads} intra-op threads)"
        if version:
            backend = f"keras {version} on {backend}"
        return TensorFlowSession(artifact.path.name, served, artifact, backend)

    def stats(self, artifact: Artifact) -> dict[str, Any]:
        params = serve(artifact).params
        return {} if params is None else {"params": params}

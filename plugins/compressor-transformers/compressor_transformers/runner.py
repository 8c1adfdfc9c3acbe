"""Running a Hugging Face folder in PyTorch: the reference its ONNX export is verified and compared against."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifacts import Artifact, TensorSpec
from compressor.errors import ModelRunError
from compressor.measure.runner import Runner, RunOptions
from compressor_transformers.folder import FORMAT
from compressor_transformers.models import first_line, load_torch_model


class HfSession:
    """A transformers (or sentence-transformers) model behind the runner Session protocol."""

    def __init__(
        self, name: str, model: Any, library: str, inputs: list[TensorSpec], outputs: list[TensorSpec]
    ) -> None:
        import torch

        self.name = name
        self._model = model
        self._library = library
        self.inputs = inputs
        self.outputs = outputs
        self.backend = f"torch {torch.__version__} (transformers)"

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        tensors = {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in feeds.items()}
        try:
            with torch.inference_mode():
                produced = self._model(tensors) if self._library == "sentence_transformers" else self._model(**tensors)
            return [produced[spec.name].float().numpy() for spec in self.outputs]
        except Exception as exc:  # torch raises RuntimeError/IndexError/KeyError... on bad inputs
            raise ModelRunError(f"{self.name} failed on its inputs: {first_line(exc)}") from exc

    def close(self) -> None:
        self._model = None


class HfRunner(Runner):
    name = "transformers"
    summary = "PyTorch through transformers / sentence-transformers (the reference for exported models)"
    formats = (FORMAT,)
    devices = ("cpu",)
    libraries = ("torch", "transformers", "optimum", "sentence-transformers")

    def open(self, artifact: Artifact, options: RunOptions) -> HfSession:
        import torch

        torch.set_num_threads(options.resolved_threads)
        task, library = artifact.extra["task"], artifact.extra["library"]
        model = load_torch_model(artifact.path, task, library)
        return HfSession(artifact.path.name, model, library, list(artifact.inputs), list(artifact.outputs))

    def stats(self, artifact: Artifact) -> dict[str, Any]:
        """Parameters and weight dtypes, read from the safetensors headers (no weights are loaded)."""
        params = 0
        by_dtype: dict[str, int] = {}
        for path in _safetensors_files(artifact.path, artifact.extra.get("weights", [])):
            for entry in _safetensors_header(path).values():
                if not isinstance(entry, dict) or "shape" not in entry:
                    continue
                count = int(np.prod(entry["shape"])) if entry["shape"] else 1
                params += count
                begin, end = entry.get("data_offsets", (0, 0))
                by_dtype[entry.get("dtype", "?")] = by_dtype.get(entry.get("dtype", "?"), 0) + int(end - begin)
        return {"params": params, "weight_bytes_by_dtype": by_dtype, "task": artifact.extra.get("task")}


def _safetensors_files(folder: Path, weights: list[str]) -> list[Path]:
    if "model.safetensors" in weights:
        return [folder / "model.safetensors"]
    if "model.safetensors.index.json" in weights:
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        return sorted({folder / name for name in index.get("weight_map", {}).values()})
    return []


def _safetensors_header(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            return json.loads(handle.read(min(length, 100_000_000)))
    except (OSError, ValueError, struct.error):
        return {}

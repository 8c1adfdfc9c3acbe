"""Loaders for TensorFlow SavedModel folders and Keras ``.keras`` files.

``claims`` looks only at names (a folder holding ``saved_model.pb``, a ``.keras`` suffix, a sidecar);
``load`` imports TensorFlow (about 3 s) to read the serving signature or the Keras model's inputs.
"""

from __future__ import annotations

from pathlib import Path

from compressor.artifacts import Artifact, PassRecord, read_sidecar
from compressor.errors import ModelLoadError
from compressor.loaders import Loader, LoaderOptions, sidecar_format
from compressor_tensorflow.models import (
    FORMAT_KERAS,
    FORMAT_SAVED_MODEL,
    SAVED_MODEL_FILES,
    keras_specs,
    load_keras,
    load_saved_model,
    pick_signature,
    saved_model_specs,
)


def _is_saved_model(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in SAVED_MODEL_FILES)


def _lineage(folder: Path) -> list[PassRecord]:
    described = read_sidecar(folder) if folder.is_dir() else None
    return described.lineage if described else []


class SavedModelLoader(Loader):
    name = "tensorflow-savedmodel"
    summary = "TensorFlow SavedModel folders (saved_model.pb), served through their serving signature"
    formats = (FORMAT_SAVED_MODEL,)
    safety = (
        "TensorFlow graph: no Python code runs, but graph ops run when the model runs "
        "(TensorFlow ops can read and write files)"
    )

    def claims(self, ref: str) -> bool:
        path = Path(ref)
        return _is_saved_model(path) or sidecar_format(path) == FORMAT_SAVED_MODEL

    def load(self, ref: str, options: LoaderOptions) -> Artifact:
        path = Path(ref)
        if not _is_saved_model(path):
            raise ModelLoadError(f"{path} is not a SavedModel folder (no saved_model.pb)")
        loaded = load_saved_model(path)
        signature_name = pick_signature(loaded, path)
        inputs, outputs = saved_model_specs(loaded.signatures[signature_name])
        return Artifact(
            path=path.resolve(),
            format=FORMAT_SAVED_MODEL,
            inputs=inputs,
            outputs=outputs,
            source=str(path),
            lineage=_lineage(path),
            extra={"signature": signature_name},
        )


class KerasLoader(Loader):
    name = "keras"
    summary = ".keras files (Keras 3), loaded in safe mode"
    formats = (FORMAT_KERAS,)
    safety = "Keras safe_mode: configuration and weights only; Lambda layers (Python bytecode) need --trust-pickle"

    def claims(self, ref: str) -> bool:
        path = Path(ref)
        return path.suffix.lower() == ".keras" or sidecar_format(path) == FORMAT_KERAS

    def load(self, ref: str, options: LoaderOptions) -> Artifact:
        path = Path(ref)
        folder = path if path.is_dir() else None
        if folder is not None:
            described = read_sidecar(folder)
            if described is None:
                raise ModelLoadError(f"{path} is a folder without an artifact.json")
            path = described.path
        if not path.is_file():
            raise ModelLoadError(f"model not found: {path}")
        model = load_keras(path, options.trust_pickle)
        inputs, outputs = keras_specs(model, path)
        extra: dict[str, object] = {"model": f"{type(model).__name__} '{model.name}'"}
        if options.trust_pickle:
            extra["trusted"] = True
        return Artifact(
            path=path.resolve(),
            format=FORMAT_KERAS,
            inputs=inputs,
            outputs=outputs,
            source=str(path),
            lineage=_lineage(folder) if folder else [],
            extra=extra,
        )

"""Dataset readers: ``.npz`` arrays, and ``module.py:function`` for anything else."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from compressor.artifacts import Artifact
from compressor.data import LABELS_KEY, Dataset, DatasetReader
from compressor.errors import DatasetError
from compressor.pyref import call_reference, is_reference


class NpzReader(DatasetReader):
    name = "npz"
    summary = ".npz with arrays named after the model inputs and an optional 'labels' array"
    safety = "data only (allow_pickle=False)"

    def claims(self, ref: str) -> bool:
        return ref.lower().endswith(".npz")

    def load(self, ref: str, artifact: Artifact | None) -> Dataset:
        path = Path(ref)
        if not path.is_file():
            raise DatasetError(f"dataset not found: {ref}" if not path.exists() else f"dataset {ref} is not a file")
        if not zipfile.is_zipfile(path):
            raise DatasetError(f"dataset {ref} is not a readable .npz file (not a zip archive of arrays)")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise DatasetError(f"dataset {ref} holds object arrays, which need pickle; save plain arrays") from exc
            raise DatasetError(f"dataset {ref} is not a readable .npz file ({exc})") from exc
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DatasetError(f"dataset {ref} is not a readable .npz file ({exc})") from exc
        for name, value in arrays.items():
            if not isinstance(value, np.ndarray):
                raise DatasetError(f"dataset {ref} is not a readable .npz file ('{name}' is not a .npy array)")
        labels = arrays.pop(LABELS_KEY, None)
        return Dataset(arrays, labels, source=ref)


class PythonDatasetReader(DatasetReader):
    name = "python"
    summary = "module.py:function returning a dict of arrays (and 'labels'), or (inputs, labels)"
    safety = "runs the named Python file (your own code)"

    def claims(self, ref: str) -> bool:
        return is_reference(ref)

    def load(self, ref: str, artifact: Artifact | None) -> Dataset:
        value = call_reference(ref, DatasetError)
        if isinstance(value, Dataset):
            return value
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], dict):
            inputs, labels = value
        elif isinstance(value, dict):
            inputs = dict(value)
            labels = inputs.pop(LABELS_KEY, None)
        else:
            raise DatasetError(f"{ref} returned {type(value).__name__}; expected a dict of arrays or (inputs, labels)")
        try:
            arrays = {str(k): np.asarray(v) for k, v in inputs.items()}
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{ref} returned values that are not arrays: {exc}") from exc
        return Dataset(arrays, None if labels is None else np.asarray(labels), source=ref)

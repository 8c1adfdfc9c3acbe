"""Datasets for calibration and evaluation: arrays named after the model inputs, optional labels."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from compressor.artifacts import Artifact, TensorSpec
from compressor.errors import DatasetError
from compressor.plugins import get_registry

LABELS_KEY = "labels"


@dataclass
class Dataset:
    """Input arrays (first axis: samples) keyed by model input name, and optional labels."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not self.inputs:
            raise DatasetError(f"dataset {self.source} holds no input arrays")
        counts = {name: _num_samples(name, arr, self.source) for name, arr in self.inputs.items()}
        if self.labels is not None:
            counts[LABELS_KEY] = _num_samples(LABELS_KEY, self.labels, self.source)
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"{k}={v}" for k, v in counts.items())
            raise DatasetError(f"dataset {self.source}: arrays have different numbers of samples ({listed})")
        if next(iter(counts.values())) == 0:
            raise DatasetError(f"dataset {self.source} is empty (0 samples)")

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def take(self, count: int) -> Dataset:
        """The first ``count`` samples."""
        labels = self.labels[:count] if self.labels is not None else None
        return Dataset({k: v[:count] for k, v in self.inputs.items()}, labels, self.source)

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self), batch_size):
            yield {k: v[start : start + batch_size] for k, v in self.inputs.items()}

    def matched_to(self, specs: list[TensorSpec]) -> Dataset:
        """This dataset with arrays renamed and cast for ``specs``; a clear error on any mismatch."""
        names = [s.name for s in specs]
        if len(specs) == 1 and len(self.inputs) == 1 and names[0] not in self.inputs:
            arrays = {names[0]: next(iter(self.inputs.values()))}
        else:
            missing = [n for n in names if n not in self.inputs]
            if missing:
                raise DatasetError(
                    f"dataset {self.source} lacks arrays for model inputs {missing}; "
                    f"it has {sorted(self.inputs)} (arrays must be named after the model inputs)"
                )
            arrays = {n: self.inputs[n] for n in names}
        matched = {spec.name: _cast_for(spec, arrays[spec.name], self.source) for spec in specs}
        return Dataset(matched, self.labels, self.source)


def _num_samples(name: str, array: np.ndarray, source: str) -> int:
    if array.ndim == 0:
        raise DatasetError(f"dataset {source}: array '{name}' is a scalar; the first axis must be samples")
    return int(array.shape[0])


def _cast_for(spec: TensorSpec, array: np.ndarray, source: str) -> np.ndarray:
    if len(spec.shape) and array.ndim != len(spec.shape):
        raise DatasetError(
            f"dataset {source}: array '{spec.name}' has shape {list(array.shape)} but the model expects "
            f"rank {len(spec.shape)} ({spec.describe()})"
        )
    for axis, (want, got) in enumerate(zip(spec.shape, array.shape, strict=False)):
        if axis > 0 and isinstance(want, int) and want > 0 and want != got:
            raise DatasetError(
                f"dataset {source}: array '{spec.name}' has shape {list(array.shape)}, "
                f"the model expects {spec.describe()} (axis {axis}: {got} != {want})"
            )
    if spec.dtype == "unknown":
        return array
    target = np.dtype(spec.dtype)
    if array.dtype == target:
        return array
    if _kind(array.dtype) != _kind(target):
        raise DatasetError(
            f"dataset {source}: array '{spec.name}' is {array.dtype}, the model expects {target} ({spec.describe()})"
        )
    return array.astype(target)


def _kind(dtype: np.dtype) -> str:
    return {"f": "float", "i": "int", "u": "int", "b": "bool"}.get(dtype.kind, dtype.kind)


class DatasetReader:
    """Base class for dataset readers. ``claims`` must be cheap; ``load`` returns a Dataset."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    safety: ClassVar[str] = "data only"
    priority: ClassVar[int] = 0

    def claims(self, ref: str) -> bool:
        raise NotImplementedError

    def load(self, ref: str, artifact: Artifact | None) -> Dataset:
        raise NotImplementedError


def load_dataset(ref: str, artifact: Artifact | None = None) -> Dataset:
    """Read a dataset with the first reader that claims ``ref``; match it to the artifact's inputs."""
    readers = sorted(get_registry().datasets.values(), key=lambda cls: -cls.priority)
    for reader_cls in readers:
        reader = reader_cls()
        if reader.claims(ref):
            dataset = reader.load(ref, artifact)
            if artifact is not None and artifact.inputs:
                dataset = dataset.matched_to(artifact.inputs)
            return dataset
    known = "; ".join(f"{cls.name} ({cls.summary})" for cls in readers)
    raise DatasetError(f"no dataset reader recognizes '{ref}'. Readers: {known}")

"""Inputs for measurement: generated from the model's input specs or taken from a dataset."""

from __future__ import annotations

import numpy as np

from compressor.artifacts import TensorSpec
from compressor.data import Dataset
from compressor.errors import UsageError

#: Values integer inputs are drawn from when nothing better is known (token ids, indices).
INT_HIGH = 100


def concrete_shape(spec: TensorSpec, batch: int, shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The shape to feed ``spec``: ``--shape`` wins, then static dims; the first symbolic dim is the batch."""
    if spec.name in shapes:
        given = shapes[spec.name]
        if len(spec.shape) and len(given) != len(spec.shape):
            raise UsageError(f"--shape {spec.name} has {len(given)} dims, the model expects {spec.describe()}")
        return (batch, *given[1:]) if given and _is_symbolic(spec.shape[0] if spec.shape else 1) else given
    dims = []
    for axis, dim in enumerate(spec.shape):
        if isinstance(dim, int) and dim > 0:
            dims.append(dim)
        elif axis == 0:
            dims.append(batch)
        else:
            raise UsageError(
                f"input {spec.describe()} has a symbolic dim at axis {axis}",
                hint=f"give its size, e.g. --shape {spec.name}="
                + "x".join(
                    str(d) if isinstance(d, int) and d > 0 else ("1" if i == 0 else "128")
                    for i, d in enumerate(spec.shape)
                ),
            )
    return tuple(dims)


def _is_symbolic(dim: int | str | None) -> bool:
    return not (isinstance(dim, int) and dim > 0)


def make_inputs(
    specs: list[TensorSpec], batch: int, shapes: dict[str, tuple[int, ...]] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Deterministic inputs: floats ~ N(0, 1), token ids in [0, 100), masks ones, segment ids zeros, bools True."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape = concrete_shape(spec, batch, shapes or {})
        dtype = np.dtype(spec.dtype) if spec.dtype != "unknown" else np.dtype("float32")
        if dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[spec.name] = _integer_input(spec.name.lower(), shape, dtype, rng)
        elif dtype.kind == "b":
            feeds[spec.name] = np.ones(shape, dtype=bool)
        else:
            raise UsageError(f"cannot generate inputs of type {dtype} for {spec.describe()}; pass --data")
    return feeds


def _integer_input(name: str, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """Masks are ones, segment ids zeros, positions 0..n-1, anything else (token ids) small random ints."""
    if "mask" in name:
        return np.ones(shape, dtype)
    if "type" in name or "segment" in name:
        return np.zeros(shape, dtype)
    if "position" in name and shape:
        return np.broadcast_to(np.arange(shape[-1], dtype=dtype), shape).copy()
    return rng.integers(0, INT_HIGH, shape).astype(dtype)


def dataset_batch(dataset: Dataset, batch: int) -> dict[str, np.ndarray]:
    """The first ``batch`` samples of a dataset, repeated when it has fewer."""
    if len(dataset) >= batch:
        return {k: v[:batch] for k, v in dataset.inputs.items()}
    reps = -(-batch // len(dataset))
    return {k: np.concatenate([v] * reps)[:batch] for k, v in dataset.inputs.items()}

"""Built-in plugin: dataset readers (.npz, module.py:function) and the accuracy metric."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressor.hookspecs import hookimpl


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    from compressor.builtin.npz_dataset import NpzReader, PythonDatasetReader

    register(NpzReader)
    register(PythonDatasetReader)


@hookimpl
def register_metrics(register: Callable[[Any], None]) -> None:
    from compressor.measure.quality import Accuracy

    register(Accuracy)

"""Entry point of compressor-tensorflow. Registering imports no TensorFlow (3 s, 700 MB): the loaders,
runner and pass import it inside their methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressor import hookimpl


@hookimpl
def register_loaders(register: Callable[[Any], None]) -> None:
    from compressor_tensorflow.loaders import KerasLoader, SavedModelLoader

    register(SavedModelLoader)
    register(KerasLoader)


@hookimpl
def register_runners(register: Callable[[Any], None]) -> None:
    from compressor_tensorflow.runner import TensorFlowRunner

    register(TensorFlowRunner)


@hookimpl
def register_passes(register: Callable[[Any], None]) -> None:
    from compressor_tensorflow.convert import TensorFlowToOnnx

    register(TensorFlowToOnnx)

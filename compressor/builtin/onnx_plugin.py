"""Built-in plugin: the ONNX loader, the ONNX Runtime runner and the ONNX passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressor.hookspecs import hookimpl


@hookimpl
def register_loaders(register: Callable[[Any], None]) -> None:
    from compressor.builtin.onnx_loader import OnnxLoader

    register(OnnxLoader)


@hookimpl
def register_runners(register: Callable[[Any], None]) -> None:
    from compressor.builtin.ort_runner import OrtRunner

    register(OrtRunner)


@hookimpl
def register_passes(register: Callable[[Any], None]) -> None:
    from compressor.builtin.graph_passes import Fp16Convert, GraphSlim
    from compressor.builtin.ort_quantize import DynamicQuantize, Int4Quantize, StaticQuantize

    for pass_cls in (DynamicQuantize, StaticQuantize, Int4Quantize, Fp16Convert, GraphSlim):
        register(pass_cls)

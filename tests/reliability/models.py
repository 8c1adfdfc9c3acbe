"""Synthetic models for the reliability tests: a stack of MatMul + Tanh layers, sized to take a while."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def matmul_stack(path: Path, width: int = 256, layers: int = 8, external: bool = False, seed: int = 0) -> Path:
    """``path``: y = tanh(...tanh(x @ w0)... @ wN), float32 [batch, width]; weights in ``path.data`` when external."""
    rng = np.random.default_rng(seed)
    initializers, nodes = [], []
    for index in range(layers):
        weight = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        initializers.append(numpy_helper.from_array(weight, f"w{index}"))
        source = "x" if index == 0 else f"h{index - 1}"
        nodes.append(helper.make_node("MatMul", [source, f"w{index}"], [f"m{index}"], name=f"layer{index}/MatMul"))
        out = "y" if index == layers - 1 else f"h{index}"
        nodes.append(helper.make_node("Tanh", [f"m{index}"], [out], name=f"layer{index}/Tanh"))
    graph = helper.make_graph(
        nodes,
        "stack",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, location=path.name + ".data", size_threshold=0)
    else:
        onnx.save_model(model, str(path))
    return path


def stack_data(path: Path, width: int = 256, samples: int = 64, seed: int = 1) -> Path:
    """Calibration / evaluation data for :func:`matmul_stack` (array ``x``)."""
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.standard_normal((samples, width)).astype(np.float32))
    return path

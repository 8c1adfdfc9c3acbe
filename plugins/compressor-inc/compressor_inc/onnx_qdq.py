"""Store the weights of an exported PT2E model as INT8: fold ``QuantizeLinear`` of constant tensors.

torch's ONNX exporter translates a converted PT2E graph faithfully: each weight stays a float initializer followed by
``QuantizeLinear -> Clip -> DequantizeLinear``, computed at every run. The file is then *larger* than the float model
(float weights plus scales) and ONNX Runtime quantizes the weights on every call. Folding the constant
``QuantizeLinear`` (and the ``Clip`` to the same integer range after it) into an INT8 initializer gives the standard
QDQ layout that ONNX Runtime's QDQ fusions and TensorRT expect: ``int8 weight -> DequantizeLinear -> Conv/Gemm``.

The integers are computed as ONNX defines ``QuantizeLinear`` (``saturate(round_half_even(x / scale) + zero_point)``,
in the scale's float precision, as ONNX Runtime does), so the folded model computes exactly what the unfolded one
did (checked bit for bit on the digits CNN with graph optimizations off).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np


def _constants(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = scale.size
        scale = scale.reshape(shape)
        zero_point = zero_point.reshape(shape)
    info = np.iinfo(zero_point.dtype)
    # In the scale's precision, as ONNX Runtime computes it (float64 here flips ties: 1 weight in ~300 moved by 1).
    q = np.rint(x.astype(scale.dtype) / scale) + zero_point.astype(scale.dtype)
    return np.clip(q, info.min, info.max).astype(zero_point.dtype)


def fold_weight_quantization(model: Any) -> int:
    """Replace ``QuantizeLinear`` (+ ``Clip``) of constant inputs by integer initializers, in place.

    Returns how many tensors were folded. Initializers nothing uses any more (the float weights) are removed.
    """
    from onnx import numpy_helper

    graph = model.graph
    constants = _constants(graph)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    removed: set[int] = set()
    new_inits = []
    folded = 0
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3:
            continue
        if not all(name in constants for name in node.input[:3]):
            continue
        attrs = {a.name: a for a in node.attribute}
        if "block_size" in attrs and attrs["block_size"].i:
            continue  # blocked quantization (opset 21): leave it to the runtime
        axis = attrs["axis"].i if "axis" in attrs else 1
        x, scale, zero_point = (constants[name] for name in node.input[:3])
        if x.dtype.kind != "f" or zero_point.dtype.kind not in "iu":
            continue
        q = _quantize(x, scale, zero_point, axis if axis >= 0 else axis + x.ndim)
        output = node.output[0]
        after = consumers.get(output, [])
        if len(after) == 1 and after[0].op_type == "Clip":
            clip = after[0]
            bounds = [*list(clip.input)[1:3], "", ""][:2]
            if all(not name or name in constants for name in bounds):
                low, high = (constants[name] if name else None for name in bounds)
                if low is not None:
                    q = np.maximum(q, low).astype(q.dtype)
                if high is not None:
                    q = np.minimum(q, high).astype(q.dtype)
                removed.add(id(clip))
                output = clip.output[0]
        removed.add(id(node))
        new_inits.append(numpy_helper.from_array(q, output))
        folded += 1
    if not folded:
        return 0
    kept = [n for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(new_inits)
    used = Counter(name for n in graph.node for name in n.input)
    used.update(o.name for o in graph.output)
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    return folded


def weight_dtypes(model: Any) -> dict[str, int]:
    """Initializer bytes by element type name (what the file holds)."""
    from onnx import helper

    sizes: dict[str, int] = {}
    for init in model.graph.initializer:
        name = helper.tensor_dtype_to_np_dtype(init.data_type).name
        count = int(np.prod(init.dims)) if init.dims else 1
        sizes[name] = sizes.get(name, 0) + count * np.dtype(name).itemsize
    return sizes

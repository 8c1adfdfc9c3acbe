"""Static facts about an ONNX model: parameters, op histogram, weight dtypes, sparsity, quantization."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

#: Op types that mark how a model is quantized.
QUANT_OPS = {
    "QuantizeLinear": "qdq",
    "DequantizeLinear": "qdq",
    "DynamicQuantizeLinear": "dynamic",
    "MatMulInteger": "dynamic",
    "ConvInteger": "dynamic",
    "DynamicQuantizeMatMul": "dynamic",
    "MatMulNBits": "weight-only",
    "QLinearConv": "qoperator",
    "QLinearMatMul": "qoperator",
}


def onnx_stats(path: Path) -> dict[str, Any]:
    """Parameters, ops, weight bytes by dtype and weight sparsity, reading one tensor at a time."""
    from compressor.onnx_io import iter_initializers, read_model

    model = read_model(path)
    ops = Counter(
        node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}" for node in model.graph.node
    )
    packing = _packed_weights(model)
    params = 0
    weight_elems = 0
    weight_zeros = 0
    bytes_by_dtype: Counter[str] = Counter()
    for name, array in iter_initializers(model, path.parent):
        params += int(array.size) * packing.get(name, 1)
        bytes_by_dtype[array.dtype.name] += int(array.nbytes)
        if array.ndim >= 2 and array.dtype.kind == "f":
            weight_elems += int(array.size)
            weight_zeros += int(np.count_nonzero(array == 0))
    params += _tree_nodes(model)
    kinds = sorted({QUANT_OPS[op.rsplit(".", 1)[-1]] for op in ops if op.rsplit(".", 1)[-1] in QUANT_OPS})
    return {
        "params": params,
        "nodes": len(model.graph.node),
        "ops": dict(ops.most_common()),
        "weight_bytes_by_dtype": dict(bytes_by_dtype.most_common()),
        "weight_sparsity": weight_zeros / weight_elems if weight_elems else 0.0,
        "quantization": kinds or ["none"],
    }


def _packed_weights(model) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Initializers holding several weights per element (MatMulNBits packs 8/bits values per byte)."""
    packed = {}
    for node in model.graph.node:
        if node.op_type == "MatMulNBits" and len(node.input) > 1:
            bits = next((a.i for a in node.attribute if a.name == "bits"), 4)
            packed[node.input[1]] = 8 // bits
    return packed


def _tree_nodes(model) -> int:  # type: ignore[no-untyped-def]
    """Tree ensembles (ai.onnx.ml) hold their trees in attributes, not initializers: one parameter per tree
    node (split or leaf), as the native libraries count them."""
    total = 0
    for node in model.graph.node:
        if node.domain == "ai.onnx.ml" and node.op_type.startswith("TreeEnsemble"):
            for attr in node.attribute:
                if attr.name == "nodes_nodeids":  # TreeEnsembleClassifier/Regressor (ai.onnx.ml <= 4)
                    total += len(attr.ints)
                elif attr.name in ("nodes_splits", "leaf_weights"):  # TreeEnsemble (ai.onnx.ml 5)
                    total += int(np.prod(attr.t.dims))
    return total

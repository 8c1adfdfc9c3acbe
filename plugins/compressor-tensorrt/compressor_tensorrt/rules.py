"""TensorRT readiness rules, checked on the ONNX graph alone: no GPU, no TensorRT needed.

The rules follow TensorRT 10's explicit-quantization and ONNX-parser requirements: quantization only as
signed, symmetric Q/DQ pairs with constant scales, per-channel weights on the output-channel axis,
per-tensor activations, Q/DQ on the inputs of compute ops, a parseable opset and supported ops, and
optimization-profile bounds for every dynamic input dimension.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx

from compressor.onnx_io import TRT_PROFILE_KEY, get_metadata, read_model, tensor_array

Severity = Literal["error", "warning"]
COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
#: Quantized ops that are not Q/DQ pairs (QOperator, dynamic and weight-only formats).
NON_QDQ_QUANT_OPS = {
    "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul", "QLinearConcat", "QLinearSigmoid",
    "QLinearLeakyRelu", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearSoftmax", "QAttention",
    "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
    "MatMulNBits", "QEmbedLayerNormalization",
}  # fmt: skip
UNSUPPORTED_OPS = {
    "Unique", "SequenceConstruct", "SequenceAt", "SequenceInsert", "SequenceEmpty", "SequenceLength",
    "SequenceErase", "SplitToSequence", "ConcatFromSequence", "Optional", "OptionalHasElement",
    "OptionalGetElement", "StringNormalizer", "StringConcat", "StringSplit", "RegexFullMatch", "TfIdfVectorizer",
}  # fmt: skip
DATA_DEPENDENT_OPS = {"NonZero", "NonMaxSuppression"}
OPSET_RANGE = (9, 20)
PER_CHANNEL_MIN_OPSET = 13


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    fix: str


RULES = {
    rule.id: rule
    for rule in (
        Rule("TRT001", "error", "quantization only as QuantizeLinear/DequantizeLinear pairs",
             "re-quantize with `compressor quantize --mode static --format tensorrt` (dynamic, QOperator and "
             "weight-only formats cannot be parsed as explicit quantization)"),
        Rule("TRT002", "error", "zero points must be 0 (symmetric quantization)",
             "quantize symmetrically: `--format tensorrt` (or `--symmetric`)"),
        Rule("TRT003", "error", "INT8 Q/DQ must be signed int8, not uint8",
             "quantize activations and weights as qint8: `--format tensorrt`"),
        Rule("TRT004", "warning", "weights quantized per-tensor (per-channel keeps more accuracy)",
             "quantize weights per channel (the default; drop --per-tensor)"),
        Rule("TRT005", "error", "per-channel weight scales on an axis other than the output channels",
             "quantize per channel on the output-channel axis: `--format tensorrt`"),
        Rule("TRT006", "error", "activations must be quantized per-tensor",
             "use one scale per activation tensor"),
        Rule("TRT007", "error", "Q/DQ scales and zero points must be constants",
             "fold the scale computation into an initializer"),
        Rule("TRT008", "error", "a compute op with Q/DQ on only some of its inputs",
             "quantize both the activation and the weight input of the op, or neither"),
        Rule("TRT009", "warning", "a Q/DQ pair that feeds no compute op (a quantized output)",
             "place Q/DQ only on the inputs of Conv, ConvTranspose, Gemm and MatMul (`--format tensorrt`)"),
        Rule("TRT010", "warning", "Q/DQ on both inputs of an Add",
             "quantize only the residual-branch input, so TensorRT can fuse the Add into the convolution"),
        Rule("TRT011", "error", f"opset outside TensorRT 10's range {OPSET_RANGE[0]}-{OPSET_RANGE[1]}, or "
             f"per-channel Q/DQ below opset {PER_CHANNEL_MIN_OPSET}",
             "re-export with an opset TensorRT parses, e.g. 17"),
        Rule("TRT012", "error", "an op TensorRT does not support",
             "replace the op before export, or build with a TensorRT plugin that implements it"),
        Rule("TRT013", "warning", "a data-dependent output shape",
             "supported, but its output size is only known at run time: bound it or move it out of the engine"),
        Rule("TRT014", "error", "a dynamic input dimension without optimization-profile bounds",
             "give `--profile NAME=MIN:OPT:MAX` (e.g. input=1x3x224x224:8x3x224x224:32x3x224x224), or quantize "
             "with `--format tensorrt`, which records them"),
        Rule("TRT015", "error", "a float64 tensor (TensorRT has no FP64)", "cast to float32 before export"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    node: str
    op: str
    message: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Profile = dict[str, dict[str, list[int]]]


class Graph:
    """The model plus indexes the rules need: producers, consumers and constant values."""

    def __init__(self, path: Path) -> None:
        self.model = read_model(path)
        self.folder = path.parent
        self.nodes = list(self.model.graph.node)
        self.producers = {out: node for node in self.nodes for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.initializers = {t.name: t for t in self.model.graph.initializer}
        self.opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 0)

    def is_constant(self, name: str) -> bool:
        producer = self.producers.get(name)
        return name in self.initializers or (producer is not None and producer.op_type == "Constant")

    def value(self, name: str) -> np.ndarray | None:
        if name in self.initializers:
            return tensor_array(self.initializers[name], self.folder)
        producer = self.producers.get(name)
        if producer is not None and producer.op_type == "Constant":
            attr = next((a for a in producer.attribute if a.name == "value"), None)
            return onnx.numpy_helper.to_array(attr.t) if attr is not None else None
        return None

    def dtype(self, name: str) -> int | None:
        if name in self.initializers:
            return self.initializers[name].data_type
        producer = self.producers.get(name)
        if producer is not None and producer.op_type == "QuantizeLinear":
            return qdq_dtype(self, producer)
        return None


def _finding(rule_id: str, node: onnx.NodeProto | None, message: str) -> Finding:
    rule = RULES[rule_id]
    name, op = (node.name or node.output[0], node.op_type) if node is not None else ("(graph)", "-")
    return Finding(rule_id, rule.severity, name, op, message, rule.fix)


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def qdq_dtype(graph: Graph, node: onnx.NodeProto) -> int | None:
    """The integer type a Q/DQ node works in: its zero point's type, else what the spec defaults to."""
    if len(node.input) > 2 and node.input[2]:
        zero_point = graph.initializers.get(node.input[2])
        if zero_point is not None:
            return zero_point.data_type
        value = graph.value(node.input[2])
        return onnx.helper.np_dtype_to_tensor_dtype(value.dtype) if value is not None else None
    if node.op_type == "QuantizeLinear":
        return _attr(node, "output_dtype", 0) or onnx.TensorProto.UINT8
    return graph.dtype(node.input[0])


def check_quantization_ops(graph: Graph) -> list[Finding]:
    return [
        _finding("TRT001", node, f"{node.op_type} is not a Q/DQ pair")
        for node in graph.nodes
        if node.op_type in NON_QDQ_QUANT_OPS
    ]


def check_qdq_nodes(graph: Graph) -> list[Finding]:
    """TRT002, TRT003, TRT006, TRT007 on every Q/DQ node."""
    findings = []
    for node in graph.nodes:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        constants = [name for name in node.input[1:] if name]
        if not all(graph.is_constant(name) for name in constants):
            findings.append(_finding("TRT007", node, "scale or zero point is computed at run time"))
            continue
        dtype = qdq_dtype(graph, node)
        if dtype == onnx.TensorProto.UINT8:
            findings.append(_finding("TRT003", node, "quantizes to uint8"))
        if len(node.input) > 2 and node.input[2]:
            zero_point = graph.value(node.input[2])
            if zero_point is not None and np.any(zero_point != 0):
                findings.append(_finding("TRT002", node, f"zero point {np.unique(zero_point)[:4].tolist()}"))
        scale = graph.value(node.input[1])
        if scale is not None and scale.size > 1 and not graph.is_constant(node.input[0]):
            findings.append(_finding("TRT006", node, f"{scale.size} scales on an activation"))
    return findings


def _expected_weight_axis(op: onnx.NodeProto, weight_rank: int) -> int:
    if op.op_type == "Conv":
        return 0
    if op.op_type == "ConvTranspose":
        return 1
    if op.op_type == "Gemm":
        return 0 if _attr(op, "transB", 0) else 1
    return weight_rank - 1  # MatMul: [..., K, N], N output channels


def _dequantized_input(graph: Graph, name: str) -> onnx.NodeProto | None:
    producer = graph.producers.get(name)
    return producer if producer is not None and producer.op_type == "DequantizeLinear" else None


def check_compute_ops(graph: Graph) -> list[Finding]:
    """TRT004, TRT005 (weights) and TRT008 (partly quantized compute ops)."""
    findings = []
    for node in graph.nodes:
        if node.op_type not in COMPUTE_OPS or len(node.input) < 2:
            continue
        dqs = [_dequantized_input(graph, name) for name in node.input[:2]]
        if sum(dq is not None for dq in dqs) == 1:
            which = "activation" if dqs[0] is None else "weight"
            findings.append(_finding("TRT008", node, f"its {which} input has no Q/DQ"))
        for dq in dqs:
            if dq is not None and graph.is_constant(dq.input[0]):
                findings.extend(_weight_findings(graph, node, dq))
    return findings


def _weight_findings(graph: Graph, op: onnx.NodeProto, dq: onnx.NodeProto) -> list[Finding]:
    scale = graph.value(dq.input[1])
    weight = graph.value(dq.input[0])
    if scale is None or weight is None:
        return []
    if scale.size <= 1:
        return [_finding("TRT004", op, f"weight {dq.input[0]} has one scale")]
    axis = _attr(dq, "axis", 1) % weight.ndim
    expected = _expected_weight_axis(op, weight.ndim)
    if axis != expected:
        return [_finding("TRT005", op, f"weight {dq.input[0]} is quantized on axis {axis}, expected {expected}")]
    return []


def check_placement(graph: Graph) -> list[Finding]:
    """TRT009 (Q/DQ feeding no compute op) and TRT010 (both Add inputs quantized)."""
    findings = []
    for node in graph.nodes:
        if node.op_type == "DequantizeLinear" and not graph.is_constant(node.input[0]):
            users = {user.op_type for user in graph.consumers.get(node.output[0], [])}
            if users and not users & {*COMPUTE_OPS, "Add"}:
                findings.append(_finding("TRT009", node, f"feeds only {', '.join(sorted(users))}"))
        if node.op_type == "Add" and all(_dequantized_input(graph, name) for name in node.input[:2]):
            findings.append(_finding("TRT010", node, "both inputs are dequantized"))
    return findings


def _per_channel(graph: Graph, node: onnx.NodeProto) -> bool:
    if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
        return False
    scale = graph.value(node.input[1])
    return scale is not None and scale.size > 1


def check_opset_and_ops(graph: Graph) -> list[Finding]:
    """TRT011 (opset), TRT012 (unsupported or custom-domain ops), TRT013 (data-dependent shapes)."""
    findings = []
    low, high = OPSET_RANGE
    if not low <= graph.opset <= high:
        findings.append(_finding("TRT011", None, f"opset {graph.opset}"))
    elif graph.opset < PER_CHANNEL_MIN_OPSET and any(
        n.op_type in ("QuantizeLinear", "DequantizeLinear")
        and (s := graph.value(n.input[1])) is not None
        and s.size > 1
        for n in graph.nodes
    ):
        findings.append(_finding("TRT011", None, f"per-channel Q/DQ at opset {graph.opset}"))
    for node in graph.nodes:
        if node.domain not in ("", "ai.onnx") and node.op_type not in NON_QDQ_QUANT_OPS:
            findings.append(_finding("TRT012", node, f"{node.domain}.{node.op_type} is a custom-domain op"))
        elif node.op_type in UNSUPPORTED_OPS:
            findings.append(_finding("TRT012", node, f"{node.op_type} is not supported"))
        elif node.op_type in DATA_DEPENDENT_OPS:
            findings.append(_finding("TRT013", node, f"{node.op_type} has a data-dependent output shape"))
    return findings


def check_types(graph: Graph) -> list[Finding]:
    """TRT015: float64 anywhere in the graph's declared tensors."""
    values = [*graph.model.graph.input, *graph.model.graph.output, *graph.model.graph.value_info]
    doubles = [v.name for v in values if v.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE]
    doubles += [t.name for t in graph.model.graph.initializer if t.data_type == onnx.TensorProto.DOUBLE]
    return [_finding("TRT015", None, f"tensor {name} is float64") for name in doubles]


def recorded_profile(graph: Graph) -> Profile:
    raw = get_metadata(graph.model, TRT_PROFILE_KEY)
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def check_profiles(graph: Graph, profile: Profile) -> list[Finding]:
    """TRT014: every input with a dynamic dim has min/opt/max shapes that fit it."""
    findings = []
    initializers = set(graph.initializers)
    for value in graph.model.graph.input:
        if value.name in initializers:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
        if all(d is not None and d > 0 for d in dims):
            continue
        problem = _profile_problem(dims, profile.get(value.name))
        if problem:
            findings.append(Finding("TRT014", "error", value.name, "input", problem, RULES["TRT014"].fix))
    return findings


def _profile_problem(dims: list[int | None], bounds: dict[str, list[int]] | None) -> str | None:
    dynamic = [i for i, d in enumerate(dims) if not d]
    if bounds is None:
        return f"dims {dynamic} are dynamic and no profile bounds them"
    shapes = [bounds.get(k) for k in ("min", "opt", "max")]
    if any(s is None or len(s) != len(dims) for s in shapes):
        return f"profile needs min, opt and max shapes of rank {len(dims)}"
    low, opt, high = shapes
    for axis, dim in enumerate(dims):
        if dim and {low[axis], opt[axis], high[axis]} != {dim}:
            return f"profile changes static dim {axis} ({dim})"
        if not low[axis] <= opt[axis] <= high[axis] or low[axis] < 1:
            return f"profile dim {axis} is not 1 <= min <= opt <= max"
    return None


CHECKS = (check_quantization_ops, check_qdq_nodes, check_compute_ops, check_placement, check_opset_and_ops,
          check_types)  # fmt: skip


def check_model(path: Path, profile: Profile | None = None) -> tuple[list[Finding], Profile]:
    """All findings for the ONNX model at ``path``; ``profile`` adds to the bounds recorded in the model."""
    graph = Graph(path)
    bounds = {**recorded_profile(graph), **(profile or {})}
    findings = [finding for check in CHECKS for finding in check(graph)]
    findings += check_profiles(graph, bounds)
    order = {rule_id: index for index, rule_id in enumerate(RULES)}
    findings.sort(key=lambda f: (f.severity != "error", order[f.rule]))
    return findings, bounds

"""The masked-Softmax rewrite on small graphs: both forms are the same function, biases are kept."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from compressor_transformers.masked_softmax import rewrite_masked_softmax
from onnx import TensorProto, helper

B, H, L, D = 2, 3, 6, 4


def attention_graph(mask_shape: list[int | str]) -> onnx.ModelProto:
    """out = Softmax(scores + attention_mask) @ V, the mask a graph input of ``mask_shape``."""
    nodes = [
        helper.make_node("Add", ["scores", "attention_mask"], ["x"]),
        helper.make_node("Softmax", ["x"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "V"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "attention",
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["b", H, L, L]),
            helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, mask_shape),
            helper.make_tensor_value_info("V", TensorProto.FLOAT, ["b", H, L, D]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", H, L, D])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]


@pytest.mark.parametrize(
    ("mask_shape", "on_values"),
    [(["b", 1, 1, L], 1), (["b", 1, L, L], 0)],  # a key padding mask; a per-query (e.g. causal) mask
)
def test_both_forms_equal_the_original(mask_shape: list[int | str], on_values: int) -> None:
    rng = np.random.default_rng(0)
    fill = np.finfo(np.float32).min
    mask = np.zeros([B, *mask_shape[1:]], np.float32)
    mask[0, ..., 4:] = fill  # the first text has 4 real tokens
    mask[1, ..., 2] = -3.0  # a real additive bias: kept
    if on_values == 0:
        mask[1, 0, np.triu_indices(L, 1)[0], np.triu_indices(L, 1)[1]] = fill  # causal in the second
    feeds = {
        "scores": rng.standard_normal((B, H, L, L)).astype(np.float32),
        "attention_mask": mask,
        "V": rng.standard_normal((B, H, L, D)).astype(np.float32),
    }
    model = attention_graph(mask_shape)
    expected = run(model, feeds)
    rewritten = attention_graph(mask_shape)
    assert rewrite_masked_softmax(rewritten) == (1, on_values)
    onnx.checker.check_model(rewritten)
    np.testing.assert_allclose(run(rewritten, feeds), expected, atol=1e-6)
    assert rewrite_masked_softmax(rewritten) == (0, 0)  # idempotent


def test_a_graph_without_a_mask_input_is_not_touched() -> None:
    model = attention_graph(["b", 1, 1, L])
    model.graph.input[1].name = "bias"
    model.graph.node[0].input[1] = "bias"
    assert rewrite_masked_softmax(model) == (0, 0)

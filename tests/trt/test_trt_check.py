"""`compressor trt-check`: each TensorRT rule on a graph built to break it, and the tensorrt quantization format
passing by construction on the digits CNN and MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compressor.errors import ExitCode
from tests.conftest import assert_clean_error

pytest.importorskip("compressor_tensorrt")

FLOAT = TensorProto.FLOAT


def const(name: str, value: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def save(path: Path, nodes: list, inits: list, opset: int = 17, inputs=None, outputs=None) -> Path:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(
        nodes,
        "g",
        inputs or [helper.make_tensor_value_info("x", FLOAT, [1, 4])],
        outputs or [helper.make_tensor_value_info("y", FLOAT, [1, 3])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


def qdq_gemm(
    path: Path,
    act_zero: np.ndarray | None = None,
    weight_scale: np.ndarray | None = None,
    weight_axis: int = 0,
    quantize_weight: bool = True,
) -> Path:
    """x -> Q -> DQ -> Gemm(transB=1) <- DQ <- int8 weight [3, 4]."""
    weight = np.ones((3, 4), np.int8)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"], name="q_x"),
        helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"], name="dq_x"),
    ]
    inits = [const("s", np.float32(0.1)), const("zp", np.int8(0) if act_zero is None else act_zero)]
    if quantize_weight:
        scale = np.full(3, 0.05, np.float32) if weight_scale is None else weight_scale
        nodes.append(helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], name="dq_w", axis=weight_axis))
        inits += [const("w", weight), const("ws", scale), const("wz", np.zeros(scale.shape, np.int8))]
        weight_input = "wd"
    else:
        inits.append(const("wf", np.ones((3, 4), np.float32)))
        weight_input = "wf"
    nodes.append(helper.make_node("Gemm", ["xd", weight_input], ["y"], name="gemm", transB=1))
    return save(path, nodes, inits)


def rules_of(cli, path: Path, *extra: str) -> tuple[int, set[str], dict]:  # type: ignore[no-untyped-def]
    result = cli("trt-check", path, "--json", *extra)
    assert result.code in (0, 1), result.output
    data = json.loads(result.stdout)["result"]
    return result.code, {f["rule"] for f in data["findings"]}, data


def test_a_correct_qdq_graph_is_ready(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, rules, data = rules_of(cli, qdq_gemm(tmp_path / "ok.onnx"))
    assert (code, rules, data["ready"]) == (0, set(), True)


@pytest.mark.parametrize(
    ("builder", "rule", "code"),
    [
        (lambda p: qdq_gemm(p, act_zero=np.uint8(128)), "TRT003", 1),
        (lambda p: qdq_gemm(p, act_zero=np.int8(5)), "TRT002", 1),
        (lambda p: qdq_gemm(p, weight_scale=np.float32(0.05)), "TRT004", 0),
        (lambda p: qdq_gemm(p, weight_scale=np.full(4, 0.05, np.float32), weight_axis=1), "TRT005", 1),
        (lambda p: qdq_gemm(p, quantize_weight=False), "TRT008", 1),
    ],
    ids=["uint8", "zero-point", "per-tensor-weight", "wrong-axis", "half-quantized"],
)
def test_quantization_rules(cli, tmp_path: Path, builder, rule: str, code: int) -> None:  # type: ignore[no-untyped-def]
    found_code, rules, _ = rules_of(cli, builder(tmp_path / "m.onnx"))
    assert rule in rules and found_code == code


def test_warnings_fail_only_with_strict(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = qdq_gemm(tmp_path / "m.onnx", weight_scale=np.float32(0.05))
    assert cli("trt-check", path).code == 0
    assert cli("trt-check", path, "--strict").code == ExitCode.CONSTRAINT_NOT_MET


def _activation_graph(path: Path, nodes: list, inits: list) -> Path:
    return save(path, nodes, inits, outputs=[helper.make_tensor_value_info("y", FLOAT, [1, 4])])


def test_per_channel_activation_and_computed_scale(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    per_channel = _activation_graph(
        tmp_path / "pc.onnx",
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], axis=1),
         helper.make_node("Relu", ["d"], ["y"])],
        [const("s", np.full(4, 0.1, np.float32)), const("z", np.zeros(4, np.int8))],
    )  # fmt: skip
    assert {"TRT006", "TRT009"} <= rules_of(cli, per_channel)[1]
    computed = _activation_graph(
        tmp_path / "computed.onnx",
        [helper.make_node("Abs", ["x"], ["a"]), helper.make_node("ReduceMax", ["a"], ["s"], keepdims=0),
         helper.make_node("QuantizeLinear", ["x", "s"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s"], ["y"])],
        [],
    )  # fmt: skip
    assert "TRT007" in rules_of(cli, computed)[1]


def test_add_with_both_inputs_quantized_is_a_warning(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d1"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d2"]),
        helper.make_node("Add", ["d1", "d2"], ["y"], name="residual_add"),
    ]
    code, rules, data = rules_of(
        cli, _activation_graph(tmp_path / "add.onnx", nodes, [const("s", np.float32(0.1)), const("z", np.int8(0))])
    )
    assert code == 0 and "TRT010" in rules
    assert next(f for f in data["findings"] if f["rule"] == "TRT010")["node"] == "residual_add"


@pytest.mark.parametrize(
    ("node", "rule"),
    [
        (helper.make_node("Unique", ["x"], ["y"], name="uniq"), "TRT012"),
        (helper.make_node("FusedThing", ["x"], ["y"], name="custom", domain="com.example"), "TRT012"),
        (helper.make_node("NonZero", ["x"], ["y"], name="nz"), "TRT013"),
    ],
    ids=["unique", "custom-domain", "nonzero"],
)
def test_unsupported_and_data_dependent_ops(cli, tmp_path: Path, node, rule: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ops.onnx"
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", FLOAT, [4])],
        [helper.make_tensor_value_info("y", FLOAT, ["n"])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    _, rules, data = rules_of(cli, path)
    assert rule in rules
    assert any(f["node"] == node.name for f in data["findings"])


def test_opset_range_and_float64(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old = save(
        tmp_path / "old.onnx",
        [helper.make_node("Relu", ["x"], ["y"])],
        [],
        opset=8,
        outputs=[helper.make_tensor_value_info("y", FLOAT, [1, 4])],
    )
    assert "TRT011" in rules_of(cli, old)[1]
    double = save(
        tmp_path / "double.onnx",
        [helper.make_node("Relu", ["x"], ["y"])],
        [],
        inputs=[helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 4])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1, 4])],
    )
    assert "TRT015" in rules_of(cli, double)[1]


def test_dynamic_dims_need_profile_bounds(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    model = digits_dir / "digits_cnn.onnx"
    code, rules, _ = rules_of(cli, model)
    assert code == 1 and rules == {"TRT014"}
    code, rules, data = rules_of(cli, model, "--profile", "input=1x1x8x8:8x1x8x8:64x1x8x8")
    assert code == 0 and data["profile"]["input"]["max"] == [64, 1, 8, 8]
    code, rules, _ = rules_of(cli, model, "--profile", "input=1x1x8x8:8x1x8x8:4x1x8x8")
    assert code == 1 and rules == {"TRT014"}
    bad = cli("trt-check", model, "--profile", "input=1x1x8x8")
    assert_clean_error(bad, ExitCode.USAGE_ERROR, "MIN:OPT:MAX")


def test_tensorrt_format_passes_by_construction_and_keeps_accuracy(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    model, out = digits_dir / "digits_cnn.onnx", digits_dir / "trt.onnx"
    result = cli(
        "quantize", model, "--mode", "static", "--format", "tensorrt", "--data", digits_dir / "calib.npz", "-o", out
    )
    assert result.code == 0, result.output
    code, rules, data = rules_of(cli, out)
    assert (code, rules) == (0, set())
    assert data["profile"]["input"] == {"min": [1, 1, 8, 8], "opt": [16, 1, 8, 8], "max": [64, 1, 8, 8]}
    biases = [i for i in onnx.load(str(out)).graph.initializer if i.name.endswith("bias")]
    assert biases and all(b.data_type == FLOAT for b in biases)  # TensorRT takes float biases
    compared = cli("compare", model, out, "--data", digits_dir / "test.npz", "--min-runs", 3, "--min-time", 0, "--json")
    base, quantized = json.loads(compared.stdout)["result"]["models"]
    assert quantized["accuracy"] >= base["accuracy"] - 0.005


def test_plain_static_quantization_is_flagged(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    out = digits_dir / "int8.onnx"
    cli("quantize", digits_dir / "digits_cnn.onnx", "--mode", "static", "--data", digits_dir / "calib.npz", "-o", out)
    code, rules, _ = rules_of(cli, out)
    assert code == 1 and {"TRT002", "TRT003", "TRT009", "TRT014"} <= rules


@pytest.mark.slow
def test_minilm_dynamic_is_flagged_and_tensorrt_format_is_ready(cli, minilm: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = minilm.with_suffix(".npz")
    dynamic, trt = tmp_path / "dyn.onnx", tmp_path / "trt.onnx"
    assert cli("quantize", minilm, "--mode", "dynamic", "-o", dynamic, "--data", data).code == 0
    code, rules, _ = rules_of(cli, dynamic)
    assert code == 1 and {"TRT001", "TRT002", "TRT003", "TRT014"} <= rules
    assert cli("quantize", minilm, "--mode", "static", "--format", "tensorrt", "--data", data, "-o", trt).code == 0
    code, rules, result = rules_of(cli, trt)
    assert (code, rules) == (0, set())
    assert set(result["profile"]) == {"input_ids", "attention_mask", "token_type_ids"}


def test_trt_check_refuses_what_is_not_onnx(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    assert_clean_error(cli("trt-check", notes), ExitCode.INPUT_ERROR, "notes.txt")


def test_engine_build_without_tensorrt_says_what_is_missing(cli, tmp_path: Path, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("compressor_tensorrt")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    out = digits_dir / "trt.onnx"
    cli("quantize", digits_dir / "digits_cnn.onnx", "--mode", "static", "--format", "tensorrt",
        "--data", digits_dir / "calib.npz", "-o", out)  # fmt: skip
    result = cli("trt-build", out, "-o", tmp_path / "model.engine")
    assert_clean_error(result, ExitCode.ENVIRONMENT_ERROR, "tensorrt")
    assert "pip install" in result.stderr
    assert not (tmp_path / "model.engine").exists()

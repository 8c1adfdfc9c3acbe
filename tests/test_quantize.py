"""`compressor quantize` on the bundled digits CNN: each mode, outputs, cleanliness and lineage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compressor.errors import ExitCode
from tests.conftest import assert_clean_error, file_digest, run_subprocess


def ops(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def compare_json(cli, base: Path, candidate: Path, data: Path) -> dict:  # type: ignore[no-untyped-def]
    result = cli("compare", base, candidate, "--data", data, "--min-runs", 3, "--min-time", 0, "--json")
    assert result.code == 0, result.output
    return json.loads(result.stdout)["result"]


def test_static_keeps_accuracy_and_is_over_3_5x_smaller(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    model, out = digits_dir / "digits_cnn.onnx", digits_dir / "int8.onnx"
    before = file_digest(model)
    result = cli("quantize", model, "--mode", "static", "--data", digits_dir / "calib.npz", "-o", out)
    assert result.code == 0, result.output
    assert file_digest(model) == before
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops(out)
    measured = compare_json(cli, model, out, digits_dir / "test.npz")
    base, quantized = measured["models"]
    assert base["size_bytes"] / quantized["size_bytes"] >= 3.5
    assert quantized["accuracy"] >= base["accuracy"] - 0.005
    assert base["accuracy"] >= 0.98
    assert quantized["fidelity"]["top1_agreement"] >= 0.99


@pytest.mark.parametrize(
    ("mode", "expected_ops"),
    [
        ("dynamic", {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"}),
        ("int4", {"MatMulNBits"}),
    ],
)
def test_weight_modes_write_runnable_models(cli, digits_dir: Path, mode: str, expected_ops: set[str]) -> None:  # type: ignore[no-untyped-def]
    out = digits_dir / f"{mode}.onnx"
    result = cli("quantize", digits_dir / "digits_cnn.onnx", "--mode", mode, "-o", out, "--json")
    assert result.code == 0, result.output
    envelope = json.loads(result.stdout)
    assert envelope["schema"] == "compressor/result" and envelope["ok"] is True
    step = envelope["result"]["steps"][0]
    assert step["fidelity"]["cosine_mean"] > 0.99
    assert expected_ops <= ops(out)
    assert envelope["result"]["size_bytes"]["ratio"] < 0.3


def test_fp16_keeps_float32_io_and_halves_the_size(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    out = digits_dir / "fp16.onnx"
    assert cli("quantize", digits_dir / "digits_cnn.onnx", "--mode", "fp16", "-o", out).code == 0
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    weight_types = {init.data_type for init in model.graph.initializer if len(init.dims) >= 2}
    assert weight_types == {TensorProto.FLOAT16}
    assert 0.45 < out.stat().st_size / (digits_dir / "digits_cnn.onnx").stat().st_size < 0.55
    measured = compare_json(cli, digits_dir / "digits_cnn.onnx", out, digits_dir / "test.npz")
    assert measured["models"][1]["fidelity"]["cosine_min"] > 0.9999


def test_fp16_keeps_blocked_ops_in_float32(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
            helper.make_node("Softmax", ["h"], ["y"], name="sm"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [weight],
    )
    model_path = tmp_path / "softmax.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model_path))
    out = tmp_path / "softmax_fp16.onnx"
    result = cli("quantize", model_path, "--mode", "fp16", "-o", out)
    assert result.code == 0, result.output
    converted = onnx.load(str(out))
    softmax = next(n for n in converted.graph.node if n.op_type == "Softmax")
    producers = {o: n for n in converted.graph.node for o in n.output}
    assert producers[softmax.input[0]].op_type == "Cast"  # fed back to float32 before the softmax
    assert "1 nodes kept in fp32" in result.stdout


def test_output_folder_holds_model_and_sidecar_and_reloads(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    out = digits_dir / "quantized"
    assert cli("quantize", digits_dir / "digits_cnn.onnx", "--mode", "dynamic", "-o", out).code == 0
    assert sorted(p.name for p in out.iterdir()) == ["artifact.json", "model.onnx"]
    info = cli("inspect", out, "--json")
    assert info.code == 0, info.output
    described = json.loads(info.stdout)["result"]
    assert [step["name"] for step in described["lineage"]] == ["quantize.dynamic"]
    assert described["lineage"][0]["config"]["per_channel"] is True


def test_lineage_is_recorded_in_the_onnx_metadata(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    out = digits_dir / "int8.onnx"
    cli("quantize", digits_dir / "digits_cnn.onnx", "--mode", "static", "--data", digits_dir / "calib.npz", "-o", out)
    info = json.loads(cli("inspect", out, "--json").stdout)["result"]
    assert info["lineage"][0]["name"] == "quantize.static"
    assert any("calibrated on 256 samples" in note for note in info["lineage"][0]["notes"])
    assert info["stats"]["quantization"] == ["qdq"]


def test_quantization_leaves_no_stray_files(digits_dir: Path, tmp_path: Path) -> None:
    workdir, tmpdir = tmp_path / "cwd", tmp_path / "tmpdir"
    workdir.mkdir()
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    before = sorted(p.name for p in digits_dir.iterdir())
    for mode in ("static", "dynamic", "int4", "fp16"):
        out = digits_dir / f"{mode}.onnx"
        result = run_subprocess(
            "quantize", str(digits_dir / "digits_cnn.onnx"), "--mode", mode, "--data", str(digits_dir / "calib.npz"),
            "-o", str(out), cwd=workdir, env=env,
        )  # fmt: skip
        assert result.code == 0, result.output
    assert list(workdir.iterdir()) == []
    assert sorted(p.name for p in digits_dir.iterdir()) == sorted(
        [*before, *(f"{m}.onnx" for m in ("static", "dynamic", "int4", "fp16"))]
    )
    # `import onnxruntime` itself writes a telemetry session file `.ses` into TMPDIR; ORT's tools write nothing.
    assert [p.name for p in tmpdir.iterdir() if p.name != ".ses"] == []


def _conv_only_model(path: Path) -> Path:
    weight = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 4, 4])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_pass_with_nothing_to_do_fails_clearly_and_writes_nothing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = _conv_only_model(tmp_path / "conv.onnx")
    out = tmp_path / "int4.onnx"
    result = cli("quantize", model, "--mode", "int4", "-o", out)
    assert_clean_error(result, ExitCode.PASS_FAILED, "quantize.int4", "nothing was quantized")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv.onnx"]


def test_per_tensor_and_excluded_nodes_reach_the_quantizer(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    out = digits_dir / "int8.onnx"
    first_gemm = next(n.name for n in onnx.load(str(digits_dir / "digits_cnn.onnx")).graph.node if n.op_type == "Gemm")
    result = cli(
        "quantize", digits_dir / "digits_cnn.onnx", "--mode", "static", "--data", digits_dir / "calib.npz",
        "--per-tensor", "--exclude", first_gemm, "-o", out, "--json",
    )  # fmt: skip
    assert result.code == 0, result.output
    config = json.loads(result.stdout)["result"]["steps"][0]["config"]
    assert config["per_channel"] is False and config["nodes_to_exclude"] == [first_gemm]
    model = onnx.load(str(out))
    producers = {o: n for n in model.graph.node for o in n.output}
    gemm = next(n for n in model.graph.node if n.name == first_gemm)
    assert gemm.input[1] not in producers  # the float weight itself, no DequantizeLinear in front
    scales = [i for i in model.graph.initializer if i.name.endswith("_scale")]
    assert scales and all(int(np.prod(s.dims)) == 1 for s in scales)  # per-tensor: one scale per tensor

"""`quantize.inc.static`: PT2E INT8 on the digits CNN keeps its accuracy, stores INT8 weights in ONNX, and refuses what
Neural Compressor would silently get wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressor.errors import ExitCode, PassError
from tests.conftest import DIGITS, assert_clean_error
from tests.inc.conftest import NEEDS_INC, factory, recipe, run_json

pytestmark = NEEDS_INC
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

BASELINE_ACCURACY = 0.9917


@pytest.fixture(scope="module")
def digits_pt2e():  # type: ignore[no-untyped-def]
    """The digits CNN loaded, calibration batches cut and exported for PT2E (shared: export takes seconds)."""
    from compressor_inc import pt2e

    from compressor.data import load_dataset
    from compressor.loaders import LoaderOptions, load_model

    artifact = load_model(
        f"{DIGITS / 'model.py'}:build_model", LoaderOptions(weights=DIGITS / "digits_cnn.safetensors")
    )
    dataset = load_dataset(str(DIGITS / "calib.npz"), artifact)
    return pt2e.load("quantize.inc.static", artifact, dataset, 64, 32, {})


def test_static_int8_keeps_digits_accuracy_as_onnx_with_int8_weights(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    path = recipe(
        torch_digits,
        "model.py:build_model",
        [{"quantize.inc.static": {}}],
        model_options={"weights": "digits_cnn.safetensors"},
        data="calib.npz",
        eval_data="test.npz",
    )
    result = run_json(cli, path)
    step = result["steps"][0]
    assert step["name"] == "quantize.inc.static" and step["format"] == "onnx"
    models = {m["label"]: m for m in result["measurement"]["models"]}
    assert models["input"]["accuracy"] == pytest.approx(BASELINE_ACCURACY, abs=1e-3)
    assert models["output"]["accuracy"] >= models["input"]["accuracy"] - 0.005  # within 0.5 points
    assert step["metrics"]["calibration_samples"] == 256 and step["metrics"]["folded_weights"] == 4
    assert step["fidelity"]["cosine_mean"] > 0.999

    output = torch_digits / "out" / "model.onnx"
    model = onnx.load(str(output))
    int8 = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) > 1]
    assert len(int8) == 4  # the two conv and two linear weights are stored as INT8, not float + QuantizeLinear
    assert not [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) > 1]
    assert result["size_bytes"]["ratio"] < 0.3  # 608 KB -> 163 KB
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    x = np.load(torch_digits / "test.npz")["input"]
    assert session.run(None, {session.get_inputs()[0].name: x[:1]})[0].shape == (1, 10)
    assert "PT2E" in model.metadata_props[0].value or any("PT2E" in n for n in step["notes"])


def test_convert_is_refused_without_calibration(digits_pt2e) -> None:  # type: ignore[no-untyped-def]
    """INC converts an unobserved model without complaint (meaningless scales); we refuse."""
    from compressor_inc import inc, pt2e

    with inc.captured():
        from neural_compressor.torch.quantization import prepare

        prepared = prepare(pt2e.copy_exported(digits_pt2e.graph), pt2e.static_config())
    total, blind = pt2e.observer_report(prepared)
    assert total and len(blind) == total
    with pytest.raises(PassError, match="no calibration batch ran"):
        pt2e.calibrate("quantize.inc.static", prepared, [])
    assert pt2e.calibrate("quantize.inc.static", prepared, digits_pt2e.batches[:1]) == 1
    assert pt2e.observer_report(prepared)[1] == []


def test_skipped_op_types_stay_float_and_skipping_all_is_an_error(digits_pt2e) -> None:  # type: ignore[no-untyped-def]
    from compressor_inc import pt2e

    def quantize_ops(skip: tuple[str, ...]) -> int:
        quantized = pt2e.quantize("quantize.inc.static", digits_pt2e, pt2e.static_config(skip_op_types=skip))
        return sum("quantize_per" in str(node.target) for node in quantized.graph.nodes)

    everything = quantize_ops(())
    assert 0 < quantize_ops(("Linear",)) < everything  # a class for INC: its name alone matches nothing
    with pytest.raises(PassError, match="nothing was quantized"):
        quantize_ops(("Conv2d", "Linear"))


def test_folded_int8_weights_compute_exactly_what_quantize_linear_did(digits_pt2e, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import torch
    from compressor_inc import inc, pt2e
    from compressor_inc.onnx_qdq import fold_weight_quantization

    quantized = pt2e.quantize("quantize.inc.static", digits_pt2e, pt2e.static_config())
    raw = tmp_path / "raw.onnx"
    with inc.captured():
        torch.onnx.export(quantized, digits_pt2e.example, str(raw), dynamo=True, external_data=False)
    model = onnx.load(str(raw))
    assert fold_weight_quantization(model) == 4
    folded = tmp_path / "folded.onnx"
    onnx.save(model, str(folded))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # compare the graphs, not fusions
    x = digits_pt2e.example[0].numpy()  # exported without a dynamic batch here
    before, after = (
        ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        for p in (raw, folded)
    )
    np.testing.assert_array_equal(before, after)
    assert folded.stat().st_size < raw.stat().st_size / 3


def test_model_torch_export_cannot_trace_fails_with_one_line(cli, bad_models: Path) -> None:  # type: ignore[no-untyped-def]
    path = recipe(bad_models, "branchy.py:build", [{"quantize.inc.static": {}}], data="calib.npz")
    result = cli("run", path)
    assert_clean_error(result, ExitCode.PASS_FAILED, "quantize.inc.static", "cannot export the model for PT2E")
    assert "data-dependent" in result.stderr and "class GraphModule" not in result.output
    assert not (bad_models / "out").exists()


def test_static_needs_data(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    path = recipe(torch_digits, factory(torch_digits), [{"quantize.inc.static": {}}])
    assert_clean_error(cli("run", path), ExitCode.INPUT_ERROR, "quantize.inc.static", "needs a dataset")

"""compressor-tensorflow end to end: Keras and SavedModel vs ONNX vs INT8, and bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from compressor.errors import ExitCode
from tests.conftest import assert_clean_error
from tests.tensorflow.conftest import FAST, KerasModels

#: Keras 3.15's own numpy 2 conversion warns on every prediction; nothing to act on here.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")


def convert(cli, model: Path, out: Path, config: str = "", data: Path | None = None) -> dict:  # type: ignore[no-untyped-def]
    lines = ["version: 1", f"model: {model}", f"passes: [convert.tensorflow.onnx{config}]", "measure: {latency: false}"]
    if data is not None:
        lines.append(f"data: {data}")
    recipe = out.parent / f"{out.name}.yaml"
    recipe.write_text("\n".join(lines) + "\n")
    result = cli("run", recipe, "-o", out, "--json")
    assert result.code == 0, result.output
    return json.loads(result.stdout)["result"]


def test_keras_native_onnx_and_int8_in_one_table(cli, cnn: KerasModels, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    converted = convert(cli, cnn.keras_file, tmp_path / "onnx", data=cnn.test)
    onnx_path = Path(converted["output"])
    notes = converted["steps"][0]["notes"]
    assert "converted the Keras model's call with tf2onnx" in notes[0] and "checked against TensorFlow" in notes[1]
    int8 = tmp_path / "int8.onnx"
    assert cli("quantize", onnx_path, "--mode", "static", "--data", cnn.calib, "-o", int8).code == 0
    result = cli("compare", cnn.keras_file, onnx_path, int8, "--data", cnn.test, "--batch", "1,64", *FAST, "--json")
    assert result.code == 0, result.output
    keras_model, as_onnx, quantized = json.loads(result.stdout)["result"]["models"]
    assert keras_model["format"] == "keras" and "tensorflow" in keras_model["backend"]
    assert keras_model["accuracy"] >= 0.9  # 540 held-out digits
    assert as_onnx["accuracy"] == keras_model["accuracy"]
    assert as_onnx["fidelity"]["max_abs_diff"] < 1e-4 and as_onnx["fidelity"]["top1_agreement"] == 1.0
    assert quantized["accuracy"] >= keras_model["accuracy"] - 0.02
    assert quantized["size_bytes"] < 0.7 * as_onnx["size_bytes"]  # a small model: scales and zero points weigh
    assert as_onnx["size_bytes"] < keras_model["size_bytes"]
    assert keras_model["stats"]["params"] >= as_onnx["stats"]["params"] > 0.9 * keras_model["stats"]["params"]
    if importlib.util.find_spec("compressor.cli.check") is not None:  # `compressor check` gates all three
        config = tmp_path / "pyproject.toml"
        config.write_text("[project]\nname = 'isolated'\n")
        gate = ("--min-accuracy", "90%", "--max-size", "600KB", "--data", cnn.test, "--config", config, "--no-record")
        checked = cli("check", cnn.keras_file, onnx_path, int8, *gate, "--json")
        assert checked.code == 0, checked.output
        assert json.loads(checked.stdout)["result"]["checks"] == 6
        too_small = cli("check", cnn.keras_file, *gate, "--max-size", "100KB")
        assert too_small.code == ExitCode.CONSTRAINT_NOT_MET and "max_size" in too_small.output


def test_savedmodel_converts_with_the_chosen_opset(cli, cnn: KerasModels, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import tensorflow as tf

    onnx_path = Path(convert(cli, cnn.saved_model, tmp_path / "sm", ": {opset: 13}")["output"])
    model = onnx.load(str(onnx_path))
    assert {o.domain: o.version for o in model.opset_import}[""] == 13
    assert [i.name for i in model.graph.input] == ["pixels"] and [o.name for o in model.graph.output] == ["output_0"]
    pixels = np.load(cnn.test)["pixels"][:32]
    expected = tf.saved_model.load(str(cnn.saved_model)).signatures["serving_default"](pixels=tf.constant(pixels))
    (produced,) = ort.InferenceSession(str(onnx_path)).run(None, {"pixels": pixels})
    np.testing.assert_allclose(produced, expected["output_0"].numpy(), atol=1e-5)


def test_an_opset_tf2onnx_lacks_is_refused_before_work(cli, cnn: KerasModels, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"version: 1\nmodel: {cnn.keras_file}\npasses: [convert.tensorflow.onnx: {{opset: 19}}]\n")
    assert_clean_error(cli("run", recipe, "-o", tmp_path / "out"), ExitCode.INPUT_ERROR, "opset", "18")


def test_a_savedmodel_without_a_serving_signature_is_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import tensorflow as tf

    class Scale(tf.Module):
        def __init__(self) -> None:
            self.factor = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def scale(self, x):  # type: ignore[no-untyped-def]
            return x * self.factor

    tf.saved_model.save(Scale(), str(tmp_path / "nosig"), signatures={})
    result = cli("inspect", tmp_path / "nosig")
    assert_clean_error(result, ExitCode.INPUT_ERROR, "nosig", "without a serving signature")
    assert "model.export" in result.stderr


def test_a_keras_lambda_layer_loads_only_when_trusted(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2.0), keras.layers.Dense(2)])
    model.save(tmp_path / "lambda.keras")
    assert_clean_error(cli("inspect", tmp_path / "lambda.keras"), ExitCode.INPUT_ERROR, "lambda.keras", "Lambda")
    assert cli("inspect", tmp_path / "lambda.keras", "--trust-pickle").code == 0


def test_a_corrupt_keras_file_is_a_clean_input_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not really a zip")
    assert_clean_error(cli("inspect", tmp_path / "broken.keras"), ExitCode.INPUT_ERROR, "broken.keras")

"""Bad input for compressor-sklearn: one clear line and a documented exit code each, and nothing run."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from compressor.errors import ExitCode
from tests.conftest import assert_clean_error
from tests.sklearn.conftest import Models, train, write_recipe


class WritesMarker:
    """Unpickling this creates ``path``: proof that a pickle ran code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.path), "w"))


def test_a_malicious_pickle_is_refused_and_never_runs(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pwned"
    payload = pickle.dumps(WritesMarker(marker))
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(WritesMarker(probe))).close()
    assert probe.exists()  # the payload really runs code when unpickled ...
    for name in ("model.pkl", "model.joblib", "model.pickle"):
        (tmp_path / name).write_bytes(payload)
        assert_clean_error(cli("inspect", tmp_path / name), ExitCode.INPUT_ERROR, name, "pickle", "--trust-pickle")
    data = train.save_data(tmp_path / "data.npz", "input", np.zeros((4, 30), np.float32))
    result = cli("compare", tmp_path / "model.pkl", tmp_path / "model.joblib", "--data", data)
    assert_clean_error(result, ExitCode.INPUT_ERROR, "--trust-pickle")
    assert not marker.exists()  # ... and compressor never unpickled it


def test_a_skops_file_with_untrusted_types_is_refused(cli, models: Models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("compare", models.mlp, models.mlp, "--data", models.digits_test)
    assert_clean_error(
        result, ExitCode.INPUT_ERROR, "digits_mlp.skops", "sklearn.neural_network._stochastic_optimizers.AdamOptimizer"
    )
    assert "hint: " in result.stderr and "--trust-pickle" in result.stderr


def test_a_corrupt_xgboost_json_is_a_clean_input_error(cli, models: Models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = models.xgb.read_text()
    corrupt = tmp_path / "truncated.json"
    corrupt.write_text(text[: len(text) // 2])
    assert_clean_error(cli("inspect", corrupt), ExitCode.INPUT_ERROR, "truncated.json", "not a valid XGBoost model")
    garbage = tmp_path / "garbage.ubj"
    garbage.write_bytes(b"\x00\x01not ubjson")
    assert_clean_error(cli("inspect", garbage), ExitCode.INPUT_ERROR, "garbage.ubj", "not a valid XGBoost model")


def test_a_corrupt_lightgbm_model_is_a_clean_input_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "model.txt"
    bad.write_text("tree\nversion=v4\nnum_class=1\n")
    assert_clean_error(cli("inspect", bad), ExitCode.INPUT_ERROR, "model.txt", "not a valid LightGBM model")


def test_an_estimator_the_converter_lacks_is_named(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.semi_supervised import LabelSpreading

    x_train, _, y_train, _ = train.split("breast_cancer")
    sio.dump(make_pipeline(StandardScaler(), LabelSpreading()).fit(x_train[:100], y_train[:100]), tmp_path / "ls.skops")
    recipe = write_recipe(
        tmp_path,
        "r",
        "version: 1\nmodel: ls.skops\nmodel_options: {trust_pickle: true}\npasses: [convert.sklearn.onnx]\n",
    )
    result = cli("run", recipe, "-o", tmp_path / "out")
    assert_clean_error(
        result,
        ExitCode.PASS_FAILED,
        "convert.sklearn.onnx",
        "no converter for LabelSpreading",
        "Pipeline(StandardScaler",
    )
    assert not (tmp_path / "out").exists()


def test_a_shape_that_contradicts_the_model_is_a_usage_error(cli, models: Models) -> None:  # type: ignore[no-untyped-def]
    result = cli("inspect", models.xgb, "--shape", "input=1x12")
    assert_clean_error(result, ExitCode.USAGE_ERROR, "12 features", "30")

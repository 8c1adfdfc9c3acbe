"""compressor-sklearn end to end: native vs ONNX vs compressed in one table, on held-out data."""

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
from tests.sklearn.conftest import FAST, Models, train, write_recipe


def run_recipe(cli, folder: Path, name: str, model: Path, passes: str, data: Path | None = None, trust: bool = False):  # type: ignore[no-untyped-def]
    """`compressor run` on a recipe with ``passes``; returns (output path, result)."""
    lines = ["version: 1", f"model: {model}", f"passes: {passes}", "measure: {latency: false}"]
    if data is not None:
        lines.append(f"data: {data}")
    if trust:
        lines.append("model_options: {trust_pickle: true}")
    recipe = write_recipe(folder, name, "\n".join(lines) + "\n")
    result = cli("run", recipe, "-o", folder / name, "--json")
    assert result.code == 0, result.output
    envelope = json.loads(result.stdout)["result"]
    return Path(envelope["output"]), envelope


def compare(cli, *models: Path, data: Path, trust: bool = False) -> list[dict]:  # type: ignore[no-untyped-def]
    args = ["compare", *models, "--data", data, *FAST, "--batch", "1,64", "--json"]
    result = cli(*args, *(["--trust-pickle"] if trust else []))
    assert result.code == 0, result.output
    return json.loads(result.stdout)["result"]["models"]


def test_xgboost_native_onnx_and_pruned_in_one_table(cli, models: Models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    onnx_path, converted = run_recipe(cli, tmp_path, "onnx", models.xgb, "[convert.sklearn.onnx]", models.bc_test)
    step = converted["steps"][0]
    assert step["name"] == "convert.sklearn.onnx" and step["metrics"]["label_agreement"] == 1.0
    assert any("labels equal" in note for note in step["notes"])
    pruned_path, pruned = run_recipe(
        cli, tmp_path, "pruned", models.xgb, "[prune.trees: {rounds: 10}, convert.sklearn.onnx]", models.bc_test
    )
    assert [s["name"] for s in pruned["steps"]] == ["prune.trees", "convert.sklearn.onnx"]
    native, as_onnx, compressed = compare(cli, models.xgb, onnx_path, pruned_path, data=models.bc_test)
    assert [m["format"] for m in (native, as_onnx, compressed)] == ["xgboost", "onnx", "onnx"]
    assert native["backend"].startswith("xgboost") and as_onnx["backend"].startswith("onnxruntime")
    assert native["accuracy"] >= 0.93  # 171 held-out samples of breast cancer
    assert as_onnx["accuracy"] == native["accuracy"]
    assert as_onnx["fidelity"]["top1_agreement"] == 1.0
    assert as_onnx["fidelity"]["max_abs_diff"] < 1e-4  # probabilities, not labels, are compared
    assert as_onnx["stats"]["params"] == native["stats"]["params"]  # tree nodes, counted the same way
    assert compressed["stats"]["params"] < 0.4 * as_onnx["stats"]["params"]
    assert compressed["size_bytes"] < 0.4 * as_onnx["size_bytes"]
    assert compressed["accuracy"] >= native["accuracy"] - 0.05
    assert set(compressed["latency"]) == {"1", "64"}


def test_lightgbm_onnx_labels_equal_and_probabilities_within_tolerance(cli, models: Models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import lightgbm as lgb

    onnx_path, _ = run_recipe(cli, tmp_path, "lgbm", models.lgbm, "[convert.sklearn.onnx]", models.digits_test)
    graph = onnx.load(str(onnx_path)).graph
    assert [o.name for o in graph.output] == ["label", "probabilities"]
    assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # onnxmltools declares [1]
    data = np.load(models.digits_test)
    native = lgb.Booster(model_file=str(models.lgbm)).predict(data["input"])
    labels, probabilities = ort.InferenceSession(str(onnx_path)).run(None, {"input": data["input"]})
    np.testing.assert_array_equal(labels, native.argmax(axis=1))
    assert np.abs(probabilities - native).max() <= 1e-4
    assert (labels == data["labels"]).mean() >= 0.9


def test_pipeline_from_skops_needs_trust_then_converts_and_quantizes(cli, models: Models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    refused = cli("inspect", models.mlp)
    assert_clean_error(refused, ExitCode.INPUT_ERROR, "AdamOptimizer", "not trust")
    assert "--trust-pickle" in refused.stderr
    onnx_path, converted = run_recipe(
        cli, tmp_path, "mlp", models.mlp, "[convert.sklearn.onnx]", models.digits_test, trust=True
    )
    assert "Pipeline(StandardScaler, MLPClassifier)" in converted["steps"][0]["notes"][0]
    int8 = tmp_path / "mlp_int8.onnx"
    assert cli("quantize", onnx_path, "--mode", "dynamic", "-o", int8).code == 0
    native, as_onnx, quantized = compare(cli, models.mlp, onnx_path, int8, data=models.digits_test, trust=True)
    weights = 64 * 32 + 32 + 32 * 10 + 10  # the MLP's; the scaler adds mean_, var_ and scale_ natively
    assert native["format"] == "sklearn" and native["stats"]["params"] == weights + 3 * 64
    assert 0 <= as_onnx["stats"]["params"] - weights < 20  # plus a few shape constants
    assert native["accuracy"] >= 0.93
    assert as_onnx["accuracy"] == native["accuracy"] and as_onnx["fidelity"]["max_abs_diff"] < 1e-4
    assert quantized["accuracy"] >= native["accuracy"] - 0.02
    assert quantized["size_bytes"] < 0.6 * as_onnx["size_bytes"]


def test_prune_trees_keeps_the_first_rounds_exactly(cli, models: Models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import lightgbm as lgb
    from compressor_sklearn.prune import PruneTrees

    from compressor.loaders import load_model

    assert PruneTrees.search_space(load_model(models.lgbm)) == [{"rounds": k} for k in (3, 8, 15, 22)]
    folder, result = run_recipe(cli, tmp_path, "half", models.lgbm, "[prune.trees: {fraction: 0.5}]")
    assert sorted(p.name for p in folder.iterdir()) == ["artifact.json", "model.txt"]
    assert result["steps"][0]["metrics"]["rounds_after"] == 15
    assert "kept the first 15 of 30 rounds: 150 of 300 trees" in result["steps"][0]["notes"][0]
    pruned = lgb.Booster(model_file=str(folder / "model.txt"))
    assert pruned.current_iteration() == 15
    x = np.load(models.digits_test)["input"]
    full = lgb.Booster(model_file=str(models.lgbm))
    np.testing.assert_allclose(pruned.predict(x), full.predict(x, num_iteration=15), rtol=1e-12)
    info = json.loads(cli("inspect", folder, "--json").stdout)["result"]
    assert info["format"] == "lightgbm" and info["extra"]["rounds"] == 15
    assert [r["name"] for r in info["lineage"]] == ["prune.trees"]


def test_prune_trees_on_a_scikit_learn_gradient_boosting_model(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import skops.io as sio
    from sklearn.ensemble import GradientBoostingClassifier

    x_train, x_test, y_train, y_test = train.split("breast_cancer")
    model = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0).fit(x_train, y_train)
    sio.dump(model, tmp_path / "gb.skops")
    data = train.save_data(tmp_path / "test.npz", "input", x_test, y_test)
    folder, result = run_recipe(
        cli, tmp_path, "gb", tmp_path / "gb.skops", "[prune.trees: {rounds: 5}]", data, trust=True
    )
    pruned_file = folder / "model.skops"
    pruned = sio.load(pruned_file, trusted=sio.get_untrusted_types(file=pruned_file))
    assert pruned.estimators_.shape[0] == 5 and pruned.n_estimators == 5
    expected = model.staged_predict_proba(x_test)
    for _ in range(4):
        next(expected)
    np.testing.assert_allclose(pruned.predict_proba(x_test), next(expected))
    assert result["measurement"]["models"][1]["accuracy"] >= 0.85


def test_prune_trees_that_would_keep_every_round_fails(cli, models: Models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = write_recipe(tmp_path, "all", f"version: 1\nmodel: {models.xgb}\npasses: [prune.trees: {{rounds: 40}}]\n")
    result = cli("run", recipe, "-o", tmp_path / "out")
    assert_clean_error(result, ExitCode.PASS_FAILED, "prune.trees", "nothing to prune", "40 rounds")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("config", ["{}", "{rounds: 5, fraction: 0.5}", "{fraction: 1.5}"])
def test_prune_trees_config_is_validated_before_work(cli, models: Models, tmp_path: Path, config: str) -> None:  # type: ignore[no-untyped-def]
    recipe = write_recipe(tmp_path, "bad", f"version: 1\nmodel: {models.xgb}\npasses: [prune.trees: {config}]\n")
    assert_clean_error(cli("run", recipe, "-o", tmp_path / "out"), ExitCode.INPUT_ERROR, "prune.trees")


def check(cli, tmp_path: Path, *args: object):  # type: ignore[no-untyped-def]
    """`compressor check` with no project configuration or history of its own."""
    config = tmp_path / "pyproject.toml"
    config.write_text("[project]\nname = 'isolated'\n")
    return cli("check", *args, "--config", config, "--no-record", "--json")


@pytest.mark.skipif(importlib.util.find_spec("compressor.cli.check") is None, reason="no `compressor check` yet")
def test_check_gates_the_native_model_and_its_onnx(cli, models: Models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    onnx_path, _ = run_recipe(cli, tmp_path, "onnx", models.xgb, "[convert.sklearn.onnx]", models.bc_test)
    budgets = ("--max-size", "200KB", "--min-accuracy", "93%", "--data", models.bc_test)
    passed = check(cli, tmp_path, models.xgb, onnx_path, *budgets)
    assert passed.code == 0, passed.output
    result = json.loads(passed.stdout)["result"]
    assert result["passed"] and result["checks"] == 4
    assert {m["measurement"]["format"] for m in result["models"]} == {"xgboost", "onnx"}
    nodes = [m["metrics"]["params"]["value"] for m in result["models"]]
    assert nodes[0] == nodes[1] > 100  # tree nodes, natively and in ONNX
    failed = check(cli, tmp_path, models.xgb, onnx_path, *budgets, "--max-params", "100")
    assert failed.code == ExitCode.CONSTRAINT_NOT_MET, failed.output
    failures = json.loads(failed.stdout)["result"]["failures"]
    assert len(failures) == 2 and all("max_params" in f for f in failures)

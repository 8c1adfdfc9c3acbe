"""`compressor run RECIPE`: validation before work, the output folder, budgets, and exact reproduction."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import yaml

from compressor.errors import ExitCode
from compressor.recipe import load_recipe
from tests.conftest import assert_clean_error, file_digest

FAST_MEASURE = {"batches": [1, 8], "threads": 1, "min_runs": 5, "min_time": 0.05}


def write_recipe(folder: Path, **fields: object) -> Path:
    data = {"version": 1, "model": "digits_cnn.onnx", "data": "calib.npz", "eval_data": "test.npz", **fields}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_recipe_runs_passes_in_order_and_writes_a_complete_folder(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = write_recipe(
        digits_dir,
        passes=[{"graph.slim": {}}, {"name": "quantize.static", "config": {"calibration_samples": 128}}],
        output="out",
        budgets={"max_size": "200KB", "min_accuracy": "98%", "min_fidelity": 0.99},
        measure=FAST_MEASURE,
    )
    result = cli("run", recipe, "--json")
    assert result.code == ExitCode.OK, result.output
    out = digits_dir / "out"
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "recipe.yaml", "report.json", "report.md"]
    envelope = json.loads(result.stdout)["result"]
    assert [s["name"] for s in envelope["steps"]] == ["graph.slim", "quantize.static"]
    assert {b["name"]: b["passed"] for b in envelope["budgets"]} == {
        "max_size": True, "min_accuracy": True, "min_fidelity": True,
    }  # fmt: skip
    output_model = envelope["measurement"]["models"][1]
    assert output_model["accuracy"] >= 0.98 and set(output_model["latency"]) == {"1", "8"}
    assert json.loads((out / "report.json").read_text())["exit_code"] == 0
    assert "| min_accuracy |" in (out / "report.md").read_text()


def test_written_recipe_reproduces_the_model_exactly(cli, digits_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = write_recipe(digits_dir, passes=["quantize.static"], output="first", measure=FAST_MEASURE)
    assert cli("run", recipe).code == 0
    replay = digits_dir / "first" / "recipe.yaml"
    written = yaml.safe_load(replay.read_text())
    assert written["passes"][0]["name"] == "quantize.static"
    assert written["passes"][0]["config"]["per_channel"] is True  # defaults are spelled out
    second = tmp_path / "second"
    assert cli("run", replay, "-o", second).code == 0
    assert file_digest(second / "model.onnx") == file_digest(digits_dir / "first" / "model.onnx")


def test_broken_budgets_exit_with_the_budget_code_and_name_the_budget(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = write_recipe(
        digits_dir, passes=["quantize.dynamic"], output="out", budgets={"max_size": "10KB"}, measure=FAST_MEASURE
    )
    result = cli("run", recipe)
    assert result.code == ExitCode.CONSTRAINT_NOT_MET
    assert "budgets not met: max_size" in result.stderr
    assert "FAIL" in result.stdout
    assert (digits_dir / "out" / "model.onnx").is_file()  # the result is kept for inspection


def test_every_name_and_option_is_validated_before_work_starts(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = write_recipe(digits_dir, passes=["quantize.static", {"quantize.int4": {"block_size": 100}}], output="out")
    result = cli("run", recipe)
    assert_clean_error(result, ExitCode.INPUT_ERROR, "quantize.int4", "block_size")
    assert "[1/" not in result.stderr  # no pass started
    assert not (digits_dir / "out").exists()


def test_recipe_without_output_needs_dash_o(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = write_recipe(digits_dir, passes=["quantize.dynamic"])
    assert_clean_error(cli("run", recipe), ExitCode.USAGE_ERROR, "-o")


def test_short_and_long_pass_forms_parse_alike(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, passes=["graph.slim", {"quantize.dynamic": None}, {"name": "convert.fp16"}])
    parsed, steps = load_recipe(recipe)
    assert [s.name for s in steps] == ["graph.slim", "quantize.dynamic", "convert.fp16"]
    assert parsed.passes[1].config == {}


def test_quantized_output_lineage_names_every_step(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = write_recipe(digits_dir, passes=["graph.slim", "quantize.dynamic"], output="out", measure=FAST_MEASURE)
    assert cli("run", recipe).code == 0
    model = onnx.load(str(digits_dir / "out" / "model.onnx"))
    lineage = json.loads(next(p.value for p in model.metadata_props if p.key == "compressor.lineage"))
    assert [step["name"] for step in lineage] == ["graph.slim", "quantize.dynamic"]

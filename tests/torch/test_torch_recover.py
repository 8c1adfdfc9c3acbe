"""Recovery: distillation (default teacher: the model before pruning; labels optional), fine-tuning, recipes."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("compressor_torch")

from compressor.errors import ExitCode
from tests.conftest import assert_clean_error
from tests.torch.conftest import TRAIN_8X8, factory, write_module

ORIGINAL_ACCURACY = 0.9917
SMALL_STUDENT = """
import sys
sys.path.insert(0, {folder!r})
from model import DigitsCNN

def build():
    return DigitsCNN(channels=(8, 16), hidden={hidden})
"""


def accuracy_of(cli, base: Path, candidate: Path, data: Path) -> tuple[float, float, dict]:  # type: ignore[no-untyped-def]
    result = cli("compare", base, candidate, "--data", data, "--min-runs", 3, "--min-time", 0, "--batch", 8, "--json")
    assert result.code == 0, result.output
    first, second = json.loads(result.stdout)["result"]["models"]
    return first["accuracy"], second["accuracy"], second


def test_structured_pruning_plus_distillation_keeps_accuracy_at_a_quarter_of_the_params(
    cli, torch_digits: Path
) -> None:  # type: ignore[no-untyped-def]
    out = torch_digits / "pruned.onnx"
    result = cli(
        "prune", factory(torch_digits), "--weights", torch_digits / "digits_cnn.safetensors", "--sparsity", "0.5",
        "--recover", "distill", "--data", TRAIN_8X8, "-o", out, "--json",
    )  # fmt: skip
    assert result.code == 0, result.output
    steps = json.loads(result.stdout)["result"]["steps"]
    assert [s["name"] for s in steps] == ["prune.structured", "distill", "convert.onnx"]
    assert steps[0]["metrics"]["importance"] == "taylor"  # data given: gradient-based ranking
    assert "the model before pruning (model.py + digits_cnn.safetensors)" in steps[1]["notes"][0]
    base_accuracy, accuracy, pruned = accuracy_of(cli, torch_digits / "digits_cnn.onnx", out, torch_digits / "test.npz")
    assert base_accuracy == pytest.approx(ORIGINAL_ACCURACY, abs=1e-4)
    assert accuracy >= base_accuracy - 0.01
    assert pruned["stats"]["params"] <= 0.3 * 151_308  # the unpruned export's parameters (BN folded)


def test_recipe_mixes_torch_and_onnx_passes(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = torch_digits / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "model": "model.py:build_model",
                "model_options": {"weights": "digits_cnn.safetensors"},
                "data": TRAIN_8X8,
                "eval_data": "test.npz",
                "passes": [
                    {"prune.structured": {"ratio": 0.5}},
                    {"distill": {"epochs": 6}},
                    {"quantize.static": {"calibration_samples": 128}},
                ],
                "output": "out",
                "budgets": {"min_accuracy": "97%", "max_params": 45000},
                "measure": {"batches": [8], "min_runs": 3, "min_time": 0.05},
            }
        )
    )
    result = cli("run", recipe, "--json")
    assert result.code == ExitCode.OK, result.output
    report = json.loads(result.stdout)["result"]
    names = [(s["name"], s["inserted"]) for s in report["steps"]]
    assert names == [
        ("prune.structured", False), ("distill", False), ("convert.onnx", True), ("quantize.static", False),
    ]  # fmt: skip
    source, output = report["measurement"]["models"]
    assert source["format"] == "torch" and output["format"] == "onnx"
    assert output["stats"]["quantization"] == ["qdq"]
    assert output["accuracy"] >= 0.97 and all(b["passed"] for b in report["budgets"])
    assert sorted(p.name for p in (torch_digits / "out").iterdir()) == [
        "model.onnx", "recipe.yaml", "report.json", "report.md",
    ]  # fmt: skip


def test_distill_into_a_small_student_without_labels(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    write_module(torch_digits, "student", SMALL_STUDENT.format(folder=str(torch_digits), hidden=32))
    train = np.load(torch_digits / "calib.npz")
    unlabelled = torch_digits / "unlabelled.npz"
    np.savez(unlabelled, input=train["input"])  # no labels: the teacher's outputs are the only targets
    out = torch_digits / "student-out"
    result = cli(
        "distill", "--teacher", torch_digits / "digits_cnn.onnx", "--student", f"{torch_digits / 'student.py'}:build",
        "--data", unlabelled, "--epochs", "25", "--lr", "0.005", "-o", out, "--json",
    )  # fmt: skip
    assert result.code == 0, result.output
    step = json.loads(result.stdout)["result"]["steps"][0]
    assert "soft only" in step["notes"][0] and "top-1 agreement with the teacher" in step["notes"][0]
    assert step["metrics"]["best_score"] > step["metrics"]["initial_score"]
    _, accuracy, student = accuracy_of(cli, torch_digits / "digits_cnn.onnx", out, torch_digits / "test.npz")
    assert student["stats"]["params"] < 0.15 * 151_498
    assert accuracy >= 0.85 and student["fidelity"]["top1_agreement"] >= 0.85


def test_a_student_whose_outputs_do_not_match_the_teacher_is_refused(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    write_module(torch_digits, "wrong", SMALL_STUDENT.format(folder=str(torch_digits), hidden=32).replace(
        "hidden=32)", "hidden=32, num_classes=5)"))  # fmt: skip
    out = torch_digits / "never"
    result = cli(
        "distill", "--teacher", factory(torch_digits), "--teacher-weights", torch_digits / "digits_cnn.safetensors",
        "--student", f"{torch_digits / 'wrong.py'}:build", "--data", torch_digits / "calib.npz", "-o", out,
    )  # fmt: skip
    assert_clean_error(result, ExitCode.INPUT_ERROR, "student's output ['N', 5]", "teacher's ['N', 10]")
    assert not out.exists()


def test_finetune_needs_labels_and_respects_its_time_budget(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    common = ["prune", factory(torch_digits), "--weights", torch_digits / "digits_cnn.safetensors", "--recover",
              "finetune"]  # fmt: skip
    unlabelled = torch_digits / "unlabelled.npz"
    np.savez(unlabelled, input=np.load(torch_digits / "calib.npz")["input"])
    refused = cli(*common, "--data", unlabelled, "-o", torch_digits / "a")
    assert_clean_error(refused, ExitCode.PASS_FAILED, "finetune", "has no labels")
    assert "use distill" in refused.stderr
    timed = cli(*common, "--data", TRAIN_8X8, "--epochs", "50", "--max-time", "0.01s", "-o", torch_digits / "b",
                "--json")  # fmt: skip
    assert timed.code == 0, timed.output
    finetune = json.loads(timed.stdout)["result"]["steps"][1]
    assert finetune["metrics"]["stopped"] == "time budget"
    assert finetune["metrics"]["epochs_run"] < 50


def test_training_reports_progress_through_the_context(torch_digits: Path) -> None:
    from compressor.data import load_dataset
    from compressor.loaders import LoaderOptions, load_model
    from compressor.pipeline import make_steps
    from compressor.workflow import compress

    calls: list[tuple[str, float | None, float]] = []

    @contextlib.contextmanager
    def progress(description: str, total: float | None):  # type: ignore[no-untyped-def]
        calls.append((description, total, 0.0))

        def advance(amount: float = 1.0) -> None:
            name, tot, done = calls[-1]
            calls[-1] = (name, tot, done + amount)

        yield advance

    source = load_model(factory(torch_digits), LoaderOptions(weights=torch_digits / "digits_cnn.safetensors"))
    data = load_dataset(str(torch_digits / "calib.npz"), source)
    steps = make_steps([("prune.structured", {"ratio": 0.3}), ("finetune", {"epochs": 2, "batch_size": 32})])
    done = compress(source, steps, torch_digits / "ft", data, progress=progress)
    assert calls == [("finetune: training", 2 * 8.0, 2 * 8.0)]  # 231 training samples, batches of 32, 2 epochs
    assert done.output.format == "torch"

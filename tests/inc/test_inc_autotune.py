"""`quantize.inc.autotune`: INC's tuning to a tolerable loss on the user's metric; a goal it misses is an error that
names the tolerable loss and every trial (INC itself hands back its best model anyway)."""

from __future__ import annotations

from pathlib import Path

from compressor.errors import ExitCode
from tests.conftest import assert_clean_error
from tests.inc.conftest import NEEDS_INC, recipe, run_json

pytestmark = NEEDS_INC


def test_autotune_meets_the_accuracy_goal_and_writes_onnx(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    config = {"eval_data": str(torch_digits / "test.npz"), "tolerable_loss": 0.005, "max_trials": 2}
    path = recipe(
        torch_digits,
        "model.py:build_model",
        [{"quantize.inc.autotune": config}],
        model_options={"weights": "digits_cnn.safetensors"},
        data="calib.npz",
        eval_data="test.npz",
    )
    result = run_json(cli, path)
    step = result["steps"][0]
    assert step["format"] == "onnx"
    metrics = step["metrics"]
    assert metrics["metric"] == "accuracy" and metrics["baseline"] > 0.99
    assert metrics["trials"] and metrics["trials"][-1]["score"] >= metrics["goal"]
    assert metrics["calibrations"] >= 1
    output = {m["label"]: m for m in result["measurement"]["models"]}["output"]
    assert output["accuracy"] >= metrics["baseline"] * (1 - 0.005) - 1e-9


def test_autotune_that_misses_the_goal_names_the_tolerable_loss_and_the_trials(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    # fidelity never reaches 1.0 exactly once quantized: a zero tolerable loss cannot be met
    config = {"metric": "fidelity", "tolerable_loss": 0.0, "max_trials": 2, "calibration_samples": 64}
    path = recipe(
        torch_digits,
        "model.py:build_model",
        [{"quantize.inc.autotune": config}],
        model_options={"weights": "digits_cnn.safetensors"},
        data="calib.npz",
    )
    result = cli("run", path)
    assert_clean_error(
        result, ExitCode.PASS_FAILED, "quantize.inc.autotune", "tolerable_loss 0", "tried 2 of", "kl activations"
    )
    assert not (torch_digits / "out").exists()


def test_accuracy_metric_needs_class_labels(cli, stack_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from tests.inc.conftest import LINEAR_STACK

    np.savez(stack_dir / "unlabelled.npz", input=np.load(stack_dir / "calib.npz")["input"])
    path = recipe(
        stack_dir,
        f"{LINEAR_STACK}:build_small",
        [{"quantize.inc.autotune": {"metric": "accuracy"}}],
        data="unlabelled.npz",
    )
    assert_clean_error(cli("run", path), ExitCode.PASS_FAILED, "metric accuracy needs class labels")

"""`quantize.inc.weight_only`: RTN/GPTQ/AWQ stored packed (really smaller on disk), reloaded without pickle and run by
the inc-woq runner; the models INC's algorithms cannot handle are refused with one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from compressor.errors import ExitCode
from tests.conftest import assert_clean_error
from tests.inc.conftest import LINEAR_STACK, NEEDS_INC, recipe, run_json

pytestmark = NEEDS_INC


def float_weights(folder: Path, factory_name: str) -> Path:
    """The example's random-init weights as safetensors: the float model on disk, to compare sizes with."""
    import importlib.util

    from safetensors.torch import save_file

    spec = importlib.util.spec_from_file_location("linear_stack_model", LINEAR_STACK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = folder / f"{factory_name}.safetensors"
    save_file({k: v.contiguous() for k, v in getattr(module, factory_name)().state_dict().items()}, str(path))
    return path


def test_rtn_int4_on_the_linear_stack_is_five_times_smaller_and_reloads(cli, stack_dir: Path) -> None:  # type: ignore[no-untyped-def]
    weights = float_weights(stack_dir, "build_model")  # four 512x512 Linear layers: 4.4 MB in float32
    path = recipe(
        stack_dir,
        f"{LINEAR_STACK}:build_model",
        [{"quantize.inc.weight_only": {"bits": 4, "group_size": 32}}],
        model_options={"weights": str(weights)},
        data="calib.npz",  # RTN needs no data; the model's input shape comes from it
        eval_data="test.npz",
    )
    result = run_json(cli, path)
    step = result["steps"][0]
    assert step["format"] == "inc-woq" and step["metrics"]["layers_quantized"] == 6
    size = result["size_bytes"]
    assert size["input"] == weights.stat().st_size
    assert size["input"] / size["output"] >= 5.0, size  # the whole folder: packed weights, woq.json, artifact.json
    assert step["fidelity"]["cosine_mean"] > 0.98
    folder = stack_dir / "out" / "model"
    assert sorted(p.name for p in folder.iterdir()) == ["artifact.json", "weights.safetensors", "woq.json"]
    layers = json.loads((folder / "woq.json").read_text())["layers"]
    assert layers["blocks.0.fc1"]["bits"] == 4 and layers["blocks.0.fc1"]["group_size"] == 32

    from safetensors import safe_open

    with safe_open(str(folder / "weights.safetensors"), "pt") as stored:
        assert str(stored.get_slice("blocks.0.fc1.qweight").get_dtype()) == "I32"  # 8 weights per int32 word
        assert stored.get_slice("blocks.0.fc1.qweight").get_shape() == [64, 512]
        assert not [k for k in stored.keys() if k.endswith("fc1.weight")]  # noqa: SIM118  (no float copy)

    inspected = cli("inspect", folder, "--json")  # the inc-woq loader and runner, in a later command
    assert inspected.code == 0, inspected.output
    stats = json.loads(inspected.stdout)["result"]["stats"]
    assert stats["weight_only_layers"] == 6 and stats["weight_bits"] == [4]
    assert stats["params"] > 1_000_000  # weights counted, not packed words


@pytest.mark.parametrize(
    ("algorithm", "quantized"),
    [("gptq", 4), ("awq", 6)],  # INC's GPTQ leaves the layers before and after the block stack in float
)
def test_gptq_and_awq_calibrate_on_the_data(cli, stack_dir: Path, algorithm: str, quantized: int) -> None:  # type: ignore[no-untyped-def]
    path = recipe(
        stack_dir,
        f"{LINEAR_STACK}:build_small",
        [{"quantize.inc.weight_only": {"algorithm": algorithm, "calibration_samples": 64}}],
        data="calib.npz",
    )
    step = run_json(cli, path)["steps"][0]
    assert step["metrics"]["layers_quantized"] == quantized, step["notes"]
    assert step["fidelity"]["cosine_mean"] > 0.98
    assert step["notes"][0].startswith(algorithm.upper())


def test_excluded_layers_stay_float(cli, stack_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path = recipe(
        stack_dir,
        f"{LINEAR_STACK}:build_small",
        [{"quantize.inc.weight_only": {"bits": 8, "exclude": ["head", "proj"]}}],
        data="calib.npz",
    )
    step = run_json(cli, path)["steps"][0]
    assert step["metrics"]["layers_quantized"] == 4
    assert "left in float: head, proj" in step["notes"][0]


def test_awq_and_gptq_on_a_model_without_blocks_and_a_model_without_linear(cli, bad_models: Path) -> None:  # type: ignore[no-untyped-def]
    for algorithm in ("awq", "gptq"):
        path = recipe(
            bad_models, "flat.py:build", [{"quantize.inc.weight_only": {"algorithm": algorithm}}], data="calib.npz"
        )
        assert_clean_error(cli("run", path), ExitCode.PASS_FAILED, algorithm.upper(), "blocks")
    path = recipe(bad_models, "convonly.py:build", [{"quantize.inc.weight_only": {}}], data="calib.npz")
    assert_clean_error(cli("run", path), ExitCode.PASS_FAILED, "nothing to quantize", "no nn.Linear")


def test_transformers_imported_after_inc_does_not_break_rtn(cli, stack_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """INC's rtn module binds `transformers` only if it was imported first, then tests again when it runs:
    imported later, RTN raised NameError. The pass binds the name before calling INC."""
    import importlib

    rtn = importlib.import_module("neural_compressor.torch.algorithms.weight_only.rtn")
    importlib.import_module("transformers")
    monkeypatch.delattr(rtn, "transformers", raising=False)  # as if transformers came after INC
    path = recipe(stack_dir, f"{LINEAR_STACK}:build_small", [{"quantize.inc.weight_only": {}}], data="calib.npz")
    assert run_json(cli, path)["steps"][0]["metrics"]["layers_quantized"] == 6
    assert rtn.transformers is sys.modules["transformers"]


def test_missing_accelerate_is_an_environment_error(cli, stack_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from compressor_inc import inc

    real = inc.installed
    monkeypatch.setattr(inc, "installed", lambda name: name != "accelerate" and real(name))
    path = recipe(stack_dir, f"{LINEAR_STACK}:build_small", [{"quantize.inc.weight_only": {}}], data="calib.npz")
    assert_clean_error(cli("run", path), ExitCode.ENVIRONMENT_ERROR, "accelerate")


def test_bad_config_is_refused_before_work(cli, stack_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path = recipe(stack_dir, f"{LINEAR_STACK}:build_small", [{"quantize.inc.weight_only": {"bits": 5}}])
    assert_clean_error(cli("run", path), ExitCode.INPUT_ERROR, "quantize.inc.weight_only", "bits")

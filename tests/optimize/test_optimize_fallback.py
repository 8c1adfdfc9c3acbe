"""The sensitivity fallback: a quantization that breaks the constraint gets a second chance with its sensitive
blocks left in float; a fallback that meets the constraint is kept, one that still misses is never chosen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressor.errors import ExitCode
from tests.optimize.search_helpers import by_index, report

FAST = ("--min-runs", "3", "--min-time", "0.01", "--threads", "1")


@pytest.fixture
def outlier_model(tmp_path: Path) -> tuple[Path, Path]:
    """Two MatMul layers. The input's feature 0 is 1000x the others and layer_a all but ignores it, so the float
    model is fine; but quantizing layer_a's input per tensor spends the whole INT8 range on that feature and
    rounds every other one to zero. Leaving layer_a in float fixes it; leaving layer_b in float does not."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    features, hidden, outputs = 16, 32, 8
    wa = (rng.normal(size=(features, hidden)) / 4).astype(np.float32)
    wa[0, :] *= 1e-3
    wb = (rng.normal(size=(hidden, outputs)) / 6).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "wa"], ["h"], name="layer_a"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "wb"], ["y"], name="layer_b"),
        ],
        "outlier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", outputs])],
        [numpy_helper.from_array(wa, "wa"), numpy_helper.from_array(wb, "wb")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / "outlier.onnx")
    x = rng.normal(size=(128, features)).astype(np.float32)
    x[:, 0] *= 1000
    np.savez(tmp_path / "outlier.npz", x=x)
    return tmp_path / "outlier.onnx", tmp_path / "outlier.npz"


def search(cli, model: Path, data: Path, out: Path, max_drop: str):  # type: ignore[no-untyped-def]
    return cli("optimize", model, "--data", data, "--passes", "quantize.dynamic", "--metric", "fidelity",
               "--max-drop", max_drop, "--objective", "size", *FAST, "-o", out)  # fmt: skip


def test_leaving_the_sensitive_layer_in_float_meets_the_constraint(cli, outlier_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = search(cli, *outlier_model, tmp_path / "out", "1%")
    assert result.code == ExitCode.OK, result.output
    data = report(tmp_path / "out")
    searched = [t for t in data["trials"] if t["origin"] == "search"]
    fallbacks = [t for t in data["trials"] if t["origin"] == "fallback"]
    assert searched and all(t["status"] == "rejected" and t["drop"] > 0.5 for t in searched)  # plain INT8 breaks it

    def excluded(trial: dict) -> list[str]:  # type: ignore[type-arg]
        return trial["passes"][-1]["config"]["nodes_to_exclude"]

    fixed = [t for t in fallbacks if excluded(t) == ["layer_a"]]
    still_broken = [t for t in fallbacks if excluded(t) == ["layer_b"]]
    assert fixed and all(t["status"] == "meets" and t["note"] == "left in float: layer_a" for t in fixed)
    assert still_broken and all(t["status"] == "rejected" for t in still_broken)

    best = by_index(data)[data["best"]]
    assert best in fixed  # kept and chosen ...
    smallest_miss = min(still_broken, key=lambda t: t["size_bytes"])
    assert smallest_miss["size_bytes"] < best["size_bytes"]  # ... though a smaller fallback that misses exists
    assert (tmp_path / "out" / "model.onnx").is_file()
    assert "layer_a" in (tmp_path / "out" / "recipe.yaml").read_text()


def test_a_fallback_that_still_misses_is_never_chosen(cli, outlier_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = search(cli, *outlier_model, tmp_path / "out", "0%")  # even the fixed one moves the outputs a little
    assert result.code == ExitCode.CONSTRAINT_NOT_MET, result.output
    data = report(tmp_path / "out")
    assert data["best"] is None
    assert [t for t in data["trials"] if t["origin"] == "fallback"], "no fallback was tried"
    assert all(t["status"] == "rejected" for t in data["trials"])
    assert not (tmp_path / "out" / "model.onnx").exists() and not (tmp_path / "out" / "recipe.yaml").exists()

"""Large models, small: the external-data path of benchmarks/large_model.py at ~50 MB, in CI.

The model is generated the benchmark's way (weights streamed into ``wide.onnx.data``) and the external-data
threshold is lowered to 5 MB, so every step takes the path a >2 GB model takes: inspect counts the external
data, quantize (dynamic and INT4) reads it, writes its output with external data, verifies it and publishes
both files, and the result loads, runs and is published with its data file by `run` too. The >2 GB run itself
is `python benchmarks/large_model.py` (numbers in docs/reliability.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from benchmarks.large_model import generate
from compressor import onnx_io

pytestmark = pytest.mark.slow
WIDTH = 2048


@pytest.fixture
def large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(onnx_io, "EXTERNAL_DATA_THRESHOLD", 5_000_000)
    return generate(tmp_path / "wide.onnx", 0.05, width=WIDTH)


def outputs(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_external_data_survives_inspect_quantize_run_and_bench(cli, large: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = large.parent / "wide.onnx.data"
    size = large.stat().st_size + data.stat().st_size
    assert size > 50_000_000 and large.stat().st_size < 10_000  # the weights live in the data file

    inspected = cli("inspect", large, "--json")
    assert inspected.code == 0, inspected.output
    info = json.loads(inspected.stdout)["result"]
    assert info["size_bytes"] == size and info["stats"]["params"] == data.stat().st_size // 4

    x = np.random.default_rng(0).standard_normal((2, WIDTH)).astype(np.float32)
    reference = outputs(large, x)
    for mode, ratio, faithful in (("dynamic", 0.3, 0.999), ("int4", 0.2, 0.97)):
        out = tmp_path / "out" / f"{mode}.onnx"
        result = cli("quantize", large, "--mode", mode, "-o", out, "--shape", f"x=1x{WIDTH}", "--json")
        assert result.code == 0, result.output
        step = json.loads(result.stdout)["result"]["steps"][0]
        assert step["fidelity"]["cosine_mean"] > faithful
        assert (out.parent / f"{mode}.onnx.data").is_file(), "the output keeps its weights in external data"
        model = onnx.load(str(out), load_external_data=False)
        locations = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
        assert locations == {f"{mode}.onnx.data"}
        assert onnx_io.weights_bytes(model) < ratio * size
        produced = outputs(out, x)
        cosine = (produced * reference).sum() / np.linalg.norm(produced) / np.linalg.norm(reference)
        assert cosine > faithful
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "dynamic.onnx", "dynamic.onnx.data", "int4.onnx", "int4.onnx.data",
    ]  # fmt: skip

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("version: 1\nmodel: wide.onnx\npasses: [quantize.int4]\nmeasure: {min_runs: 2, min_time: 0}\n")
    assert cli("run", recipe, "-o", tmp_path / "run").code == 0
    assert {"model.onnx", "model.onnx.data"} <= {p.name for p in (tmp_path / "run").iterdir()}
    assert cli("inspect", tmp_path / "run").code == 0
    bench = cli("bench", large, tmp_path / "run", "--min-runs", "2", "--min-time", "0", "--json")
    assert bench.code == 0, bench.output
    assert json.loads(bench.stdout)["result"]["models"][0]["size_bytes"] == size

"""`compressor export`: dynamo by default, legacy fallback recorded, dynamic batch, single file, checked outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("compressor_torch")
onnxruntime = pytest.importorskip("onnxruntime")

from compressor.errors import ExitCode  # noqa: E402
from tests.conftest import assert_clean_error, file_digest  # noqa: E402
from tests.torch.conftest import factory, write_module  # noqa: E402

#: Data-dependent control flow: torch.export refuses it (it cannot guard on a value); TorchScript tracing
#: records the branch taken by the example, which here is always the same one.
BRANCHY = """
import torch
from torch import nn

class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = self.fc(x)
        if {condition}:
            return y * 2
        return y

def build():
    return Branchy()
"""

CUSTOM_OP = """
import torch
from torch import nn

@torch.library.custom_op("compressortest::weird", mutates_args=())
def weird(x: torch.Tensor) -> torch.Tensor:
    return x.clone() * 2

@weird.register_fake
def _(x):
    return torch.empty_like(x)

class Weird(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return weird(self.fc(x))

def build():
    return Weird()
"""


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_export_is_single_file_with_dynamic_batch_and_matches_torch(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    weights, out = torch_digits / "digits_cnn.safetensors", torch_digits / "exported.onnx"
    before = file_digest(weights)
    result = cli(
        "export", factory(torch_digits), "--weights", weights, "--data", torch_digits / "calib.npz", "-o", out,
        "--json",
    )  # fmt: skip
    assert result.code == 0, result.output
    step = json.loads(result.stdout)["result"]["steps"][0]
    assert step["name"] == "convert.onnx"
    assert step["metrics"]["exporter"] == "dynamo" and step["metrics"]["fallback_reason"] is None
    assert step["metrics"]["single_file"] and step["metrics"]["max_abs_diff"] < 1e-4
    assert step["fidelity"]["cosine_min"] > 0.9999 and step["fidelity"]["top1_agreement"] == 1.0
    assert not list(torch_digits.glob("exported.onnx.data")) and file_digest(weights) == before
    test = np.load(torch_digits / "test.npz")
    for batch in (1, 5):  # batch 1 works although the example had batch 2
        assert run_onnx(out, test["input"][:batch]).shape == (batch, 10)
    logits = run_onnx(out, test["input"])
    reference = run_onnx(torch_digits / "digits_cnn.onnx", test["input"])
    assert np.array_equal(logits.argmax(1), reference.argmax(1))
    lineage = json.loads(cli("inspect", out, "--json").stdout)["result"]["lineage"]
    assert lineage[0]["name"] == "convert.onnx" and "dynamo exporter" in lineage[0]["notes"][0]


def test_legacy_fallback_is_used_and_recorded_when_dynamo_fails(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_module(tmp_path, "branchy", BRANCHY.format(condition="y.abs().max() > -1"))
    out = tmp_path / "branchy.onnx"
    result = cli("export", f"{tmp_path / 'branchy.py'}:build", "--shape", "x=1x4", "-o", out, "--json")
    assert result.code == 0, result.output
    metrics = json.loads(result.stdout)["result"]["steps"][0]["metrics"]
    assert metrics["exporter"] == "legacy"
    assert "data-dependent" in metrics["fallback_reason"].lower() or "guard" in metrics["fallback_reason"].lower()
    assert run_onnx(out, np.ones((3, 4), np.float32)).shape == (3, 3)


def test_an_export_whose_outputs_differ_from_torch_is_an_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_module(tmp_path, "branchy", BRANCHY.format(condition="x.sum() > 0"))
    data = tmp_path / "signs.npz"
    x = np.concatenate([np.ones((2, 4)), -np.ones((6, 4))]).astype(np.float32)  # example batch: the positive branch
    np.savez(data, input=x)
    result = cli("export", f"{tmp_path / 'branchy.py'}:build", "--data", data, "-o", tmp_path / "b.onnx")
    assert_clean_error(result, ExitCode.PASS_FAILED, "convert.onnx", "differs from torch", "max |diff|")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["branchy.py", "signs.npz"]


def test_an_op_without_onnx_translation_is_named_with_its_node(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_module(tmp_path, "weird", CUSTOM_OP)
    result = cli("export", f"{tmp_path / 'weird.py'}:build", "--shape", "x=1x4", "-o", tmp_path / "w.onnx")
    assert_clean_error(
        result, ExitCode.PASS_FAILED, "convert.onnx", "op compressortest.weird.default", "node 'weird'",
        "no onnx translation",
    )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weird.py"]


def test_export_needs_input_shapes_and_says_how_to_give_them(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("export", factory(torch_digits), "-o", torch_digits / "x.onnx")
    assert_clean_error(result, ExitCode.USAGE_ERROR, "input shapes", "unknown")
    assert "--shape x=" in result.stderr

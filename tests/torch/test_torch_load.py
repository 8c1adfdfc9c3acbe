"""Loading torch models: factories, TorchScript, .pt2 programs, pickles (only when trusted), and bad inputs."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressor_torch")

from torch import nn  # noqa: E402

from compressor.errors import ExitCode  # noqa: E402
from tests.conftest import assert_clean_error, file_digest  # noqa: E402
from tests.torch.conftest import factory, write_module  # noqa: E402

DIGITS_PARAMS = 151_498
DIGITS_MACS = 1_359_370


class TinyNet(nn.Module):
    """A module pickled whole by the tests (importable as test_torch_load.TinyNet)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Payload:
    """A pickle whose loading writes a marker file: proof of code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def digits_module(folder: Path) -> nn.Module:
    sys.path.insert(0, str(folder))
    try:
        import importlib

        module = importlib.import_module("model")
        model = module.build_model()
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("model", None)
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(folder / "digits_cnn.safetensors")))
    return model.eval()


def test_factory_with_weights_loads_with_params_macs_and_outputs(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "inspect", factory(torch_digits), "--weights", torch_digits / "digits_cnn.safetensors",
        "--shape", "x=1x1x8x8", "--json",
    )  # fmt: skip
    assert result.code == 0, result.output
    info = json.loads(result.stdout)["result"]
    assert info["format"] == "torch"
    assert info["stats"]["params"] == DIGITS_PARAMS
    assert info["stats"]["macs"] == DIGITS_MACS
    assert info["stats"]["ops"]["Conv2d"] == 2 and info["stats"]["ops"]["Linear"] == 2
    assert info["inputs"] == ["x: float32[batchx1x8x8]"]
    assert info["outputs"] == ["output: float32[batchx10]"]
    assert info["extra"]["torch.kind"] == "factory"


def test_torch_torchscript_and_onnx_agree_side_by_side(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    script = torch_digits / "digits.ts"
    torch.jit.save(torch.jit.script(digits_module(torch_digits)), str(script))
    result = cli(
        "compare", torch_digits / "digits_cnn.onnx", factory(torch_digits), script,
        "--weights", torch_digits / "digits_cnn.safetensors", "--data", torch_digits / "test.npz",
        "--batch", "1", "--min-runs", 3, "--min-time", 0, "--json",
    )  # fmt: skip
    assert result.code == 0, result.output
    onnx_model, eager, scripted = json.loads(result.stdout)["result"]["models"]
    assert eager["backend"].startswith("torch") and scripted["backend"].startswith("torch")
    assert eager["accuracy"] == scripted["accuracy"] == onnx_model["accuracy"] >= 0.99
    for candidate in (eager, scripted):
        assert candidate["fidelity"]["cosine_min"] > 0.9999
        assert candidate["stats"]["params"] == DIGITS_PARAMS


def test_exported_program_loads_without_pickle(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    model = digits_module(torch_digits)
    program = torch.export.export(model, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("b")},))
    path = torch_digits / "digits.pt2"
    torch.export.save(program, str(path))
    result = cli("inspect", path, "--json")
    assert result.code == 0, result.output
    info = json.loads(result.stdout)["result"]
    assert info["inputs"] == ["x: float32[batchx1x8x8]"] and info["outputs"] == ["output: float32[batchx10]"]
    assert info["extra"]["torch.kind"] == "exported"


def test_missing_factory_file_is_a_clear_error_and_writes_nothing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.onnx"
    result = cli("export", f"{tmp_path / 'nope.py'}:build_model", "--shape", "x=1x4", "-o", out)
    assert_clean_error(result, ExitCode.INPUT_ERROR, "nope.py", "not found")
    assert list(tmp_path.iterdir()) == []


def test_factory_that_returns_no_module_is_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_module(tmp_path, "numbers", "def build_model():\n    return 42\n")
    result = cli("export", f"{tmp_path / 'numbers.py'}:build_model", "--shape", "x=1x4", "-o", tmp_path / "o.onnx")
    assert_clean_error(result, ExitCode.INPUT_ERROR, "returned int", "not a torch.nn.Module")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["numbers.py"]


def test_weights_for_another_architecture_name_missing_and_unexpected_keys(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    write_module(
        torch_digits,
        "renamed",
        """
        from torch import nn

        class Renamed(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32))
                self.head = nn.Linear(32 * 64, 10)

            def forward(self, x):
                return self.head(self.body(x).flatten(1))

        def build():
            return Renamed()
        """,
    )
    weights = torch_digits / "digits_cnn.safetensors"
    before, listing = file_digest(weights), sorted(p.name for p in torch_digits.iterdir())
    result = cli(
        "prune", f"{torch_digits / 'renamed.py'}:build", "--weights", weights, "--shape", "x=1x1x8x8",
        "-o", torch_digits / "pruned",
    )  # fmt: skip
    assert_clean_error(
        result,
        ExitCode.INPUT_ERROR,
        "do not match",
        "missing keys: body.0.weight",
        "unexpected keys: classifier.1.bias",
    )
    assert file_digest(weights) == before
    assert sorted(p.name for p in torch_digits.iterdir()) == listing


def test_state_dict_given_as_a_model_says_how_to_load_it(cli, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    path = torch_digits / "weights.pt"
    torch.save(digits_module(torch_digits).state_dict(), str(path))
    result = cli("inspect", path)
    assert_clean_error(result, ExitCode.INPUT_ERROR, "holds weights only")
    assert "module.py:factory --weights weights.pt" in result.stderr


def test_pickled_module_needs_trust_pickle(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "tiny.pt"
    torch.save(TinyNet(), str(path))
    before = file_digest(path)
    refused = cli("export", path, "--shape", "x=1x4", "-o", tmp_path / "tiny.onnx")
    assert_clean_error(refused, ExitCode.INPUT_ERROR, "pickle", "arbitrary code", "--trust-pickle")
    assert "hint: rerun with --trust-pickle" in refused.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.pt"] and file_digest(path) == before
    trusted = cli("inspect", path, "--shape", "x=1x4", "--trust-pickle", "--json")
    assert trusted.code == 0, trusted.output
    info = json.loads(trusted.stdout)["result"]
    assert info["stats"]["params"] == 15 and info["outputs"] == ["output: float32[batchx3]"]


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_malicious_pickle_never_runs_without_trust(cli, tmp_path: Path, writer: str) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "marker.txt"
    path = tmp_path / "model.pt"
    if writer == "torch.save":
        torch.save(Payload(marker), str(path))
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))
    assert_clean_error(cli("inspect", path), ExitCode.INPUT_ERROR, "pickle")
    assert not marker.exists()
    write_module(tmp_path, "m", "from torch import nn\n\ndef build():\n    return nn.Linear(4, 3)\n")
    as_weights = cli("inspect", f"{tmp_path / 'm.py'}:build", "--weights", path)
    assert_clean_error(as_weights, ExitCode.INPUT_ERROR, "weights_only")
    assert not marker.exists()
    # Control: the payload is live. With --trust-pickle it runs (and is then refused: it is not a module).
    trusted = cli("inspect", path, "--trust-pickle")
    assert trusted.code == ExitCode.INPUT_ERROR
    assert marker.read_text() == "pwned"


def test_a_pt2_with_a_pickled_payload_needs_trust(cli, torch_digits: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    program = torch.export.export(digits_module(torch_digits), (torch.zeros(2, 1, 8, 8),))
    clean = tmp_path / "clean.pt2"
    torch.export.save(program, str(clean))
    marker = tmp_path / "marker.txt"
    evil_bytes = io.BytesIO()
    torch.save(Payload(marker), evil_bytes)
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(clean) as source, zipfile.ZipFile(evil, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            target.writestr(item, evil_bytes.getvalue() if "/data/sample_inputs/" in item.filename else data)
    result = cli("inspect", evil)
    assert_clean_error(result, ExitCode.INPUT_ERROR, "pickled entries", "sample_inputs", "arbitrary code")
    assert not marker.exists()


def test_registering_the_plugin_imports_no_torch() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "compressor", "plugins", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    registered = json.loads(proc.stdout)["result"]["plugins"]
    torch_plugin = next(p for p in registered if p["name"] == "torch")
    assert torch_plugin["error"] is None
    assert {"convert.onnx", "prune.structured", "prune.nm", "distill"} <= set(torch_plugin["registered"]["passes"])
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "compressor_torch" in imported
    assert not imported & {"torch", "torch_pruning", "safetensors", "onnxscript"}

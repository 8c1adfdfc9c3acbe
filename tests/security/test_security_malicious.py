"""Malicious inputs: nothing in them runs and nothing escapes its folder unless the user trusts the file.

Each payload writes a marker file if its code ever runs; each test checks the marker is absent after the
command, that the command failed with the documented exit code and one clear line, and (where a control
is cheap) that the payload is live: with ``--trust-pickle`` its code does run. Cases that already live
elsewhere (pickles as a torch model, as ``--weights`` and inside a ``.pt2``; sklearn pickles; alias bombs;
``../`` and absolute recipe outputs) are listed with their tests in docs/security.md, not repeated here.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compressor.errors import ExitCode
from tests.conftest import DIGITS, assert_clean_error, file_digest
from tests.security.payloads import PickleMarker, SkopsMarker


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (symbolic links not followed) with its sha256."""
    return {
        str(p.relative_to(root)): file_digest(p) for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()
    }


# --- TorchScript: code that reaches the file system ----------------------------------------------------------

SCRIPTED = """
import torch
from torch import nn


class WritesInForward(nn.Module):
    def __init__(self, marker: str):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.marker = marker

    def forward(self, x):
        torch.save(x, self.marker)
        return self.fc(x)


class WritesWhenLoaded(nn.Module):
    def __init__(self, marker: str):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, 4))
        self.marker = marker

    def forward(self, x):
        return torch.nn.functional.linear(x, self.weight)

    @torch.jit.export
    def __getstate__(self):
        return (self.weight, self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]):
        self.weight = state[0]
        self.marker = state[1]
        self.training = state[2]
        torch.save(torch.zeros(1), state[1])
"""


@pytest.fixture
def scripted(tmp_path: Path):  # type: ignore[no-untyped-def]
    """``scripted(kind)`` -> (a TorchScript archive whose code calls torch.save, the marker it writes)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressor_torch")
    source = tmp_path / "scripted_payloads.py"
    source.write_text(textwrap.dedent(SCRIPTED))
    import importlib.util

    spec = importlib.util.spec_from_file_location("scripted_payloads", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # torch.jit.script reads the class's source from this file

    def make(kind: str) -> tuple[Path, Path]:
        marker = tmp_path / f"marker-{kind}"
        path = tmp_path / f"{kind}.pt"
        torch.jit.save(torch.jit.script(getattr(module, kind)(str(marker))), str(path))
        marker.unlink(missing_ok=True)
        return path, marker

    return make


@pytest.mark.parametrize("kind", ["WritesInForward", "WritesWhenLoaded"])
def test_torchscript_that_writes_files_never_runs_without_trust(cli, scripted, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    """TorchScript runs no Python, but its own ops include torch.save (aten::save) and torch.from_file: a
    scripted forward, or a __setstate__ that torch.jit.load itself runs, can write files. Archives whose code
    names those ops are refused before torch.jit.load unless trusted."""
    path, marker = scripted(kind)
    before = file_digest(path)
    refused = cli("inspect", path, "--shape", "x=1x4")
    assert_clean_error(refused, ExitCode.INPUT_ERROR, path.name, "file-system ops", "save", "--trust-pickle")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"version: 1\nmodel: {path.name}\nmodel_options: {{shapes: {{x: [1, 4]}}}}\npasses: [convert.onnx]\n"
    )
    assert_clean_error(cli("run", recipe, "-o", tmp_path / "out"), ExitCode.INPUT_ERROR, "file-system ops")
    assert not marker.exists() and not (tmp_path / "out").exists() and file_digest(path) == before
    # Control: the payload is live. Trusted, loading (and the probe run on example inputs) writes the marker.
    cli("inspect", path, "--shape", "x=1x4", "--trust-pickle")
    assert marker.exists()


def test_ordinary_torchscript_names_no_file_op(scripted, torch_digits: Path) -> None:  # type: ignore[no-untyped-def]
    import torch
    from compressor_torch.models import torchscript_file_ops

    from tests.torch.test_torch_load import digits_module

    model = digits_module(torch_digits)
    for name, module in (
        ("scripted", torch.jit.script(model)),
        ("traced", torch.jit.trace(model, torch.zeros(2, 1, 8, 8))),
    ):
        path = torch_digits / f"{name}.ts"
        torch.jit.save(module, str(path))
        assert torchscript_file_ops(path) == [], name


def test_a_pt2_program_calling_a_file_op_is_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressor_torch")
    clean = tmp_path / "clean.pt2"
    torch.export.save(torch.export.export(torch.nn.Linear(4, 3), (torch.zeros(2, 4),)), str(clean))
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(clean) as source, zipfile.ZipFile(evil, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith("/models/model.json"):
                data = data.replace(b"torch.ops.aten.linear.default", b"torch.ops.aten.save.default")
            target.writestr(item, data)
    assert cli("inspect", clean).code == 0
    result = cli("inspect", evil)
    assert_clean_error(result, ExitCode.INPUT_ERROR, "evil.pt2", "file-system ops", "aten.save")


# --- skops, Keras, .npz --------------------------------------------------------------------------------------


def test_a_skops_file_with_an_untrusted_type_never_builds_it(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sio = pytest.importorskip("skops.io")
    pytest.importorskip("compressor_sklearn")
    marker = tmp_path / "marker"
    path = tmp_path / "evil.skops"
    sio.dump(SkopsMarker(marker), path)
    assert sio.get_untrusted_types(file=path) == ["tests.security.payloads.SkopsMarker"]
    for args in (("inspect", path), ("compare", path, path, "--data", DIGITS / "test.npz")):
        assert_clean_error(cli(*args), ExitCode.INPUT_ERROR, "evil.skops", "tests.security.payloads.SkopsMarker")
    assert not marker.exists()
    # Control: trusting exactly that type builds it, and its __setstate__ runs.
    assert_clean_error(cli("inspect", path, "--trust-pickle"), ExitCode.INPUT_ERROR, "not a fitted estimator")
    assert marker.read_text() == "pwned"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_keras_lambda_layer_never_runs_without_trust(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    keras = pytest.importorskip("keras")
    pytest.importorskip("compressor_tensorflow")
    marker = tmp_path / "marker"
    writes = eval(f"lambda x: (open({str(marker)!r}, 'w').write('pwned'), x)[1]")  # the payload
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(writes), keras.layers.Dense(2)])
    model.save(tmp_path / "lambda.keras")
    marker.unlink()  # building the model above called the lambda once
    for args in (("inspect", tmp_path / "lambda.keras"), ("bench", tmp_path / "lambda.keras", "--min-runs", "1")):
        assert_clean_error(cli(*args), ExitCode.INPUT_ERROR, "lambda.keras", "Lambda")
    assert not marker.exists()
    assert cli("inspect", tmp_path / "lambda.keras", "--trust-pickle").code == 0
    assert marker.exists()


def test_an_npz_with_a_pickled_object_array_never_unpickles_it(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    marker = digits_dir / "marker"
    evil = digits_dir / "evil.npz"
    np.savez(evil, input=np.array([PickleMarker(marker)], dtype=object))
    commands = [
        ("quantize", digits_dir / "digits_cnn.onnx", "--mode", "static", "--data", evil, "-o", digits_dir / "q.onnx"),
        ("compare", digits_dir / "digits_cnn.onnx", digits_dir / "digits_cnn.onnx", "--data", evil),
    ]
    for args in commands:
        assert_clean_error(cli(*args), ExitCode.INPUT_ERROR, "evil.npz", "object arrays", "pickle")
    assert not marker.exists() and not (digits_dir / "q.onnx").exists()
    with np.load(evil, allow_pickle=True) as archive:  # control: numpy with pickle allowed runs it
        archive["input"]
    assert marker.read_text() == "pwned"


# --- ONNX external data outside the model's folder -----------------------------------------------------------


def external_model(folder: Path, location: str, length: int = 16) -> Path:
    """A one-node model (y = x + w) whose weight ``w`` is external data at ``location``."""
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[length // 4])
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        w.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "escape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [length // 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [length // 4])],
        [w],
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("how", ["dot-dot", "absolute", "symlink"])
def test_external_data_outside_the_model_folder_is_never_read(cli, tmp_path: Path, how: str) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "etc" / "passwd"  # what "../../etc/passwd" reaches from models/a/model.onnx
    secret.parent.mkdir()
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    folder = tmp_path / "models" / "a"
    location = {"dot-dot": "../../etc/passwd", "absolute": str(secret), "symlink": "model.onnx.data"}[how]
    model = external_model(folder, location)
    if how == "symlink":
        os.symlink(secret, folder / "model.onnx.data")
    before = tree(tmp_path)
    for args in (("inspect", model), ("quantize", model, "-o", folder / "q.onnx"), ("bench", model)):
        assert_clean_error(cli(*args), ExitCode.INPUT_ERROR, "external data", "outside the model's folder")
    assert tree(tmp_path) == before


# --- recipe outputs through symbolic links -------------------------------------------------------------------


@pytest.mark.parametrize("output", ["link", "link/result", "inner/link/result"])
def test_a_recipe_output_through_a_symlink_to_outside_is_refused(
    cli, digits_dir: Path, tmp_path: Path, output: str
) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("untouched\n")
    link = digits_dir / ("inner/link" if output.startswith("inner/") else "link")
    link.parent.mkdir(exist_ok=True)
    os.symlink(outside, link)
    recipe = digits_dir / "recipe.yaml"
    recipe.write_text(f"version: 1\nmodel: digits_cnn.onnx\npasses: [quantize.dynamic]\noutput: {json.dumps(output)}\n")
    before = tree(tmp_path)
    result = cli("run", recipe)
    assert_clean_error(result, ExitCode.INPUT_ERROR, output, "escapes the recipe's folder")
    assert tree(tmp_path) == before
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]


def test_an_oversized_recipe_is_refused_before_it_is_parsed(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = digits_dir / "recipe.yaml"
    recipe.write_text("version: 1\nmodel: digits_cnn.onnx\npasses: [quantize.dynamic]\n# " + "x" * 2_000_000 + "\n")
    started = time.perf_counter()
    assert_clean_error(cli("run", recipe, "-o", digits_dir / "out"), ExitCode.INPUT_ERROR, "larger than 1000 KB")
    assert time.perf_counter() - started < 1.0
    assert not (digits_dir / "out").exists()

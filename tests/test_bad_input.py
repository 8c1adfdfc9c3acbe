"""A corpus of bad inputs: each one fails with its documented exit code, one clear error line, no traceback,
nothing written and nothing changed.

Every case builds its bad input in a fresh copy of the digits example, runs one command in-process, and then
checks the whole temporary tree is byte-for-byte what it was before the command ran: no output, no staging
folder (``.compressor-tmp-*``), no scratch files, and every input (model, data, recipe) unchanged.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest

from compressor.errors import ExitCode
from compressor.outputs import STAGING_PREFIX
from tests.conftest import assert_clean_error, file_digest

#: Latency options that keep bench/compare short should a case get as far as measuring.
FAST = ("--min-runs", "1", "--min-time", "0", "--warmup", "0")
MODEL = "digits_cnn.onnx"

Builder = Callable[[Path], list[object]]


@dataclass(frozen=True)
class Case:
    """One bad input: ``build(ws)`` creates what it needs in the workspace and returns the CLI arguments."""

    id: str
    build: Builder
    code: ExitCode
    fragments: tuple[str, ...]
    #: Refuse within this many seconds (alias bombs and other inputs that could be made expensive).
    max_seconds: float | None = None


# --- workspace helpers ---------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with the sha256 of each file."""
    return {
        str(p.relative_to(root)): "<dir>" if p.is_dir() else file_digest(p)
        for p in sorted(root.rglob("*"))
        if not p.is_symlink()
    }


def write_recipe(ws: Path, body: str, name: str = "recipe.yaml", folder: str = ".") -> Path:
    path = ws / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def recipe_for(ws: Path, model: Path | str, extra: str = "", passes: str = "[quantize.dynamic]") -> Path:
    """A valid recipe around ``model`` (JSON-quoted, so any path is a valid YAML string)."""
    return write_recipe(ws, f"version: 1\nmodel: {json.dumps(str(model))}\npasses: {passes}\n{extra}")


def save_npz(ws: Path, name: str, **arrays: np.ndarray) -> Path:
    path = ws / name
    np.savez(path, **arrays)
    return path


def calib(ws: Path) -> np.ndarray:
    with np.load(ws / "calib.npz") as archive:
        return archive["input"]


# --- bad models ----------------------------------------------------------------------------------------------


def empty_onnx(ws: Path) -> Path:
    path = ws / "empty.onnx"
    path.write_bytes(b"")
    return path


def random_onnx(ws: Path) -> Path:
    path = ws / "random.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def truncated_onnx(ws: Path) -> Path:
    data = (ws / MODEL).read_bytes()
    path = ws / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def external_model(ws: Path) -> Path:
    """digits_cnn.onnx saved with its weights in ``digits.onnx.data`` beside it."""
    folder = ws / "external"
    folder.mkdir()
    path = folder / "digits.onnx"
    onnx.save_model(onnx.load(str(ws / MODEL)), str(path), save_as_external_data=True, location="digits.onnx.data")
    assert (folder / "digits.onnx.data").stat().st_size > 100_000
    return path


def missing_external_data(ws: Path) -> Path:
    path = external_model(ws)
    (path.parent / "digits.onnx.data").unlink()
    return path


def truncated_external_data(ws: Path) -> Path:
    path = external_model(ws)
    data = path.parent / "digits.onnx.data"
    os.truncate(data, data.stat().st_size // 2)
    return path


def folder_without_model(ws: Path) -> Path:
    folder = ws / "models"
    folder.mkdir()
    (folder / "notes.txt").write_text("no model in here\n")
    return folder


def folder_named_onnx(ws: Path) -> Path:
    folder = ws / "model.onnx"
    folder.mkdir()
    return folder


def folder_with_two_models(ws: Path) -> Path:
    folder = ws / "two"
    folder.mkdir()
    for name in ("a.onnx", "b.onnx"):
        (folder / name).write_bytes((ws / MODEL).read_bytes())
    return folder


def corrupt_sidecar(ws: Path) -> Path:
    folder = ws / "bundle"
    folder.mkdir()
    (folder / "artifact.json").write_text("{not json")
    return folder


def nonexistent(ws: Path) -> Path:
    return ws / "missing.onnx"


BAD_MODELS: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "empty-file": (empty_onnx, ("empty (0 bytes)",)),
    "random-bytes": (random_onnx, ("not a valid onnx model",)),
    "truncated-onnx": (truncated_onnx, ("not a valid onnx model",)),
    "external-data-missing": (missing_external_data, ("'digits.onnx.data' is missing",)),
    "external-data-truncated": (truncated_external_data, ("'digits.onnx.data' is truncated",)),
    "folder-without-model": (folder_without_model, ("is a directory",)),
    "folder-named-dot-onnx": (folder_named_onnx, ("is a directory",)),
    "folder-with-two-models": (folder_with_two_models, ("is a directory",)),
    "corrupt-artifact-json": (corrupt_sidecar, ("artifact.json", "not a valid artifact description")),
    "nonexistent-path": (nonexistent, ("not found",)),
}

MODEL_COMMANDS: dict[str, Callable[[Path, Path], list[object]]] = {
    "inspect": lambda model, ws: ["inspect", model],
    "quantize": lambda model, ws: ["quantize", model, "-o", ws / "out.onnx"],
    "bench": lambda model, ws: ["bench", model, *FAST],
    "compare": lambda model, ws: ["compare", ws / MODEL, model, *FAST],
    "run": lambda model, ws: ["run", recipe_for(ws, model), "-o", ws / "out"],
}


def _model_case(command: str, bad: str) -> Case:
    make, fragments = BAD_MODELS[bad]
    return Case(
        f"{command}-{bad}",
        lambda ws: MODEL_COMMANDS[command](make(ws), ws),
        ExitCode.INPUT_ERROR,
        fragments,
    )


MODEL_CASES = [_model_case(command, bad) for bad in BAD_MODELS for command in MODEL_COMMANDS]


# --- bad recipes ---------------------------------------------------------------------------------------------


def run_recipe(body: str, *extra: object, folder: str = ".") -> Builder:
    def build(ws: Path) -> list[object]:
        return ["run", write_recipe(ws, body.replace("MODEL", json.dumps(str(ws / MODEL))), folder=folder), *extra]

    return build


def alias_bomb(ws: Path) -> list[object]:
    """Billion laughs: nine levels of nine aliases each, 9**9 strings if expanded."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    body = "\n".join(lines) + f"\nversion: 1\nmodel: {json.dumps(str(ws / MODEL))}\npasses: [quantize.dynamic]\n"
    return ["run", write_recipe(ws, body), "-o", ws / "out"]


def binary_recipe(ws: Path) -> list[object]:
    path = ws / "recipe.yaml"
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    return ["run", path, "-o", ws / "out"]


def deep_recipe(ws: Path) -> list[object]:
    nested = "[" * 40 + "]" * 40
    return ["run", recipe_for(ws, ws / MODEL, passes=f"\n  - graph.slim: {{skip: {nested}}}"), "-o", ws / "out"]


OUT = "-o"
RECIPE_CASES = [
    Case(
        "run-unknown-pass",
        run_recipe("version: 1\nmodel: MODEL\npasses: [quantize.bogus]\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("unknown pass 'quantize.bogus'", "valid passes:", "quantize.dynamic", "quantize.static", "quantize.int4"),
    ),
    Case(
        "run-pass-option-wrong-type-bool",
        run_recipe("version: 1\nmodel: MODEL\npasses:\n  - quantize.dynamic: {per_channel: maybe}\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("quantize.dynamic", "per_channel", "boolean"),
    ),
    Case(
        "run-pass-option-wrong-type-int",
        run_recipe("version: 1\nmodel: MODEL\npasses:\n  - quantize.int4: {block_size: big}\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("quantize.int4", "block_size", "integer"),
    ),
    Case(
        "run-pass-option-unknown",
        run_recipe("version: 1\nmodel: MODEL\npasses:\n  - quantize.dynamic: {frobnicate: 1}\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("quantize.dynamic", "frobnicate"),
    ),
    Case(
        "run-pass-config-not-a-mapping",
        run_recipe("version: 1\nmodel: MODEL\npasses:\n  - quantize.dynamic: 5\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("passes.0.config",),
    ),
    Case(
        "run-passes-not-a-list",
        run_recipe("version: 1\nmodel: MODEL\npasses: quantize.dynamic\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("'passes'", "list"),
    ),
    Case(
        "run-unknown-top-level-key",
        run_recipe("version: 1\nmodel: MODEL\npasses: [quantize.dynamic]\nfrobnicate: 3\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("frobnicate", "not permitted"),
    ),
    Case(
        "run-wrong-version",
        run_recipe("version: 2\nmodel: MODEL\npasses: [quantize.dynamic]\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("unsupported recipe version 2",),
    ),
    Case(
        "run-version-not-a-number",
        run_recipe("version: one\nmodel: MODEL\npasses: [quantize.dynamic]\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("'version'",),
    ),
    Case(
        "run-missing-passes",
        run_recipe("version: 1\nmodel: MODEL\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("'passes'", "required"),
    ),
    Case(
        "run-invalid-yaml",
        run_recipe("version: 1\nmodel: [MODEL\npasses: {\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("not valid yaml", "line"),
    ),
    Case(
        "run-yaml-tab-indent",
        run_recipe("version: 1\n\tmodel: MODEL\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("not valid yaml",),
    ),
    Case("run-yaml-alias-bomb", alias_bomb, ExitCode.INPUT_ERROR, ("alias",), max_seconds=2.0),
    Case("run-yaml-too-deep", deep_recipe, ExitCode.INPUT_ERROR, ("nested deeper",), max_seconds=2.0),
    Case(
        "run-yaml-not-a-mapping",
        run_recipe("- quantize.dynamic\n- graph.slim\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("must be a yaml mapping",),
    ),
    Case(
        "run-empty-recipe",
        run_recipe("", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("must be a yaml mapping",),
    ),
    Case("run-binary-recipe", binary_recipe, ExitCode.INPUT_ERROR, ("not a text file",)),
    Case(
        "run-recipe-is-a-folder",
        lambda ws: ["run", ws, "-o", ws / "out"],
        ExitCode.INPUT_ERROR,
        ("is not a file",),
    ),
    Case(
        "run-recipe-missing",
        lambda ws: ["run", ws / "missing.yaml", "-o", ws / "out"],
        ExitCode.INPUT_ERROR,
        ("recipe not found",),
    ),
    Case(
        "run-output-escapes-recipe-folder",
        run_recipe("version: 1\nmodel: MODEL\npasses: [quantize.dynamic]\noutput: ../escape\n", folder="recipes"),
        ExitCode.INPUT_ERROR,
        ("'../escape'", "escapes the recipe's folder"),
    ),
    Case(
        "run-output-absolute",
        lambda ws: ["run", recipe_for(ws, ws / MODEL, extra=f"output: {json.dumps(str(ws / 'abs'))}\n")],
        ExitCode.INPUT_ERROR,
        ("escapes the recipe's folder",),
    ),
    Case(
        "run-no-output-anywhere",
        run_recipe("version: 1\nmodel: MODEL\npasses: [quantize.dynamic]\n"),
        ExitCode.USAGE_ERROR,
        ("sets no output",),
    ),
    Case(
        "run-static-pass-without-data",
        run_recipe("version: 1\nmodel: MODEL\npasses: [quantize.static]\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("quantize.static", "needs a dataset"),
    ),
    Case(
        "run-budget-unreadable-size",
        run_recipe("version: 1\nmodel: MODEL\npasses: [quantize.dynamic]\nbudgets: {max_size: huge}\n", OUT, "out"),
        ExitCode.INPUT_ERROR,
        ("max_size", "cannot read size 'huge'"),
    ),
    Case(
        "run-recipe-model-missing",
        lambda ws: ["run", recipe_for(ws, "missing.onnx"), "-o", ws / "out"],
        ExitCode.INPUT_ERROR,
        ("model not found",),
    ),
]


# --- bad datasets --------------------------------------------------------------------------------------------


def two_wrong_names(ws: Path) -> Path:
    return save_npz(ws, "names.npz", foo=calib(ws), bar=calib(ws))


def wrong_rank(ws: Path) -> Path:
    x = calib(ws)
    return save_npz(ws, "rank.npz", input=x.reshape(len(x), 64))


def wrong_inner_dims(ws: Path) -> Path:
    return save_npz(ws, "dims.npz", input=np.zeros((4, 1, 9, 9), np.float32))


def int_for_float(ws: Path) -> Path:
    return save_npz(ws, "ints.npz", input=np.zeros((4, 1, 8, 8), np.int64))


def object_arrays(ws: Path) -> Path:
    return save_npz(ws, "objects.npz", input=np.array([{"a": 1}, None], dtype=object))


def labels_count_mismatch(ws: Path) -> Path:
    return save_npz(ws, "labels.npz", input=calib(ws), labels=np.zeros(3, np.int64))


def no_arrays(ws: Path) -> Path:
    return save_npz(ws, "none.npz")


def text_named_npz(ws: Path) -> Path:
    path = ws / "text.npz"
    path.write_text("input,label\n1,2\n")
    return path


def onnx_named_npz(ws: Path) -> Path:
    path = ws / "model.npz"
    path.write_bytes((ws / MODEL).read_bytes())
    return path


def npy_named_npz(ws: Path) -> Path:
    path = ws / "single.npz"
    with path.open("wb") as handle:
        np.save(handle, calib(ws))
    return path


def zip_without_arrays(ws: Path) -> Path:
    path = ws / "zip.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("input", "not an array")
    return path


def missing_dataset(ws: Path) -> Path:
    return ws / "missing.npz"


def unknown_dataset_kind(ws: Path) -> Path:
    path = ws / "data.csv"
    path.write_text("1,2,3\n")
    return path


BAD_DATASETS: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "wrong-array-names": (two_wrong_names, ("lacks arrays for model inputs", "'input'", "bar", "foo")),
    "wrong-rank": (wrong_rank, ("'input'", "rank 4")),
    "wrong-inner-dims": (wrong_inner_dims, ("'input'", "axis 2: 9 != 8")),
    "int-for-float-input": (int_for_float, ("int64", "float32")),
    "object-arrays-pickle": (object_arrays, ("object arrays", "pickle")),
    "labels-count-mismatch": (labels_count_mismatch, ("different numbers of samples",)),
    "no-arrays": (no_arrays, ("no input arrays",)),
    "text-named-npz": (text_named_npz, ("not a readable .npz",)),
    "onnx-named-npz": (onnx_named_npz, ("not a readable .npz",)),
    "npy-named-npz": (npy_named_npz, ("not a readable .npz",)),
    "zip-without-npy": (zip_without_arrays, ("not a readable .npz", "'input'")),
    "missing-file": (missing_dataset, ("dataset not found",)),
    "unknown-kind": (unknown_dataset_kind, ("no dataset reader recognizes", "data.csv")),
}

DATA_COMMANDS: dict[str, Callable[[Path, Path], list[object]]] = {
    "quantize-static": lambda data, ws: [
        "quantize",
        ws / MODEL,
        "-o",
        ws / "out.onnx",
        "--mode",
        "static",
        "--data",
        data,
    ],
    "compare": lambda data, ws: ["compare", ws / MODEL, ws / MODEL, "--data", data, *FAST],
    "run": lambda data, ws: [
        "run",
        recipe_for(ws, ws / MODEL, extra=f"data: {json.dumps(str(data))}\n", passes="[quantize.static]"),
        "-o",
        ws / "out",
    ],
}


def _data_case(command: str, bad: str) -> Case:
    make, fragments = BAD_DATASETS[bad]
    return Case(
        f"{command}-data-{bad}", lambda ws: DATA_COMMANDS[command](make(ws), ws), ExitCode.INPUT_ERROR, fragments
    )


DATA_CASES = [_data_case(command, bad) for bad in BAD_DATASETS for command in DATA_COMMANDS]


# --- bad options and output paths ----------------------------------------------------------------------------


def a_file(ws: Path) -> Path:
    path = ws / "afile"
    path.write_text("a regular file\n")
    return path


def report_folder(ws: Path) -> Path:
    path = ws / "report.md"
    path.mkdir()
    return path


def cmd(*args: object) -> Builder:
    """Arguments with ``{ws}``-relative names: "MODEL" is the digits model, "ws:NAME" a path in the workspace."""

    def build(ws: Path) -> list[object]:
        return [
            ws / MODEL if a == "MODEL" else ws / a[3:] if isinstance(a, str) and a.startswith("ws:") else a
            for a in args
        ]

    return build


QUANTIZE = ("quantize", "MODEL", "-o", "ws:out.onnx")
OPTION_CASES = [
    Case(
        "quantize-static-without-data",
        cmd(*QUANTIZE, "--mode", "static"),
        ExitCode.USAGE_ERROR,
        ("needs calibration data",),
    ),
    Case(
        "inspect-shape-not-a-number",
        cmd("inspect", "MODEL", "--shape", "input=1xq"),
        ExitCode.USAGE_ERROR,
        ("cannot read shape '1xq'",),
    ),
    Case(
        "quantize-shape-not-a-number",
        cmd(*QUANTIZE, "--shape", "input=1xq"),
        ExitCode.USAGE_ERROR,
        ("cannot read shape '1xq'",),
    ),
    Case(
        "bench-shape-not-a-number",
        cmd("bench", "MODEL", "--shape", "input=1xq", *FAST),
        ExitCode.USAGE_ERROR,
        ("cannot read shape '1xq'",),
    ),
    Case(
        "compare-shape-not-a-number",
        cmd("compare", "MODEL", "MODEL", "--shape", "input=1xq", *FAST),
        ExitCode.USAGE_ERROR,
        ("cannot read shape '1xq'",),
    ),
    Case(
        "inspect-shape-zero-dim",
        cmd("inspect", "MODEL", "--shape", "input=0x1x8x8"),
        ExitCode.USAGE_ERROR,
        ("positive dims",),
    ),
    Case(
        "inspect-shape-no-name", cmd("inspect", "MODEL", "--shape", "=1x1x8x8"), ExitCode.USAGE_ERROR, ("name=value",)
    ),
    Case(
        "bench-batch-zero", cmd("bench", "MODEL", "--batch", "0", *FAST), ExitCode.USAGE_ERROR, ("--batch", "positive")
    ),
    Case(
        "compare-batch-zero",
        cmd("compare", "MODEL", "MODEL", "--batch", "0", *FAST),
        ExitCode.USAGE_ERROR,
        ("--batch", "positive"),
    ),
    Case(
        "bench-batch-not-a-number",
        cmd("bench", "MODEL", "--batch", "x", *FAST),
        ExitCode.USAGE_ERROR,
        ("cannot read --batch 'x'",),
    ),
    Case(
        "inspect-dtype-unknown",
        cmd("inspect", "MODEL", "--dtype", "input=complex7"),
        ExitCode.USAGE_ERROR,
        ("complex7", "unknown dtype", "float32"),
    ),
    Case(
        "quantize-dtype-unknown",
        cmd(*QUANTIZE, "--dtype", "input=complex7"),
        ExitCode.USAGE_ERROR,
        ("complex7", "unknown dtype"),
    ),
    Case(
        "bench-dtype-unknown",
        cmd("bench", "MODEL", "--dtype", "input=complex7", *FAST),
        ExitCode.USAGE_ERROR,
        ("complex7", "unknown dtype"),
    ),
    Case("quantize-device-gpu", cmd(*QUANTIZE, "--device", "gpu"), ExitCode.USAGE_ERROR, ("--device", "'gpu'", "cpu")),
    Case(
        "bench-device-gpu", cmd("bench", "MODEL", "--device", "gpu", *FAST), ExitCode.USAGE_ERROR, ("--device", "'gpu'")
    ),
    Case(
        "compare-device-gpu",
        cmd("compare", "MODEL", "MODEL", "--device", "gpu", *FAST),
        ExitCode.USAGE_ERROR,
        ("--device", "'gpu'"),
    ),
    Case("quantize-unknown-mode", cmd(*QUANTIZE, "--mode", "int3"), ExitCode.USAGE_ERROR, ("--mode", "'int3'")),
    Case("quantize-unknown-option", cmd(*QUANTIZE, "--frobnicate"), ExitCode.USAGE_ERROR, ("--frobnicate",)),
    Case("quantize-missing-output", cmd("quantize", "MODEL"), ExitCode.USAGE_ERROR, ("'-o'",)),
    Case(
        "quantize-int4-block-size-not-power-of-two",
        cmd(*QUANTIZE, "--mode", "int4", "--block-size", "100"),
        ExitCode.USAGE_ERROR,
        ("block_size", "power of two"),
    ),
    Case(
        "quantize-int4-block-size-too-small",
        cmd(*QUANTIZE, "--mode", "int4", "--block-size", "8"),
        ExitCode.USAGE_ERROR,
        ("block_size", "at least 16"),
    ),
    Case(
        "quantize-block-size-with-dynamic",
        cmd(*QUANTIZE, "--block-size", "32", "--mode", "dynamic"),
        ExitCode.USAGE_ERROR,
        ("--block-size", "does not apply to --mode dynamic", "int4"),
    ),
    Case(
        "quantize-calibration-method-with-int4",
        cmd(*QUANTIZE, "--mode", "int4", "--calibration-method", "entropy"),
        ExitCode.USAGE_ERROR,
        ("--calibration-method", "does not apply to --mode int4"),
    ),
    Case(
        "quantize-calibration-samples-zero",
        cmd(*QUANTIZE, "--mode", "static", "--data", "ws:calib.npz", "--calibration-samples", "0"),
        ExitCode.USAGE_ERROR,
        ("--calibration-samples",),
    ),
    Case(
        "compare-report-unknown-suffix",
        cmd("compare", "MODEL", "MODEL", "--report", "ws:report.txt", *FAST),
        ExitCode.USAGE_ERROR,
        (".md", ".json"),
    ),
]

OUTPUT_CASES = [
    Case("quantize-output-is-input", cmd(*QUANTIZE[:3], "MODEL"), ExitCode.INPUT_ERROR, ("would overwrite the input",)),
    Case(
        "quantize-output-is-input-spelled-differently",
        cmd(*QUANTIZE[:3], f"ws:sub/../{MODEL}"),
        ExitCode.INPUT_ERROR,
        ("would overwrite the input",),
    ),
    Case(
        "quantize-output-is-inputs-folder",
        cmd(*QUANTIZE[:3], "ws:"),
        ExitCode.INPUT_ERROR,
        ("would overwrite the input",),
    ),
    Case(
        "run-output-is-input",
        lambda ws: ["run", recipe_for(ws, ws / MODEL), "-o", ws / MODEL],
        ExitCode.INPUT_ERROR,
        ("would overwrite the input",),
    ),
    Case(
        "run-output-is-inputs-folder",
        lambda ws: ["run", recipe_for(ws, ws / MODEL), "-o", ws],
        ExitCode.INPUT_ERROR,
        ("would overwrite the input",),
    ),
    Case(
        "quantize-output-parent-is-a-file",
        lambda ws: ["quantize", ws / MODEL, "-o", a_file(ws) / "out.onnx"],
        ExitCode.INPUT_ERROR,
        ("afile", "is not a folder"),
    ),
    Case(
        "quantize-output-grandparent-is-a-file",
        lambda ws: ["quantize", ws / MODEL, "-o", a_file(ws) / "sub" / "out.onnx"],
        ExitCode.INPUT_ERROR,
        ("afile", "is not a folder"),
    ),
    Case(
        "run-output-parent-is-a-file",
        lambda ws: ["run", recipe_for(ws, ws / MODEL), "-o", a_file(ws) / "sub"],
        ExitCode.INPUT_ERROR,
        ("afile", "is not a folder"),
    ),
    Case(
        "compare-report-parent-is-a-file",
        lambda ws: ["compare", ws / MODEL, ws / MODEL, "--report", a_file(ws) / "report.md", *FAST],
        ExitCode.INPUT_ERROR,
        ("afile", "is not a folder"),
    ),
    Case(
        "compare-report-grandparent-is-a-file",
        lambda ws: ["compare", ws / MODEL, ws / MODEL, "--report", a_file(ws) / "sub" / "report.md", *FAST],
        ExitCode.INPUT_ERROR,
        ("afile", "is not a folder"),
    ),
    Case(
        "compare-report-is-a-folder",
        lambda ws: ["compare", ws / MODEL, ws / MODEL, "--report", report_folder(ws), *FAST],
        ExitCode.INPUT_ERROR,
        ("report.md", "is a folder"),
    ),
]

# --- bad inputs for the plugins' loaders ---------------------------------------------------------------------
# Each plugin's own tests cover its headline refusals (pickles, untrusted skops types, Lambda layers, a state
# dict given as a model, a SavedModel without a signature, unusable Hugging Face folders...); these are the
# malformed files those tests do not build. A case whose plugin is not installed is skipped.


@dataclass(frozen=True)
class PluginCase(Case):
    #: The importable module the case needs (the plugin, or the library that builds its input).
    needs: tuple[str, ...] = ()


def random_file(name: str, size: int = 2048, head: bytes = b"") -> Callable[[Path], Path]:
    def make(ws: Path) -> Path:
        path = ws / name
        path.write_bytes(head + np.random.default_rng(len(name)).bytes(size))
        return path

    return make


def empty_file(name: str) -> Callable[[Path], Path]:
    def make(ws: Path) -> Path:
        path = ws / name
        path.write_bytes(b"")
        return path

    return make


def text_file(name: str, text: str) -> Callable[[Path], Path]:
    def make(ws: Path) -> Path:
        path = ws / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return make


def zip_file(name: str, entries: dict[str, bytes], truncate: bool = False) -> Callable[[Path], Path]:
    def make(ws: Path) -> Path:
        path = ws / name
        with zipfile.ZipFile(path, "w") as archive:
            for entry, data in entries.items():
                archive.writestr(entry, data)
        if truncate:
            os.truncate(path, path.stat().st_size // 2)
        return path

    return make


def truncated_torchscript(ws: Path) -> Path:
    import torch

    path = ws / "model.ts"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 3)), str(path))
    os.truncate(path, path.stat().st_size // 2)
    return path


def truncated_pt2(ws: Path) -> Path:
    import torch

    path = ws / "model.pt2"
    torch.export.save(torch.export.export(torch.nn.Linear(4, 3), (torch.zeros(2, 4),)), str(path))
    os.truncate(path, path.stat().st_size // 2)
    return path


def factory(ws: Path, source: str, name: str = "build") -> str:
    text_file("factory.py", source)(ws)
    return f"{ws / 'factory.py'}:{name}"


LINEAR = "from torch import nn\n\ndef build():\n    return nn.Linear(4, 3)\n"


def torch_folder_without_file(ws: Path) -> Path:
    folder = ws / "torch-folder"
    folder.mkdir()
    sidecar = {"version": 1, "path": "model.ts", "format": "torch", "extra": {"torch.kind": "torchscript",
               "torch.file": "model.ts"}}  # fmt: skip
    (folder / "artifact.json").write_text(json.dumps(sidecar))
    return folder


def truncated_skops(ws: Path) -> Path:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).standard_normal((20, 4))
    path = ws / "model.skops"
    sio.dump(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), path)
    os.truncate(path, path.stat().st_size // 2)
    return path


def pickled(name: str, value: object) -> Callable[[Path], Path]:
    def make(ws: Path) -> Path:
        import pickle

        path = ws / name
        path.write_bytes(pickle.dumps(value))
        return path

    return make


def truncated_lightgbm(ws: Path) -> Path:
    import lightgbm

    x = np.random.default_rng(0).standard_normal((40, 4))
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "num_leaves": 3},
                             lightgbm.Dataset(x, (x[:, 0] > 0).astype(int)), num_boost_round=3)  # fmt: skip
    path = ws / "model.txt"
    text = booster.model_to_string()
    path.write_text(text[: len(text) // 2])
    return path


def savedmodel(pb: bytes) -> Callable[[Path], Path]:
    def make(ws: Path) -> Path:
        folder = ws / "saved"
        folder.mkdir()
        (folder / "saved_model.pb").write_bytes(pb)
        return folder

    return make


def hf_folder(config: str, files: dict[str, bytes] | None = None) -> Callable[[Path], Path]:
    def make(ws: Path) -> Path:
        folder = ws / "hf"
        folder.mkdir()
        (folder / "config.json").write_text(config)
        for name, data in (files or {}).items():
            (folder / name).write_bytes(data)
        return folder

    return make


VOCAB = b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n"
BERT = json.dumps({"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 100, "hidden_size": 8,
                   "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8})  # fmt: skip


def plugin_case(
    id: str, make: Callable[[Path], object], code: ExitCode, fragments: tuple[str, ...], needs: tuple[str, ...],
    command: Callable[[object, Path], list[object]] = lambda model, ws: ["inspect", model],
) -> PluginCase:  # fmt: skip
    return PluginCase(id, lambda ws: command(make(ws), ws), code, fragments, needs=needs)


TORCH = ("compressor_torch",)
SKLEARN = ("compressor_sklearn", "skops")
TF = ("compressor_tensorflow",)
HF = ("compressor_transformers",)
TRT = ("compressor_tensorrt",)
with_shape = lambda model, ws: ["inspect", model, "--shape", "x=1x4"]  # noqa: E731
trusted = lambda model, ws: ["inspect", model, "--trust-pickle"]  # noqa: E731
PLUGIN_CASES = [
    plugin_case("torch-empty-pt", empty_file("model.pt"), ExitCode.INPUT_ERROR, ("model.pt", "empty"), TORCH),
    plugin_case("torch-random-pt", random_file("model.pt"), ExitCode.INPUT_ERROR, ("not a pytorch file",), TORCH),
    plugin_case(
        "torch-random-pt-trusted",
        random_file("model.pt"),
        ExitCode.INPUT_ERROR,
        ("not a pytorch file",),
        TORCH,
        trusted,
    ),
    plugin_case(
        "torch-truncated-torchscript",
        truncated_torchscript,
        ExitCode.INPUT_ERROR,
        ("model.ts", "truncated or corrupt archive"),
        TORCH,
        with_shape,
    ),
    plugin_case(
        "torch-zip-without-code",
        zip_file("model.ts", {"a/data.pkl": b"junk"}),
        ExitCode.INPUT_ERROR,
        ("model.ts", "refused"),
        TORCH,
    ),
    plugin_case(
        "torch-random-pt2",
        random_file("model.pt2"),
        ExitCode.INPUT_ERROR,
        ("model.pt2", "not a torch.export archive"),
        TORCH,
    ),
    plugin_case(
        "torch-truncated-pt2", truncated_pt2, ExitCode.INPUT_ERROR, ("model.pt2", "not a torch.export archive"), TORCH
    ),
    plugin_case(
        "torch-factory-syntax-error",
        lambda ws: factory(ws, "def build(:\n"),
        ExitCode.INPUT_ERROR,
        ("factory.py", "SyntaxError"),
        TORCH,
        with_shape,
    ),
    plugin_case(
        "torch-factory-name-missing",
        lambda ws: factory(ws, LINEAR, "nope"),
        ExitCode.INPUT_ERROR,
        ("has no attribute 'nope'",),
        TORCH,
        with_shape,
    ),
    plugin_case(
        "torch-factory-raises",
        lambda ws: factory(ws, "def build():\n    raise RuntimeError('boom')\n"),
        ExitCode.INPUT_ERROR,
        ("raised RuntimeError: boom",),
        TORCH,
        with_shape,
    ),
    plugin_case(
        "torch-weights-missing",
        lambda ws: factory(ws, LINEAR),
        ExitCode.INPUT_ERROR,
        ("weights file not found",),
        TORCH,
        lambda model, ws: ["inspect", model, "--shape", "x=1x4", "--weights", ws / "missing.safetensors"],
    ),
    plugin_case(
        "torch-weights-corrupt-safetensors",
        lambda ws: factory(ws, LINEAR),
        ExitCode.INPUT_ERROR,
        ("w.safetensors", "not a readable safetensors file"),
        TORCH,
        lambda model, ws: ["inspect", model, "--shape", "x=1x4", "--weights", random_file("w.safetensors")(ws)],
    ),
    plugin_case(
        "torch-folder-without-its-file",
        torch_folder_without_file,
        ExitCode.INPUT_ERROR,
        ("model.ts", "is missing"),
        TORCH,
    ),
    plugin_case(
        "sklearn-empty-skops", empty_file("model.skops"), ExitCode.INPUT_ERROR, ("model.skops", "empty"), SKLEARN
    ),
    plugin_case(
        "sklearn-random-skops",
        random_file("model.skops"),
        ExitCode.INPUT_ERROR,
        ("not a readable .skops file",),
        SKLEARN,
    ),
    plugin_case(
        "sklearn-truncated-skops", truncated_skops, ExitCode.INPUT_ERROR, ("not a readable .skops file",), SKLEARN
    ),
    plugin_case(
        "sklearn-skops-without-schema",
        zip_file("model.skops", {"x.npy": b"junk"}),
        ExitCode.INPUT_ERROR,
        ("not a readable .skops file", "schema.json"),
        SKLEARN,
    ),
    plugin_case(
        "sklearn-random-joblib-trusted",
        random_file("model.joblib"),
        ExitCode.INPUT_ERROR,
        ("model.joblib", "could not be unpickled"),
        SKLEARN,
        trusted,
    ),
    plugin_case(
        "sklearn-pickle-of-a-dict-trusted",
        pickled("model.pkl", {"not": "a model"}),
        ExitCode.INPUT_ERROR,
        ("builtins.dict", "not a fitted estimator"),
        SKLEARN,
        trusted,
    ),
    plugin_case(
        "xgboost-empty-ubj",
        empty_file("model.ubj"),
        ExitCode.INPUT_ERROR,
        ("model.ubj", "empty"),
        ("compressor_sklearn", "xgboost"),
    ),
    plugin_case(
        "xgboost-json-without-a-model",
        text_file("model.json", '{"learner": {}}'),
        ExitCode.INPUT_ERROR,
        ("not a valid xgboost model",),
        ("compressor_sklearn", "xgboost"),
    ),
    plugin_case(
        "lightgbm-truncated",
        truncated_lightgbm,
        ExitCode.INPUT_ERROR,
        ("not a valid lightgbm model", "truncated"),
        ("compressor_sklearn", "lightgbm"),
    ),
    plugin_case(
        "lightgbm-header-only",
        text_file("model.lgb", "tree\n"),
        ExitCode.INPUT_ERROR,
        ("not a valid lightgbm model",),
        ("compressor_sklearn", "lightgbm"),
    ),
    plugin_case(
        "keras-empty",
        empty_file("model.keras"),
        ExitCode.INPUT_ERROR,
        ("model.keras", "not a loadable keras model"),
        TF,
    ),
    plugin_case(
        "keras-zip-without-config",
        zip_file("model.keras", {"model.weights.h5": b"junk"}),
        ExitCode.INPUT_ERROR,
        ("not a loadable keras model", "config.json"),
        TF,
    ),
    plugin_case(
        "keras-config-not-json",
        zip_file("model.keras", {"config.json": b"{not json", "metadata.json": b"{}"}),
        ExitCode.INPUT_ERROR,
        ("not a loadable keras model", "JSONDecodeError"),
        TF,
    ),
    plugin_case(
        "savedmodel-empty-pb", savedmodel(b""), ExitCode.INPUT_ERROR, ("saved", "not a loadable savedmodel"), TF
    ),
    plugin_case(
        "savedmodel-random-pb",
        savedmodel(np.random.default_rng(2).bytes(4096)),
        ExitCode.INPUT_ERROR,
        ("not a loadable savedmodel", "cannot parse"),
        TF,
    ),
    plugin_case(
        "hf-config-is-a-list", hf_folder("[1, 2]"), ExitCode.INPUT_ERROR, ("config.json", "not a json object"), HF
    ),
    plugin_case(
        "hf-corrupt-safetensors",
        hf_folder(BERT, {"model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}", "vocab.txt": VOCAB}),
        ExitCode.INPUT_ERROR,
        ("cannot be loaded", "safetensor"),
        HF,
        lambda model, ws: ["bench", model, *FAST],
    ),
    plugin_case(
        "hf-corrupt-tokenizer",
        hf_folder(BERT, {"model.safetensors": b"", "tokenizer.json": b"{not json"}),
        ExitCode.INPUT_ERROR,
        ("tokenizer", "cannot be loaded"),
        HF,
    ),
    plugin_case(
        "trt-check-missing-file",
        lambda ws: ws / "missing.onnx",
        ExitCode.INPUT_ERROR,
        ("model not found",),
        TRT,
        lambda model, ws: ["trt-check", model],
    ),
    plugin_case(
        "trt-check-truncated-onnx",
        truncated_onnx,
        ExitCode.INPUT_ERROR,
        ("not a valid onnx model",),
        TRT,
        lambda model, ws: ["trt-check", model],
    ),
    plugin_case(
        "trt-check-empty-onnx",
        empty_onnx,
        ExitCode.INPUT_ERROR,
        ("empty (0 bytes)",),
        TRT,
        lambda model, ws: ["trt-check", model],
    ),
    plugin_case(
        "trt-check-folder",
        folder_without_model,
        ExitCode.INPUT_ERROR,
        ("is a directory",),
        TRT,
        lambda model, ws: ["trt-check", model],
    ),
]


ALL_CASES = [*MODEL_CASES, *RECIPE_CASES, *DATA_CASES, *OPTION_CASES, *OUTPUT_CASES, *PLUGIN_CASES]


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in ALL_CASES]
    assert len(ids) == len(set(ids))


@pytest.fixture
def ws(digits_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The workspace: a private copy of the digits example, also the working directory."""
    monkeypatch.chdir(digits_dir)
    return digits_dir


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.id)
def test_bad_input_fails_cleanly(case: Case, cli, ws: Path) -> None:  # type: ignore[no-untyped-def]
    for module in getattr(case, "needs", ()):
        pytest.importorskip(module)
    args = case.build(ws)
    root = ws.parent  # the whole tmp_path: catches anything written beside the workspace too
    before = snapshot(root)
    started = time.perf_counter()
    result = cli(*args)
    elapsed = time.perf_counter() - started

    assert_clean_error(result, case.code, *case.fragments)
    assert result.stdout == "", "an error without --json prints nothing on stdout"
    if case.max_seconds is not None:
        assert elapsed < case.max_seconds, f"took {elapsed:.2f}s"
    strays = [str(p) for p in root.rglob(f"{STAGING_PREFIX}*")]
    assert not strays, f"staging files left behind: {strays}"
    after = snapshot(root)
    created = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert (created, removed, changed) == ([], [], []), f"created {created}, removed {removed}, changed {changed}"


# --- --json and --debug --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case_id", "command"),
    [
        ("inspect-nonexistent-path", "inspect"),
        ("quantize-device-gpu", "quantize"),
        ("run-unknown-pass", "run"),
        ("compare-data-wrong-rank", "compare"),
    ],
)
def test_json_error_envelope(case_id: str, command: str, cli, ws: Path) -> None:  # type: ignore[no-untyped-def]
    case = next(c for c in ALL_CASES if c.id == case_id)
    result = cli(*case.build(ws), "--json")
    assert_clean_error(result, case.code, *case.fragments)
    envelope = json.loads(result.stdout)
    assert envelope["schema"] == "compressor/result"
    assert envelope["command"] == command
    assert envelope["ok"] is False
    assert envelope["exit_code"] == case.code
    assert envelope["result"] is None
    assert case.fragments[0].lower() in envelope["error"]["message"].lower()
    assert envelope["error"]["type"]


def test_debug_shows_traceback_for_compressor_error(cli, ws: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("--debug", "inspect", ws / "missing.onnx")
    assert result.code == ExitCode.INPUT_ERROR
    assert "Traceback (most recent call last)" in result.stderr
    assert "ModelLoadError" in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        f"error: model not found: {ws / 'missing.onnx'}"
    ]


def test_debug_environment_variable_shows_traceback(cli, ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COMPRESSOR_DEBUG", "1")
    result = cli("run", write_recipe(ws, "version: 1\nmodel: x.onnx\npasses: [nope]\n"), "-o", ws / "out")
    assert result.code == ExitCode.INPUT_ERROR
    assert "Traceback (most recent call last)" in result.stderr
    assert "RecipeError" in result.stderr


def test_long_error_stays_on_one_line(cli, ws: Path) -> None:  # type: ignore[no-untyped-def]
    """A message longer than any terminal is printed as one line, not wrapped (CI logs grep for `error:`)."""
    deep = ws.joinpath(*["a-rather-long-folder-name"] * 20)
    deep.mkdir(parents=True)
    result = cli("inspect", deep / "missing.onnx")
    assert_clean_error(result, ExitCode.INPUT_ERROR, str(deep / "missing.onnx"))
    assert len(result.stderr.strip().splitlines()) == 1

"""`--timeout`: exit 7, one error line naming the step that was running, and nothing left behind, on every
command that has it (quantize, run, optimize, compare, bench and the torch plugin's export)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from compressor.errors import ExitCode
from tests.conftest import DIGITS
from tests.reliability.conftest import Workspace, digest_tree, strays
from tests.reliability.models import matmul_stack, stack_data

pytestmark = pytest.mark.timeout(300)
#: Timing that would take minutes: only the timeout ends it.
FOREVER = ("--min-runs", "1000000", "--min-time", "600")


#: What a timeout names as the step in progress (compressor.limits.set_activity).
STEPS = ("loading ", "running pass '", "verifying the output of pass '", "writing ", "timing ", "building candidate ")


def commands(ws: Workspace) -> dict[str, tuple[object, ...]]:
    """The command lines, each with a --timeout shorter than the work."""
    folder = ws.root / "in"
    model = matmul_stack(folder / "stack.onnx", width=1024, layers=8)
    data = stack_data(folder / "calib.npz", width=1024, samples=256)
    recipe = folder / "recipe.yaml"
    recipe.write_text(
        "version: 1\nmodel: stack.onnx\ndata: calib.npz\npasses: [quantize.dynamic]\n"
        "measure: {min_runs: 1000000, min_time: 600}\n"
    )
    out = ws.root / "out"
    digits = DIGITS / "digits_cnn.onnx"
    return {
        "quantize": ("quantize", model, "--mode", "static", "--data", data, "-o", out / "q.onnx", "--timeout", "2s"),
        "run": ("run", recipe, "-o", out / "run", "--timeout", "6s"),
        "optimize": (
            "optimize",
            digits,
            "--data",
            DIGITS / "calib.npz",
            "--eval-data",
            DIGITS / "test.npz",
            "--passes",
            "quantize.dynamic",
            *FOREVER,
            "-o",
            out / "opt",
            "--timeout",
            "6s",
        ),
        "compare": ("compare", digits, digits, *FOREVER, "--timeout", "3s"),
        "bench": ("bench", digits, *FOREVER, "--timeout", "3s"),
    }


@pytest.mark.parametrize("command", ["quantize", "run", "optimize", "compare", "bench"])
def test_timeout_exits_7_names_the_step_and_leaves_nothing(ws: Workspace, command: str) -> None:
    args = commands(ws)[command]
    inputs = digest_tree(ws.root / "in")
    result = ws.run(*args, timeout=120)
    assert result.returncode == ExitCode.TIMEOUT, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "timed out after" in lines[0], result.stderr
    assert any(f" while {step}" in lines[0] for step in STEPS), lines[0]
    assert "Traceback" not in result.stderr
    assert not (ws.root / "out").exists() or list((ws.root / "out").iterdir()) == []
    assert strays(ws.root) == []  # staging folders, and the optimizer's build folders in TMPDIR
    assert digest_tree(ws.root / "in") == inputs


def test_timeout_on_a_torch_command(ws: Workspace) -> None:
    pytest.importorskip("compressor_torch")
    out = ws.root / "out"
    result = ws.run(
        "prune", f"{DIGITS / 'model.py'}:build_model", "--weights", DIGITS / "digits_cnn.safetensors",
        "--shape", "x=1x1x8x8", "--sparsity", "0.5", "--recover", "finetune", "--data",
        f"{DIGITS.parent / 'resnet' / 'data.py'}:train_8x8", "-o", out / "pruned", "--timeout", "2s",
    )  # fmt: skip
    assert result.returncode == ExitCode.TIMEOUT, result.stderr
    assert any(f"timed out after 2 s while {step}" in result.stderr for step in STEPS), result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
    assert strays(ws.root) == []


def test_json_timeout_is_one_envelope(ws: Workspace) -> None:
    result = ws.run("bench", DIGITS / "digits_cnn.onnx", *FOREVER, "--timeout", "2s", "--json")
    assert result.returncode == ExitCode.TIMEOUT
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is False and envelope["exit_code"] == ExitCode.TIMEOUT
    assert envelope["error"]["type"] == "CommandTimeout" and "timed out" in envelope["error"]["message"]


#: The main thread writes into its temporary folder without pause when the timeout strikes.
WRITING_WHEN_TIME_RUNS_OUT = """
import itertools, sys
from pathlib import Path
from compressor import limits
from compressor.outputs import scratch_dir

with limits.handle_abrupt_ends(), scratch_dir("busy", Path(sys.argv[1])) as folder:
    limits.set_activity("writing parts")
    limits.start_timeout(1)
    for i in itertools.count():
        (folder / f"part-{i % 50}").write_bytes(b"x" * 4096)
"""


def test_a_timeout_cleans_up_while_the_main_thread_keeps_writing(ws: Workspace) -> None:
    """The main thread ends the process itself: a folder removed under a thread still writing into it survives."""
    for _ in range(3):
        result = subprocess.run([sys.executable, "-c", WRITING_WHEN_TIME_RUNS_OUT, str(ws.tmp)], env=ws.env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert result.returncode == ExitCode.TIMEOUT, result.stderr
        assert result.stderr.strip().splitlines()[0] == "error: timed out after 1 s while writing parts"
        assert strays(ws.tmp) == []

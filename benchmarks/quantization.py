"""fp32 vs every quantization mode, side by side in one run, on the digits CNN and the real MiniLM.

    python benchmarks/quantization.py [--models digits,minilm] [--min-time 1.0] [--out benchmarks/results]

Prints one trade-off table per model (size, latency at batch 1 and 8, accuracy or fidelity, each with
its ratio to fp32) and writes ``quantization.json`` (the versioned envelope) and ``quantization.md``.
Models are timed one at a time, interleaved, with intra-op spin-waiting off.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "minilm"))

from results_io import write_results  # noqa: E402

from compressor.data import load_dataset  # noqa: E402
from compressor.loaders import load_model  # noqa: E402
from compressor.measure.latency import LatencyPlan  # noqa: E402
from compressor.measure.runner import RunOptions  # noqa: E402
from compressor.measure.suite import MeasureSettings, measure_models  # noqa: E402
from compressor.pipeline import make_steps  # noqa: E402
from compressor.report.measurement import tradeoff_table  # noqa: E402
from compressor.report.table import to_markdown  # noqa: E402
from compressor.workflow import compress  # noqa: E402

#: name -> (pass, config). Each variant is built from fp32 by the tool itself.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dynamic int8 (default)": ("quantize.dynamic", {}),
    "dynamic int8 per-tensor": ("quantize.dynamic", {"per_channel": False}),
    "static int8 QDQ (default)": ("quantize.static", {}),
    "static int8 QDQ MatMul only": ("quantize.static", {"op_types": ["MatMul"]}),
    "int4 weight-only": ("quantize.int4", {}),
    "fp16": ("convert.fp16", {}),
}


def prepare(name: str, workdir: Path) -> tuple[Path, str, str]:
    """(model, calibration data, evaluation data) for a benchmark model."""
    if name == "digits":
        folder = ROOT / "examples" / "digits"
        return folder / "digits_cnn.onnx", str(folder / "calib.npz"), str(folder / "test.npz")
    from export_minilm import export

    model = export(workdir / "minilm.onnx", seq=128, samples=64)
    data = str(model.with_suffix(".npz"))
    return model, data, data


def bench_model(name: str, workdir: Path, plan: LatencyPlan, threads: int) -> tuple[dict[str, Any], str]:
    model_path, calib, evaluation = prepare(name, workdir)
    source = load_model(model_path)
    calibration = load_dataset(calib, source)
    artifacts, labels = [source], ["fp32"]
    for label, (pass_name, config) in VARIANTS.items():
        if name == "digits" and "MatMul only" in label:
            continue  # the CNN has no MatMul: the variant would quantize nothing
        out = workdir / f"{name}-{label.replace(' ', '_')}.onnx"
        done = compress(source, make_steps([(pass_name, config)]), out, calibration)
        artifacts.append(done.output)
        labels.append(label)
        print(f"  built {label}: {done.output.path.stat().st_size / 1e6:.2f} MB", file=sys.stderr)
    settings = MeasureSettings(batches=(1, 8), run=RunOptions(threads=threads), plan=plan)
    measurement = measure_models(artifacts, settings, load_dataset(evaluation, source), labels=labels)
    table = tradeoff_table(measurement)
    table.title = f"{name}: fp32 vs quantization modes"
    return measurement.to_dict(), to_markdown([table])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,minilm")
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds of timed runs per model and batch")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    plan = LatencyPlan(min_runs=50, min_seconds=args.min_time)
    results, sections = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            print(f"{name}: building variants ...", file=sys.stderr)
            results[name], markdown = bench_model(name, Path(tmp), plan, args.threads)
            sections.append(markdown)
            print(markdown)
    write_results(args.out, "quantization", results, "\n".join(sections))


if __name__ == "__main__":
    main()

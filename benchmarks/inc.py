"""Intel Neural Compressor passes measured: PT2E static INT8 on the digits CNN, weight-only on a Linear stack.

    python benchmarks/inc.py [--models digits,linear] [--min-time 1.0] [--out benchmarks/results]

digits: the bundled CNN (trained weights), variants built by the tool from the fp32 torch model:

* fp32: ``convert.onnx``;
* INC static INT8: ``quantize.inc.static`` (PT2E, 256 calibration images, exported to ONNX with INT8 weights);
* INC autotune: ``quantize.inc.autotune`` (accuracy on the held-out split, tolerable loss 0.5%);
* ORT static INT8: ``convert.onnx`` then ``quantize.static`` (ONNX Runtime's QDQ), for comparison.

linear: ``examples/linear_stack`` (four 512x512 Linear layers in two residual blocks, 1.1M parameters), first
trained for a few seconds on the digits' training split (deterministic), then:

* fp32 (torch eager), RTN int4 and int8, GPTQ int4 and AWQ int4 (``quantize.inc.weight_only``, group size 32,
  calibration on 128 training images), run by the ``inc-woq`` runner (torch eager);
* for comparison: the ONNX export and ONNX Runtime's ``quantize.int4`` (MatMulNBits, block 32) of it.

Everything is measured in one process per model (one at a time, interleaved, spin-waiting off): size on disk
(a folder's files, an ONNX file), latency at batch 1 and 8, accuracy on the 360 held-out digits, fidelity to
fp32. Writes ``inc.json`` (the versioned envelope) and ``inc.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from results_io import write_results  # noqa: E402

from compressor.data import load_dataset  # noqa: E402
from compressor.loaders import LoaderOptions, load_model  # noqa: E402
from compressor.measure.latency import LatencyPlan  # noqa: E402
from compressor.measure.runner import RunOptions  # noqa: E402
from compressor.measure.suite import MeasureSettings, measure_models  # noqa: E402
from compressor.pipeline import make_steps  # noqa: E402
from compressor.report.measurement import tradeoff_table  # noqa: E402
from compressor.report.table import to_markdown  # noqa: E402
from compressor.workflow import compress  # noqa: E402

DIGITS = ROOT / "examples" / "digits"
STACK = ROOT / "examples" / "linear_stack" / "model.py"
TRAIN = f"{ROOT / 'examples' / 'resnet' / 'data.py'}:train_8x8"


def build(workdir: Path, name: str, start: Any, passes: list[tuple[str, dict[str, Any]]], data: Any) -> Any:
    started = time.perf_counter()
    steps = make_steps(passes)
    target = workdir / (f"{name}.onnx" if steps[-1].pass_cls.output_format == "onnx" else name)
    done = compress(start, steps, target, data)
    print(f"  built {name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return done


def digits(workdir: Path, settings: MeasureSettings) -> tuple[Any, dict[str, Any]]:
    source = load_model(f"{DIGITS / 'model.py'}:build_model", LoaderOptions(weights=DIGITS / "digits_cnn.safetensors"))
    calib = load_dataset(str(DIGITS / "calib.npz"), source)
    test = DIGITS / "test.npz"
    fp32 = build(workdir, "fp32", source, [("convert.onnx", {})], calib)
    inc_static = build(workdir, "inc-static", source, [("quantize.inc.static", {})], calib)
    tune = {"eval_data": str(test), "tolerable_loss": 0.005}
    inc_tune = build(workdir, "inc-autotune", source, [("quantize.inc.autotune", tune)], calib)
    ort_static = build(workdir, "ort-static", fp32.output, [("quantize.static", {})], calib)
    labels = ["fp32", "INC static INT8 (PT2E -> ONNX)", "INC autotune (tolerable loss 0.5%)", "ORT static INT8 QDQ"]
    outputs = [fp32.output, inc_static.output, inc_tune.output, ort_static.output]
    measurement = measure_models(outputs, settings, load_dataset(str(test), source), labels=labels)
    details = {
        "inc_static": inc_static.pipeline.steps[-1].to_dict(),
        "inc_autotune": inc_tune.pipeline.steps[-1].to_dict(),
    }
    return measurement, details


def linear(workdir: Path, settings: MeasureSettings) -> tuple[Any, dict[str, Any]]:
    import importlib.util

    import torch
    from safetensors.torch import save_file

    spec = importlib.util.spec_from_file_location("linear_stack_model", STACK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source_ref = f"{STACK}:build_model"
    probe = load_model(source_ref)
    train = load_dataset(TRAIN, probe)
    started = time.perf_counter()
    model = module.train(
        module.build_model(),
        torch.from_numpy(next(iter(train.inputs.values()))),
        torch.from_numpy(train.labels.astype("int64")),
    )
    weights = workdir / "linear_stack.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    print(f"  trained the Linear stack in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    source = load_model(source_ref, LoaderOptions(weights=weights))
    calib = load_dataset(str(DIGITS / "calib.npz"), source)
    variants = [
        ("RTN int4 g32", {"algorithm": "rtn", "bits": 4}),
        ("RTN int8 g32", {"algorithm": "rtn", "bits": 8}),
        ("GPTQ int4 g32", {"algorithm": "gptq", "bits": 4}),
        ("AWQ int4 g32", {"algorithm": "awq", "bits": 4}),
    ]
    built = [
        build(workdir, label.replace(" ", "-"), source, [("quantize.inc.weight_only", config)], calib)
        for label, config in variants
    ]
    onnx_fp32 = build(workdir, "stack-fp32", source, [("convert.onnx", {})], calib)
    onnx_int4 = build(workdir, "stack-ort-int4", onnx_fp32.output, [("quantize.int4", {"block_size": 32})], calib)
    labels = [
        "fp32 (torch)",
        *(f"INC {label} (inc-woq)" for label, _ in variants),
        "fp32 ONNX",
        "ORT int4 MatMulNBits b32",
    ]
    outputs = [source, *(b.output for b in built), onnx_fp32.output, onnx_int4.output]
    measurement = measure_models(outputs, settings, load_dataset(str(DIGITS / "test.npz"), source), labels=labels)
    details = {label: b.pipeline.steps[-1].to_dict() for (label, _), b in zip(variants, built, strict=True)}
    return measurement, details


def checks(name: str, measurement: Any) -> list[str]:
    """The acceptance checks of the INC plugin, evaluated on this run."""
    base, *others = measurement.models
    if name == "digits":
        inc_static = others[0]
        drop = (base.accuracy - inc_static.accuracy) * 100
        return [
            f"digits: INC static INT8 accuracy {inc_static.accuracy:.2%} vs fp32 {base.accuracy:.2%} "
            f"(within 0.5 pt: {'yes' if drop <= 0.5 else 'NO'})"
        ]
    rtn4 = others[0]
    smaller = base.size_bytes / rtn4.size_bytes
    return [
        f"linear: INC RTN int4 is {smaller:.1f}x smaller on disk than fp32 (>= 5x: {'yes' if smaller >= 5 else 'NO'})"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,linear")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed runs per model and batch")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    settings = MeasureSettings(
        batches=(1, 8), run=RunOptions(threads=args.threads), plan=LatencyPlan(min_runs=50, min_seconds=args.min_time)
    )
    results: dict[str, Any] = {}
    sections, summary = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            print(f"{name}: building variants ...", file=sys.stderr)
            workdir = Path(tmp) / name
            workdir.mkdir()
            measurement, details = {"digits": digits, "linear": linear}[name](workdir, settings)
            table = tradeoff_table(measurement)
            table.title = f"{name}: {table.title}"
            markdown = to_markdown([table])
            results[name] = {"measurement": measurement.to_dict(), "steps": details}
            sections.append(markdown)
            summary += checks(name, measurement)
            print(markdown)
    print("\n".join(summary))
    results["checks"] = summary
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(args.out, "inc", results, "\n".join(sections) + "\n" + "\n".join(f"- {s}" for s in summary))


if __name__ == "__main__":
    main()

"""A model over 2 GB (external data): inspect, quantize (dynamic, int4) and bench it, recording the time and
the peak memory of each command against the model's size.

    python benchmarks/large_model.py [--gb 2.2] [--workdir /tmp/compressor-large] [--keep]

The model is generated here: a stack of wide MatMul layers whose weights are written straight into the
external data file, one layer at a time, so generating it never holds the weights in memory either. Each
command runs in its own process; its peak resident memory is sampled every 20 ms. Goal: peak RSS under 2x
the model size. Writes benchmarks/results/large_model.{json,md}.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import psutil
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 8192


def generate(path: Path, target_gb: float, width: int = WIDTH) -> Path:
    """Write ``path`` and ``path.data``: MatMul layers of [width, width] float32 weights, ~target_gb in all."""
    layer_bytes = width * width * 4
    layers = max(1, int(target_gb * 1e9 // layer_bytes) + 1)
    data_name = path.name + ".data"
    rng = np.random.default_rng(0)
    initializers, nodes = [], []
    with (path.parent / data_name).open("wb") as data:
        for index in range(layers):
            offset = data.tell()
            for row in range(0, width, 512):  # a slab at a time: memory stays small
                slab = rng.standard_normal((min(512, width - row), width), dtype=np.float32)
                slab /= np.float32(np.sqrt(width))  # in place: float32 stays float32 (a division would promote)
                data.write(slab.tobytes())
            tensor = TensorProto(name=f"w{index}", data_type=TensorProto.FLOAT, dims=[width, width])
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(layer_bytes))):
                tensor.external_data.add(key=key, value=value)
            initializers.append(tensor)
            source = "x" if index == 0 else f"h{index - 1}"
            nodes.append(helper.make_node("MatMul", [source, f"w{index}"], [f"m{index}"], name=f"layer{index}/MatMul"))
            out = "y" if index == layers - 1 else f"h{index}"
            nodes.append(helper.make_node("Tanh", [f"m{index}"], [out], name=f"layer{index}/Tanh"))
    graph = helper.make_graph(
        nodes,
        "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializers,
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def run_measured(args: list[str]) -> dict[str, float]:
    """Run ``python -m compressor ARGS``; wall time and peak RSS of the process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "compressor", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    peak = 0
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            rss = watched.memory_info().rss + sum(c.memory_info().rss for c in watched.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    stderr = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"compressor {' '.join(args)} failed ({proc.returncode}): {stderr.strip()[-500:]}")
    return {"seconds": time.perf_counter() - started, "peak_rss_bytes": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.2, help="model size to generate, in GB")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/compressor-large"))
    parser.add_argument("--keep", action="store_true", help="keep the generated models")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    started = time.perf_counter()
    model = generate(args.workdir / "wide.onnx", args.gb)
    size = sum(p.stat().st_size for p in args.workdir.iterdir())
    rows = {
        "generate": {"seconds": time.perf_counter() - started, "peak_rss_bytes": psutil.Process().memory_info().rss}
    }
    shape = ["--shape", f"x=1x{WIDTH}"]
    commands = {
        "inspect": ["inspect", str(model)],
        "quantize dynamic": ["quantize", str(model), "--mode", "dynamic", "-o", str(args.workdir / "dyn.onnx"), *shape],
        "quantize int4": ["quantize", str(model), "--mode", "int4", "-o", str(args.workdir / "int4.onnx"), *shape],
        "bench": ["bench", str(model), "--batch", "1", "--min-runs", "5", "--min-time", "0", *shape],
    }
    for name, command in commands.items():
        print(f"{name} ...", file=sys.stderr)
        rows[name] = run_measured(command)
    lines = [f"Model: {size / 1e9:.2f} GB ({model.name} + external data). Peak RSS goal: under 2x the model size.", "",
             "| step | seconds | peak RSS | peak RSS / model size |", "|---|---:|---:|---:|"]  # fmt: skip
    for name, row in rows.items():
        ratio = row["peak_rss_bytes"] / size
        lines.append(f"| {name} | {row['seconds']:.1f} | {row['peak_rss_bytes'] / 1e9:.2f} GB | {ratio:.2f}x |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "large_model.md").write_text(table + "\n")
    from compressor.report.envelope import dumps, envelope

    (args.out / "large_model.json").write_text(
        dumps(envelope("benchmarks/large_model", {"model_bytes": size, "steps": rows}))
    )
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

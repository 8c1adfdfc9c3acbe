"""What `compressor optimize` finds by itself, and how much the cache saves on a second run.

    python benchmarks/optimize.py [--models digits,minilm] [--threads 1] [--out benchmarks/results]

digits: the PyTorch digits CNN (factory + trained weights), searched over structured pruning, distillation
and static INT8 with a 1-point accuracy constraint, balanced objective, latency at batch 8 in ONNX Runtime.
minilm: the real MiniLM sentence encoder (ONNX), searched over dynamic and static INT8 with a fidelity
constraint (cosine drop at most 0.01). Each search runs twice with one fresh cache: the second run is timed
to show the cache speed-up. Prints a table and writes optimize.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from results_io import write_results

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "minilm"))


def searches(workdir: Path, threads: int, models: list[str]) -> dict[str, list[str]]:
    digits = ROOT / "examples" / "digits"
    common = ["--batch", "8", "--threads", str(threads), "--min-runs", "50", "--min-time", "1"]
    found = {
        "digits": [
            f"{digits / 'model.py'}:build_model", "--weights", str(digits / "digits_cnn.safetensors"),
            "--shape", "x=1x1x8x8", "--data", f"{ROOT / 'examples' / 'resnet' / 'data.py'}:train_8x8",
            "--eval-data", str(digits / "test.npz"), "--objective", "balanced",
            "--passes", "prune.structured,distill,quantize.static", *common,
        ],
    }  # fmt: skip
    if "minilm" not in models:
        return found
    from export_minilm import export

    minilm = export(workdir / "minilm.onnx", seq=128, samples=64)
    found["minilm"] = [
        str(minilm), "--data", str(minilm.with_suffix(".npz")), "--metric", "fidelity",
        "--passes", "quantize.dynamic,quantize.static", *common,
    ]  # fmt: skip
    return found


def run_search(args: list[str], out: Path, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "compressor", "optimize", *args, "-o", str(out), "--json"],
                          capture_output=True, text=True, env=env)  # fmt: skip
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"optimize failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout)["result"], seconds


def summary(name: str, result: dict[str, Any], first_s: float, second_s: float) -> str:
    base = result["baseline"]
    chosen = next((t for t in result["trials"] if t["index"] == result["best"]), None)
    rejected = [t["label"] for t in result["trials"] if t["status"] == "rejected"]
    if chosen is None:
        return f"| {name} | none | - | - | - | {first_s:.0f} s | {second_s:.1f} s ({first_s / second_s:.0f}x) |"
    size = chosen["size_bytes"] / base["size_bytes"]
    latency = chosen["latency"]["8"]["p50_ms"] / base["latency"]["8"]["p50_ms"]
    quality = f"{chosen['quality']:.4f} (baseline {base['quality']:.4f})"
    return (
        f"| {name} | {chosen['label']} | {1 / size:.1f}x smaller | {1 / latency:.1f}x faster | {quality} | "
        f"{first_s:.0f} s, {len(result['trials'])} trials, {len(rejected)} rejected | "
        f"{second_s:.1f} s ({first_s / second_s:.0f}x) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,minilm")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "COMPRESSOR_CACHE_DIR": str(workdir / "cache"), "HF_HUB_OFFLINE": "1"}
        models = args.models.split(",")
        for name, search in searches(workdir, args.threads, models).items():
            if name not in models:
                continue
            print(f"{name}: searching ...", file=sys.stderr)
            first, first_s = run_search(search, workdir / f"{name}-1", env)
            second, second_s = run_search(search, workdir / f"{name}-2", env)
            assert first["best"] == second["best"], "the cached run chose differently"
            results[name] = {"result": first, "first_s": first_s, "second_s": second_s}
            rows.append(summary(name, first, first_s, second_s))
    table = "\n".join([
        "| model | chosen | size | latency b8 | quality | first run | cached run |",
        "|---|---|---:|---:|---|---:|---:|",
        *rows,
    ])  # fmt: skip
    print(table)
    write_results(args.out, "optimize", results, table)


if __name__ == "__main__":
    main()

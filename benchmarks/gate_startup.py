"""Start-up cost of the gate: `compressor check` with a size budget, next to `python -c "import onnx"`.

    python benchmarks/gate_startup.py [--runs 9] [--budget 0.3] [--out benchmarks/results]

The gate runs on every commit, so its wall time matters. Each command runs ``--runs`` times in a fresh
interpreter, the commands interleaved round by round (so drift of a shared machine spreads over all of
them), in an empty temporary folder (no pyproject.toml) holding a copy of the digits model; wall time and
CPU time (user + system, less sensitive to other load) are recorded. Prints a table of medians and writes
``gate_startup.json`` (the versioned envelope). Also records which heavy modules the size-only check imports
(none of onnxruntime, torch, transformers, tensorflow, scikit-learn may appear). Exits 1 when the size-only
check's median wall time exceeds ``import onnx``'s by more than ``--budget`` seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "digits" / "digits_cnn.onnx"
HEAVY = ("onnxruntime", "torch", "transformers", "tensorflow", "sklearn", "neural_compressor", "tensorrt")
REFERENCE = "python -c 'import onnx'"
GATE = "compressor check digits_cnn.onnx --max-size 25MB"
#: Runs the CLI with the ``compressor.plugins`` entry points hidden (only the core's built-ins load).
BUILTIN_ONLY = (
    "import sys, importlib.metadata as md; real = md.entry_points; "
    "md.entry_points = lambda **kw: [] if kw.get('group') == 'compressor.plugins' else real(**kw); "
    "from compressor.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def commands() -> dict[str, list[str]]:
    py = sys.executable
    cli = [py, "-m", "compressor"]
    return {
        "python -c pass": [py, "-c", "pass"],
        REFERENCE: [py, "-c", "import onnx"],
        "compressor --version": [*cli, "--version"],
        "compressor --help": [*cli, "--help"],
        GATE: [*cli, "check", "digits_cnn.onnx", "--max-size", "25MB"],
        "compressor check ... --max-size 25MB --max-params 5M": [
            *cli, "check", "digits_cnn.onnx", "--max-size", "25MB", "--max-params", "5M",
        ],
        # diagnostic: the same gate with third-party plugins hidden, to tell the core's cost from theirs
        GATE + " (built-in plugins only)": [py, "-c", BUILTIN_ONLY, "check", "digits_cnn.onnx", "--max-size", "25MB"],
    }  # fmt: skip


def time_once(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the child) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def imported_heavy(cwd: Path) -> list[str]:
    """Top-level heavy packages the size-only check imports (from ``python -X importtime``)."""
    argv = [sys.executable, "-X", "importtime", *commands()[GATE][1:]]
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    names = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return sorted(names & set(HEAVY))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs per command (median reported)")
    parser.add_argument("--budget", type=float, default=0.3, help="allowed seconds over `import onnx`")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from compressor.errors import ExitCode
    from compressor.outputs import write_text_atomic
    from compressor.report.envelope import dumps, envelope

    with tempfile.TemporaryDirectory(prefix="gate-startup-") as tmp:
        work = Path(tmp)
        shutil.copy(MODEL, work / MODEL.name)
        cmds = commands()
        samples: dict[str, list[float]] = {name: [] for name in cmds}
        cpu: dict[str, list[float]] = {name: [] for name in cmds}
        for argv in cmds.values():  # one untimed round: file-system caches, .pyc files
            time_once(argv, work)
        for _ in range(args.runs):
            for name, argv in cmds.items():
                wall, used = time_once(argv, work)
                samples[name].append(wall)
                cpu[name].append(used)
        heavy = imported_heavy(work)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians[REFERENCE]
    rows: list[dict[str, Any]] = [
        {
            "command": name,
            "median_s": round(medians[name], 4),
            "min_s": round(min(values), 4),
            "max_s": round(max(values), 4),
            "over_import_onnx_s": round(medians[name] - base, 4),
            "cpu_median_s": round(statistics.median(cpu[name]), 4),
        }
        for name, values in samples.items()
    ]
    over = medians[GATE] - base
    over_min = min(samples[GATE]) - min(samples[REFERENCE])
    over_cpu = statistics.median(cpu[GATE]) - statistics.median(cpu[REFERENCE])
    ok = over <= args.budget and not heavy
    width = max(len(r["command"]) for r in rows)
    print(f"{'command':<{width}}  median s   min s   max s   vs import onnx   CPU s")
    for row in rows:
        print(
            f"{row['command']:<{width}}  {row['median_s']:8.3f} {row['min_s']:7.3f} {row['max_s']:7.3f}"
            f"   {row['over_import_onnx_s']:+14.3f}   {row['cpu_median_s']:5.3f}"
        )
    verdict = "OK" if ok else "OVER"
    print(
        f"\nsize-only check over `import onnx`: {over:+.3f} s wall (median), {over_min:+.3f} s (fastest runs), "
        f"{over_cpu:+.3f} s CPU (median; the least sensitive to other load on the machine)"
    )
    print(f"budget {args.budget:+.3f} s (median): {verdict}")
    print(f"heavy modules imported by the size-only check: {', '.join(heavy) or 'none'}")
    result = {
        "runs": args.runs,
        "budget_s": args.budget,
        "gate_over_import_onnx_s": round(over, 4),
        "gate_over_import_onnx_fastest_s": round(over_min, 4),
        "gate_over_import_onnx_cpu_s": round(over_cpu, 4),
        "load_average": os.getloadavg(),
        "within_budget": over <= args.budget,
        "heavy_imported": heavy,
        "commands": rows,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    code = ExitCode.OK if ok else ExitCode.CONSTRAINT_NOT_MET
    path = write_text_atomic(args.out / "gate_startup.json", dumps(envelope("benchmark gate_startup", result, code)))
    print(f"written: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

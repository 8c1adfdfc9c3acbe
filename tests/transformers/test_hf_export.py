"""The real MiniLM exported by convert.hf.onnx, and the transformer passes on it: masked Softmax and fusion."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from compressor.data import load_dataset
from compressor.loaders import load_model
from compressor.measure.runner import RunOptions, open_session
from compressor.pipeline import make_steps
from compressor.workflow import compress

pytestmark = pytest.mark.slow


def ops(path: Path) -> Counter[str]:
    return Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node)


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    artifact = load_model(path)
    session = open_session(artifact, RunOptions(threads=2))
    try:
        return session.run({s.name: feeds[s.name] for s in artifact.inputs})
    finally:
        session.close()


def test_export_matches_pytorch_and_puts_the_sentence_embedding_first(minilm_plain, minilm_dir: Path) -> None:  # type: ignore[no-untyped-def]
    step = minilm_plain.pipeline.steps[0]
    assert step.name == "convert.hf.onnx" and not step.inserted
    assert step.metrics["max_abs_diff"]["sentence_embedding"] < 1e-5
    assert step.metrics["max_abs_diff"]["token_embeddings"] < 1e-4
    assert step.fidelity.cosine_min > 0.99999  # verified again by the pipeline against the sdpa PyTorch model
    assert "outputs match PyTorch" in " ".join(step.notes)
    exported = minilm_plain.output
    assert [s.name for s in exported.outputs] == ["sentence_embedding", "token_embeddings"]
    assert [s.name for s in exported.inputs] == ["input_ids", "attention_mask"]
    assert exported.extra["tokenizer"] == str(minilm_dir.resolve())


def test_a_saved_export_still_finds_its_tokenizer(minilm_plain, minilm_dir: Path, texts: Path) -> None:  # type: ignore[no-untyped-def]
    reloaded = load_model(minilm_plain.output.path)  # a new artifact: only the ONNX file's metadata remembers
    assert "tokenizer" not in reloaded.extra
    data = load_dataset(str(texts), reloaded)
    from transformers import AutoTokenizer

    lengths = [
        len(ids) for ids in AutoTokenizer.from_pretrained(minilm_dir)(texts.read_text().splitlines())["input_ids"]
    ]
    assert data.inputs["input_ids"].shape == (16, max(lengths))  # padded to the longest text
    assert data.inputs["attention_mask"].sum(axis=1).tolist() == lengths
    assert "padded to" in data.source and "longest" in data.source


def test_masked_softmax_rewrite_is_exact(minilm_plain, texts: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = minilm_plain.output
    data = load_dataset(str(texts), source).take(6)
    done = compress(source, make_steps([("graph.masked_softmax", {})]), tmp_path / "rewritten.onnx", data)
    step = done.pipeline.steps[0]
    assert step.metrics == {"rewritten": 6, "on_values": 6}
    assert "6 of 6 Softmax nodes rewritten" in step.notes[0] and "6 of them on V" in step.notes[0]
    after, before = ops(done.output.path), ops(source.path)
    assert after["Softmax"] == 6 and after["Greater"] == 1 and after["MatMul"] == before["MatMul"] + 6
    feeds = data.inputs
    before_out, after_out = run_onnx(source.path, feeds), run_onnx(done.output.path, feeds)
    assert np.abs(before_out[0] - after_out[0]).max() < 1e-5  # sentence embeddings
    real = feeds["attention_mask"].astype(bool)
    assert np.abs(before_out[1] - after_out[1])[real].max() < 1e-4  # token embeddings of real tokens

    from compressor_transformers.masked_softmax import rewrite_masked_softmax

    assert rewrite_masked_softmax(onnx.load(str(done.output.path))) == (0, 0)  # idempotent


def test_fusion_kept_when_asked_and_dropped_when_not_faster(minilm_plain, texts: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = minilm_plain.output
    data = load_dataset(str(texts), source).take(4)
    kept = compress(
        source,
        make_steps([("graph.transformer_fusion", {"keep": "always", "timing_seconds": 0.05})]),
        tmp_path / "fused.onnx",
        data,
    )
    step = kept.pipeline.steps[0]
    assert step.metrics["kept"] is True and step.metrics["fused"]["Attention"] == 6
    assert "kept (keep: always)" in step.notes[0] and "ms" in step.notes[0]
    assert ops(kept.output.path)["Attention"] == 6 and step.fidelity.cosine_min > 0.9999

    dropped = compress(
        source,
        make_steps([("graph.transformer_fusion", {"min_gain": 0.9, "timing_seconds": 0.05})]),
        tmp_path / "unfused.onnx",
        data,
    )
    step = dropped.pipeline.steps[0]
    assert step.metrics["kept"] is False and step.metrics["latency_after_ms"] > 0
    assert "not 90% faster: model left unchanged" in step.notes[0]
    assert ops(dropped.output.path) == ops(source.path)

    # the fused model quantizes (Attention -> QAttention) although shape inference cannot type its outputs
    quantized = compress(kept.output, make_steps([("quantize.dynamic", {})]), tmp_path / "qattention.onnx", data)
    assert ops(quantized.output.path)["QAttention"] == 6
    assert quantized.pipeline.steps[0].fidelity.cosine_mean > 0.98


def test_fusion_with_nothing_to_fuse_leaves_the_model(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import DIGITS

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"version: 1\nmodel: {DIGITS / 'digits_cnn.onnx'}\ndata: {DIGITS / 'calib.npz'}\n"
        "passes:\n  - graph.transformer_fusion\nmeasure: {latency: false}\n"
    )
    result = cli("run", recipe, "-o", tmp_path / "out", "--json")
    assert result.code == 0, result.output
    step = json.loads(result.stdout)["result"]["steps"][0]
    assert step["notes"] == ["nothing to fuse (bert patterns): model left unchanged"]
    assert step["fidelity"]["cosine_min"] == 1.0

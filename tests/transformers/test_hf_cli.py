"""End to end from the command line: a Hugging Face folder in, a verified INT8 ONNX model out."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from tests.transformers.conftest import FAST

pytestmark = pytest.mark.slow


def test_quantize_a_folder_inserts_the_export_and_compares_with_pytorch(  # type: ignore[no-untyped-def]
    cli, tiny_dir: Path, tiny_labelled: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tiny-int8.onnx"
    result = cli("quantize", tiny_dir, "--mode", "dynamic", "--data", tiny_labelled, "-o", out, "--json")
    assert result.code == 0, result.output
    steps = json.loads(result.stdout)["result"]["steps"]
    assert [(s["name"], s["inserted"]) for s in steps] == [("convert.hf.onnx", True), ("quantize.dynamic", False)]
    export = steps[0]
    assert export["config"]["attention"] == "eager" and export["config"]["masked_softmax"] is True
    assert export["metrics"]["max_abs_diff"]["logits"] < 1e-4
    assert export["metrics"]["masked_softmax_rewritten"] == 2
    assert export["fidelity"]["top1_agreement"] == 1.0  # labelled data: a classifier
    assert any("exported text-classification (transformers)" in note for note in export["notes"])
    model = onnx.load(str(out), load_external_data=False)
    assert [o.name for o in model.graph.output] == ["logits"]
    assert "compressor.transformers" in {p.key for p in model.metadata_props}

    compared = cli("compare", tiny_dir, out, "--data", tiny_labelled, "--batch", "1", *FAST, "--json")
    assert compared.code == 0, compared.output
    base, candidate = json.loads(compared.stdout)["result"]["models"]
    assert base["format"] == "hf" and base["backend"].startswith("torch")
    assert base["accuracy"] is not None and candidate["accuracy"] is not None
    assert candidate["fidelity"]["samples"] == 12 and candidate["fidelity"]["cosine_mean"] > 0.98


def test_export_of_an_unsupported_task_fails_as_a_pass(cli, tiny_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import assert_clean_error

    result = cli("quantize", tiny_dir, "--task", "text-generation", "-o", tmp_path / "x.onnx")
    assert_clean_error(result, 4, "convert.hf.onnx", "cannot export 'bert' models for text-generation", "fill-mask")
    assert not (tmp_path / "x.onnx").exists()


def test_a_decoder_exports_with_positions_and_its_causal_mask_rewritten(  # type: ignore[no-untyped-def]
    cli, tiny_decoder: Path, tmp_path: Path
) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("hello world\nthe quick brown fox jumps over the lazy dog\n")
    out = tmp_path / "decoder.onnx"
    result = cli("quantize", tiny_decoder, "--mode", "fp16", "--data", texts, "-o", out, "--json")
    assert result.code == 0, result.output
    export = json.loads(result.stdout)["result"]["steps"][0]
    assert any("exported text-generation" in note for note in export["notes"])
    assert export["metrics"]["masked_softmax_rewritten"] == 2  # a [batch, 1, seq, seq] mask: rewritten on p
    assert export["fidelity"]["cosine_min"] > 0.99999  # against PyTorch, padded positions included
    model = onnx.load(str(out), load_external_data=False)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask", "position_ids"]

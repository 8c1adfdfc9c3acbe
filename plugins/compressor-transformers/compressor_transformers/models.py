"""Loading tokenizers and PyTorch models from a folder (heavy imports happen here, on first use)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from compressor.artifacts import TensorSpec
from compressor.errors import ModelLoadError
from compressor_transformers.folder import offline_environment

#: Inputs a text model may take, in the order the exported ONNX graphs list them.
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
#: The outputs Optimum's ONNX configs give each task, primary first (fidelity compares the first output).
TASK_OUTPUTS = {
    "feature-extraction": ("last_hidden_state",),
    "text-classification": ("logits",),
    "token-classification": ("logits",),
    "question-answering": ("start_logits", "end_logits"),
    "fill-mask": ("logits",),
    "text-generation": ("logits",),
}
SENTENCE_OUTPUTS = ("sentence_embedding", "token_embeddings")
#: What Optimum's sentence-transformers export takes.
SENTENCE_INPUTS = ("input_ids", "attention_mask")


def output_names(library: str, task: str) -> tuple[str, ...]:
    return SENTENCE_OUTPUTS if library == "sentence_transformers" else TASK_OUTPUTS[task]


def output_specs(library: str, task: str, config: dict[str, Any]) -> list[TensorSpec]:
    """The outputs' names and shapes (sizes from the config where it states them)."""
    hidden = config.get("hidden_size") or config.get("n_embd") or "hidden"
    labels = len(config["id2label"]) if isinstance(config.get("id2label"), dict) else "labels"
    vocab = config.get("vocab_size") or "vocab"
    last = {
        "sentence_embedding": ("batch", hidden),
        "token_embeddings": ("batch", "sequence", hidden),
        "last_hidden_state": ("batch", "sequence", hidden),
        "start_logits": ("batch", "sequence"),
        "end_logits": ("batch", "sequence"),
    }
    logits = {
        "text-classification": ("batch", labels),
        "token-classification": ("batch", "sequence", labels),
        "fill-mask": ("batch", "sequence", vocab),
        "text-generation": ("batch", "sequence", vocab),
    }
    return [
        TensorSpec(name, last.get(name) or logits.get(task, ("batch",)), "float32")
        for name in output_names(library, task)
    ]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


@functools.lru_cache(maxsize=8)
def load_tokenizer(folder: str) -> Any:
    """The folder's tokenizer (fast when it has one), offline; one clear error when it does not load."""
    offline_environment()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... for broken tokenizer files
        raise ModelLoadError(f"the tokenizer in {folder} cannot be loaded ({first_line(exc)})") from exc


def tokenizer_inputs(tokenizer: Any) -> list[str]:
    """Names of the arrays the tokenizer produces that a text model takes, in graph order."""
    produced = set(getattr(tokenizer, "model_input_names", None) or ("input_ids", "attention_mask"))
    return [name for name in TEXT_INPUTS if name in produced]


def load_torch_model(folder: Path, task: str, library: str, attention: str | None = None) -> Any:
    """The PyTorch model in ``folder`` for ``task``, in eval mode, loaded as Optimum's exporter loads it.

    ``attention``: transformers' attention implementation ("eager", "sdpa"), or None for its default.
    """
    offline_environment()
    from optimum.exporters.tasks import TasksManager

    kwargs: dict[str, Any] = {}
    if attention:
        kwargs["attn_implementation"] = attention
    try:
        model = TasksManager.get_model_from_task(
            task,
            str(folder),
            framework="pt",
            library_name=library,
            local_files_only=True,
            trust_remote_code=False,
            **kwargs,
        )
    except Exception as exc:  # transformers/optimum raise many types for unloadable weights or configs
        raise ModelLoadError(f"{folder.name}: the {task} model cannot be loaded ({first_line(exc)})") from exc
    if task == "text-generation" and hasattr(model, "config"):
        model.config.use_cache = False
    return model.eval()

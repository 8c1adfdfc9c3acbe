"""The Hugging Face folder loader: task inference, specs, and clear errors for folders it cannot use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from compressor.loaders import LoaderOptions, load_model
from tests.conftest import assert_clean_error
from tests.transformers.conftest import copy_folder, edit_config


def test_sentence_transformers_folder_is_a_sentence_encoder(minilm_dir: Path) -> None:
    artifact = load_model(minilm_dir)
    assert artifact.format == "hf"
    assert artifact.extra["task"] == "feature-extraction"
    assert artifact.extra["library"] == "sentence_transformers"
    assert artifact.extra["tokenizer"] == str(minilm_dir.resolve())
    assert [s.name for s in artifact.inputs] == ["input_ids", "attention_mask"]
    assert artifact.outputs[0].describe() == "sentence_embedding: float32[batchx384]"


def test_task_is_inferred_from_the_architecture(tiny_dir: Path) -> None:
    artifact = load_model(tiny_dir)
    assert artifact.extra["architecture"] == "BertForSequenceClassification"
    assert artifact.extra["task"] == "text-classification" and artifact.extra["library"] == "transformers"
    assert [s.name for s in artifact.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert artifact.outputs[0].describe() == "logits: float32[batchx3]"


def test_task_option_overrides_and_shape_fixes_the_sequence(tiny_dir: Path) -> None:
    options = LoaderOptions(task="token-classification", shapes={"input_ids": (1, 64)})
    artifact = load_model(tiny_dir, options)
    assert artifact.extra["task"] == "token-classification"
    assert artifact.inputs[0].shape == ("batch", 64)
    assert artifact.outputs[0].describe() == "logits: float32[batchxsequencex3]"


def test_a_folder_holding_an_onnx_file_is_left_to_the_onnx_loader(tmp_path: Path, tiny_dir: Path) -> None:
    from compressor_transformers.loader import HfLoader

    folder = copy_folder(tiny_dir, tmp_path / "exported")
    assert HfLoader().claims(str(folder))
    (folder / "model.onnx").write_bytes(b"")
    assert not HfLoader().claims(str(folder))


@pytest.mark.parametrize(
    ("change", "code", "fragments"),
    [
        ("no-weights", 3, ("has no weights", "model.safetensors")),
        ("no-tokenizer", 3, ("has no tokenizer", "tokenizer.json")),
        ("pickle-weights", 3, ("pytorch_model.bin", "--trust-pickle")),
        ("custom-code", 3, ("custom model code",)),
        ("no-model-type", 3, ("no 'model_type'",)),
        ("bad-json", 3, ("not valid json",)),
        ("pretraining", 2, ("cannot infer the task", "BertForPreTraining", "--task", "text-classification")),
    ],
)
def test_unusable_folders_fail_with_one_clear_line(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, tiny_dir: Path, change: str, code: int, fragments: tuple[str, ...]
) -> None:
    folder = copy_folder(tiny_dir, tmp_path / change)
    if change == "no-weights":
        (folder / "model.safetensors").unlink()
    elif change == "no-tokenizer":
        for name in ("vocab.txt", "tokenizer.json"):
            (folder / name).unlink()
    elif change == "pickle-weights":
        (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    elif change == "custom-code":
        edit_config(folder, auto_map={"AutoModel": "modeling_x.XModel"})
    elif change == "no-model-type":
        config = json.loads((folder / "config.json").read_text())
        del config["model_type"]
        (folder / "config.json").write_text(json.dumps(config))
    elif change == "bad-json":
        (folder / "config.json").write_text("{not json")
    elif change == "pretraining":
        edit_config(folder, architectures=["BertForPreTraining"])
    assert_clean_error(cli("inspect", folder), code, *fragments)


def test_unknown_task_lists_the_valid_ones(cli, tiny_dir: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("inspect", tiny_dir, "--task", "translation")
    assert_clean_error(result, 2, "unknown task 'translation'", "feature-extraction", "text-generation")


def test_a_task_given_for_a_folder_that_cannot_say_it_loads(cli, tmp_path: Path, tiny_dir: Path) -> None:  # type: ignore[no-untyped-def]
    folder = copy_folder(tiny_dir, tmp_path / "pretraining")
    edit_config(folder, architectures=["BertForPreTraining"])
    result = cli("inspect", folder, "--task", "fill-mask", "--json")
    assert result.code == 0, result.output
    described = json.loads(result.stdout)["result"]
    assert described["extra"]["task"] == "fill-mask"
    assert described["stats"]["params"] == 999_171  # read from the safetensors header


def test_registering_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "import compressor_transformers.plugin as p\n"
        "for hook in (p.register_loaders, p.register_runners, p.register_passes, p.register_datasets):\n"
        "    hook(lambda obj: None)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'optimum', 'sentence_transformers', 'onnxruntime')"
        " if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"

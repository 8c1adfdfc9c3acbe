"""The loader of Hugging Face model folders (config.json, weights, tokenizer), fully offline."""

from __future__ import annotations

from pathlib import Path

from compressor.artifacts import Artifact, Dim, TensorSpec, read_sidecar
from compressor.errors import UsageError
from compressor.loaders import Loader, LoaderOptions, sidecar_format
from compressor_transformers.folder import FORMAT, is_model_folder, read_folder
from compressor_transformers.models import SENTENCE_INPUTS, load_tokenizer, output_specs, tokenizer_inputs


class HfLoader(Loader):
    name = "transformers"
    summary = "Hugging Face model folders (config.json, weights, tokenizer), offline; --task when the config cannot say"
    formats = (FORMAT,)
    safety = (
        "safetensors weights and tokenizer files: data only; pytorch_model.bin (pickle-based, read with "
        "weights_only=True) needs --trust-pickle; folders needing custom code (auto_map) are refused"
    )

    def claims(self, ref: str) -> bool:
        path = Path(ref).expanduser()
        return sidecar_format(path) == FORMAT or is_model_folder(path)

    def load(self, ref: str, options: LoaderOptions) -> Artifact:
        path = Path(ref).expanduser()
        lineage = []
        described = read_sidecar(path) if path.is_dir() else None
        if described is not None and described.format == FORMAT:
            path, lineage = described.path, described.lineage
        folder = read_folder(path, options.task, options.trust_pickle)
        tokenizer = load_tokenizer(str(folder.path))
        names = tokenizer_inputs(tokenizer)
        if folder.library == "sentence_transformers":  # its ONNX export takes no token_type_ids (all zeros)
            names = [n for n in names if n in SENTENCE_INPUTS]
        if folder.task == "text-generation":  # decoder exports take positions (the text reader makes them), no segments
            names = [n for n in names if n != "token_type_ids"] + ["position_ids"]
        return Artifact(
            path=folder.path,
            format=FORMAT,
            inputs=[TensorSpec(name, _shape(name, options.shapes), "int64") for name in names],
            outputs=output_specs(folder.library, folder.task, folder.config),
            source=str(path),
            lineage=lineage,
            extra=folder.extra(),
        )


def _shape(name: str, shapes: dict[str, tuple[int, ...]]) -> tuple[Dim, ...]:
    """(batch, sequence), with the sequence length fixed when ``--shape NAME=BxL`` gives it."""
    given = shapes.get(name)
    if given is None:
        return ("batch", "sequence")
    if len(given) != 2:
        raise UsageError(f"--shape {name} has {len(given)} dims; text inputs are 2-D (batch x sequence), e.g. 1x128")
    return ("batch", int(given[1]))

"""The ``inc-woq`` artifact: a weight-only quantized torch model stored packed, rebuilt without pickle.

```
model/
  artifact.json        format "inc-woq"; the torch.* manifest of the model it came from (factory, pruning history)
                       and inc.* keys naming the two files below
  weights.safetensors  the whole state dict: INT4/INT8 weights packed into int32 words (qweight), FP16 scales,
                       packed zero points (qzeros), float biases and every layer that was not quantized
  woq.json             how each quantized layer was built: in/out features, bits, group size, zero points, g_idx,
                       INC's packing options; wrappers AWQ inserted; the algorithm and the INC version
```

Loading calls the factory (replaying a pruning history when there is one), replaces each recorded ``nn.Linear`` by
INC's ``INCWeightOnlyLinear`` with the recorded options, and loads the state dict strictly with ``assign=True`` (the
stored dtypes are kept: FP16 scales stay FP16). Nothing is unpickled; the factory file is code, exactly as for a
factory-kind torch folder.

**How it runs.** ``INCWeightOnlyLinear.forward`` unpacks the weight to float on its first call and keeps it: the file
is small, but memory and latency after the first call are those of the float model (plus the packed copy). The
benefit is on disk and in transfer; use ``quantize.int4`` on the ONNX export for an INT4 kernel (MatMulNBits).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from compressor_torch import models

from compressor.artifacts import Artifact, PassRecord, write_sidecar
from compressor.errors import ModelLoadError
from compressor_inc import inc

FORMAT = "inc-woq"
WEIGHTS_FILE = "weights.safetensors"
LAYERS_FILE = "woq.json"
STORE_VERSION = 1


def describe_layer(layer: Any) -> dict[str, Any]:
    """The constructor options of an ``INCWeightOnlyLinear``, read from the built layer."""
    import torch

    names = {torch.int8: "int8", torch.int16: "int16", torch.int32: "int32", torch.int64: "int64"}
    floats = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32"}
    return {
        "in_features": int(layer.in_features),
        "out_features": int(layer.out_features),
        "dtype": str(layer.dtype),
        "bits": int(layer.bits),
        "group_size": int(layer.group_size),
        "zp": getattr(layer, "qzeros", None) is not None,
        "bias": getattr(layer, "bias", None) is not None,
        "g_idx": isinstance(getattr(layer, "g_idx", None), torch.Tensor) and "g_idx" in layer._buffers,
        "use_optimum_format": bool(layer.use_optimum_format),
        "compression_dim": int(layer.compression_dim),
        "compression_dtype": names[layer.compression_dtype],
        "scale_dtype": floats.get(layer.float_type, "float32"),
    }


def layer_map(module: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(quantized layers by name, wrappers by name) of an INC weight-only model."""
    from neural_compressor.torch.algorithms.weight_only.modules import INCWeightOnlyLinear, MulLinear

    layers, wrappers = {}, {}
    for name, sub in module.named_modules():
        if isinstance(sub, INCWeightOnlyLinear):
            layers[name] = describe_layer(sub)
        elif isinstance(sub, MulLinear):
            wrappers[name] = "MulLinear"
    return layers, wrappers


def save(
    artifact: Artifact,
    module: Any,
    folder: Path,
    record: PassRecord,
    settings: dict[str, Any],
    outputs: list[Any],
    inputs: list[Any],
) -> Artifact:
    """Write ``module`` (INC weight-only) into ``folder`` and describe it as an ``inc-woq`` artifact."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    layers, wrappers = layer_map(module)
    details = {
        "format": FORMAT,
        "version": STORE_VERSION,
        "neural_compressor": inc.version(),
        **settings,
        "layers": layers,
        "wrappers": wrappers,
    }
    (folder / LAYERS_FILE).write_text(json.dumps(details, indent=1) + "\n")
    data = replace(models.manifest(artifact), weights=None, sparse={})
    extra = models.with_manifest(artifact.extra, data.to_extra(folder))
    extra.update({"inc.weights": WEIGHTS_FILE, "inc.layers": LAYERS_FILE, "inc.bits": settings.get("bits")})
    derived = artifact.derive(folder.resolve(), record, fmt=FORMAT, inputs=inputs, outputs=outputs, extra=extra)
    write_sidecar(derived, folder.resolve())
    return derived


def read_details(artifact: Artifact) -> dict[str, Any]:
    path = models.resolve(artifact, str(artifact.extra.get("inc.layers", LAYERS_FILE)))
    try:
        details = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{artifact.path}: cannot read {path.name} ({inc.first_line(exc)})") from exc
    if not isinstance(details, dict) or details.get("format") != FORMAT or not isinstance(details.get("layers"), dict):
        raise ModelLoadError(f"{artifact.path}: {path.name} does not describe an inc-woq model")
    if int(details.get("version", 0)) > STORE_VERSION:
        raise ModelLoadError(
            f"{artifact.path}: {path.name} is version {details.get('version')}; this compressor-inc reads "
            f"{STORE_VERSION}",
            hint="upgrade compressor-inc",
        )
    return details


def open_module(artifact: Artifact) -> Any:
    """Rebuild the quantized model: factory, INC weight-only layers, packed state dict (strict, dtypes kept)."""
    import torch

    data = models.manifest(artifact)
    if data.kind != models.FACTORY:
        raise ModelLoadError(f"{artifact.path}: an inc-woq model is rebuilt from a factory; it names a {data.kind}")
    details = read_details(artifact)
    module = models.factory_module(artifact, replace(data, weights=None))
    with inc.captured():
        from neural_compressor.torch.algorithms.weight_only.modules import INCWeightOnlyLinear, MulLinear

        for name in sorted(details.get("wrappers", {}), key=len):
            original = _submodule(artifact, module, name)
            _set(module, name, MulLinear(original))
        for name, spec in details["layers"].items():
            original = _submodule(artifact, module, name)
            if (getattr(original, "in_features", None), getattr(original, "out_features", None)) != (
                spec["in_features"],
                spec["out_features"],
            ):
                raise ModelLoadError(
                    f"{artifact.path}: layer {name} of the factory's model is {type(original).__name__} "
                    f"({getattr(original, 'in_features', '?')} -> {getattr(original, 'out_features', '?')}), the "
                    f"stored one {spec['in_features']} -> {spec['out_features']}",
                    hint="the factory's code changed since the model was quantized",
                )
            _set(module, name, _woq_layer(INCWeightOnlyLinear, spec))
    weights = models.resolve(artifact, str(artifact.extra.get("inc.weights", WEIGHTS_FILE)))
    state = models.read_state_dict(weights)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ModelLoadError(
            f"{artifact.path}: {weights.name} does not match the rebuilt model (missing: {missing[:4]}; "
            f"unexpected: {unexpected[:4]})"
        )
    module.load_state_dict(state, strict=True, assign=True)
    return module.eval().to(torch.device("cpu"))


def _woq_layer(cls: Any, spec: dict[str, Any]) -> Any:
    import torch

    dtypes = {"int8": torch.int8, "int16": torch.int16, "int32": torch.int32, "int64": torch.int64}
    floats = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    return cls(
        spec["in_features"],
        spec["out_features"],
        dtype=spec["dtype"],
        bits=spec["bits"],
        group_size=spec["group_size"],
        zp=spec["zp"],
        bias=spec["bias"],
        scale_dtype=floats[spec["scale_dtype"]],
        compression_dtype=dtypes[spec["compression_dtype"]],
        compression_dim=spec["compression_dim"],
        g_idx=spec["g_idx"],
        device="cpu",
        use_optimum_format=spec["use_optimum_format"],
    )


def _submodule(artifact: Artifact, module: Any, name: str) -> Any:
    try:
        return module.get_submodule(name)
    except AttributeError as exc:
        raise ModelLoadError(
            f"{artifact.path}: the factory's model has no layer {name}",
            hint="the factory's code changed since the model was quantized",
        ) from exc


def _set(module: Any, name: str, value: Any) -> None:
    owner_name, _, attr = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    setattr(owner, attr, value)


def packed_stats(module: Any) -> dict[str, Any]:
    """Parameters counted as weights (packed words times values per word) and the quantized layers."""
    from neural_compressor.torch.algorithms.weight_only.modules import INCWeightOnlyLinear

    params = 0
    layers = 0
    bits = set()
    for sub in module.modules():
        own = list(sub._parameters.values()) + list(sub._buffers.values())
        if isinstance(sub, INCWeightOnlyLinear):
            layers += 1
            bits.add(int(sub.bits))
            params += sub.in_features * sub.out_features
            params += sum(int(t.numel()) for n, t in sub._buffers.items() if t is not None and n not in ("qweight",))
        else:
            params += sum(int(t.numel()) for t in own if t is not None)
    return {"params": params, "weight_only_layers": layers, "weight_bits": sorted(bits)}

"""Torch models behind ``torch`` artifacts: how each kind is loaded, described and saved.

An artifact of format ``torch`` describes its model with flat ``torch.*`` keys in ``artifact.extra`` (so in the
folder's ``artifact.json``), read and written through :class:`Manifest`. ``torch.kind`` says how to rebuild it:

``factory``
    ``module.py:factory`` (your code) plus a state dict (``.safetensors``, or ``.pt`` read with
    ``weights_only=True``). A structurally pruned model keeps this form: ``torch.json`` beside the weights holds
    torch-pruning's pruning history (layer name, out/in channels, channel indices), replayed on a fresh factory
    model before its weights are loaded, so the pruned architecture is rebuilt without unpickling anything.
``torchscript``
    a TorchScript archive (``torch.jit.load``: TorchScript code run by its own interpreter, no Python pickle).
``exported``
    a ``torch.export`` program (``.pt2``); loaded only when every payload in it is a raw tensor (see
    :func:`pt2_pickled_entries`), else only with ``--trust-pickle``.
``pickle``
    a whole pickled module (``torch.save(module)``); loading runs pickle, so only with ``--trust-pickle``.

Paths are absolute for the user's own files (the factory, source weights) and relative to the artifact folder for
files a pass wrote. ``torch.origin`` names the model as it was before any pass (the default teacher of ``distill``).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifacts import Artifact, PassRecord, TensorSpec, write_sidecar
from compressor.data import Dataset
from compressor.errors import ModelLoadError, PassError, UsageError
from compressor.measure.inputs import make_inputs
from compressor.pyref import call_reference

MANIFEST = "torch"
FACTORY, TORCHSCRIPT, EXPORTED, PICKLE = "factory", "torchscript", "exported", "pickle"
KINDS = (FACTORY, TORCHSCRIPT, EXPORTED, PICKLE)
WEIGHTS_FILE = "weights.safetensors"
FILE_NAMES = {TORCHSCRIPT: "model.ts", EXPORTED: "model.pt2", PICKLE: "model.pt"}
#: Batch of the example inputs used for tracing and export (batch 1 specializes a dynamic batch away).
EXAMPLE_BATCH = 2
#: Files this process was told to trust (``--trust-pickle``) or wrote itself from a trusted model.
_TRUSTED: set[str] = set()
PICKLE_HINT = (
    "rerun with --trust-pickle if you trust where the file came from, or save a state dict "
    "(torch.save(model.state_dict(), ...)) and load it as module.py:factory --weights FILE"
)


def trust(path: Path) -> None:
    _TRUSTED.add(str(Path(path).resolve()))


def is_trusted(path: Path) -> bool:
    return str(Path(path).resolve()) in _TRUSTED


# --- manifests -------------------------------------------------------------------------------------------


@dataclass
class Manifest:
    """How to rebuild a torch artifact's model; flat ``torch.*`` keys in ``artifact.extra``.

    The bulky parts (the pruning history, which weights are sparse) live in ``torch.json`` beside the weights so
    ``compressor inspect`` stays readable.
    """

    kind: str
    factory: str | None = None
    weights: str | None = None
    file: str | None = None
    #: The model before any pass (the default teacher): a reference any loader reads, and its weights.
    origin: str | None = None
    origin_weights: str | None = None
    #: torch-pruning's pruning history: [layer name, out-channel pruning?, channel indices], in order.
    structure: list[list[Any]] = field(default_factory=list)
    #: Weights a pruning pass sparsified, by parameter name -> pattern ("unstructured", "2:4").
    sparse: dict[str, str] = field(default_factory=dict)
    #: Module attributes structured pruning changed (attention head counts), by dotted name, set after the replay.
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_extra(self, folder: Path | None) -> dict[str, Any]:
        """The ``torch.*`` extra keys; writes ``torch.json`` into ``folder`` when there are details to keep."""
        extra = {f"{MANIFEST}.{k}": v for k in FLAT_KEYS if (v := getattr(self, k)) is not None}
        if self.structure or self.sparse or self.attributes:
            if folder is None:
                raise ValueError("a pruned torch model needs a folder for its details")
            details = {
                "structure": self.structure,
                "attributes": self.attributes,
                "sparse": self.sparse,
                "torch_pruning": _tp_version(),
            }
            (folder / DETAILS_FILE).write_text(json.dumps(details) + "\n")
            extra[f"{MANIFEST}.details"] = DETAILS_FILE
        return extra


FLAT_KEYS = ("kind", "factory", "weights", "file", "origin", "origin_weights")
DETAILS_FILE = "torch.json"


def _tp_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch-pruning")
    except PackageNotFoundError:
        return "unknown"


def manifest(artifact: Artifact) -> Manifest:
    """The artifact's manifest (details read from its folder's ``torch.json``)."""
    extra = artifact.extra
    kind = extra.get(f"{MANIFEST}.kind")
    if kind not in KINDS:
        raise ModelLoadError(
            f"{artifact.path} is a torch artifact without a valid '{MANIFEST}.kind' (one of {', '.join(KINDS)})"
        )
    found = Manifest(kind, **{k: extra.get(f"{MANIFEST}.{k}") for k in FLAT_KEYS if k != "kind"})
    details = extra.get(f"{MANIFEST}.details")
    if details:
        path = resolve(artifact, details)
        try:
            data = json.loads(path.read_text())
            found.structure = list(data.get("structure", []))
            found.attributes = dict(data.get("attributes", {}))
            found.sparse = dict(data.get("sparse", {}))
        except (OSError, ValueError, AttributeError) as exc:
            raise ModelLoadError(f"{artifact.path}: cannot read {details} ({_first_line(exc)})") from exc
    return found


def with_manifest(extra: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``extra`` with every ``torch.*`` key replaced by ``new``'s."""
    kept = {k: v for k, v in extra.items() if not k.startswith(f"{MANIFEST}.")}
    return {**kept, **new}


def resolve(artifact: Artifact, name: str) -> Path:
    """A manifest path: absolute as written, or relative to the artifact's folder."""
    path = Path(name)
    if path.is_absolute():
        return path
    base = artifact.path if artifact.path.is_dir() else artifact.path.parent
    return base / path


def is_wildcard(spec: TensorSpec) -> bool:
    """An input whose shape is not known yet (a factory model loaded without --shape)."""
    return spec.shape == ()


# --- building modules ------------------------------------------------------------------------------------


def build_factory(ref: str) -> Any:
    """Call ``module.py:factory`` and check it returned an ``nn.Module``."""
    import torch

    module = call_reference(ref, ModelLoadError)
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(
            f"{ref} returned {type(module).__name__}, not a torch.nn.Module",
            hint="the factory must return the model, e.g. `def build_model(): return MyNet()`",
        )
    return module


def read_state_dict(path: Path) -> dict[str, Any]:
    """A state dict from ``.safetensors`` or a ``.pt``/``.pth`` file read with ``weights_only=True``."""
    import torch

    if not path.is_file():
        raise ModelLoadError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise ModelLoadError(f"{path.name} is not a readable safetensors file ({_first_line(exc)})") from exc
    try:
        with _quiet():
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"{path.name} is not a state dict readable with weights_only=True ({_first_line(exc)})",
            hint="--weights takes a state dict (.safetensors or torch.save(model.state_dict())); a whole "
            "pickled module is a model of its own: load it directly with --trust-pickle",
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path.name} does not hold a state dict (a mapping of names to tensors)")
    return state


def _listed(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def load_weights(module: Any, path: Path, described_as: str) -> None:
    """Load a state dict strictly; a mismatch names the missing, unexpected and mis-shaped keys."""
    state = read_state_dict(path)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = sorted(k for k in state if k not in expected)
    shapes = [
        f"{k} file {list(state[k].shape)} vs model {list(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {_listed(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listed(unexpected)}")
        if shapes:
            parts.append(f"shape mismatch: {_listed(shapes, 3)}")
        raise ModelLoadError(
            f"weights {path.name} do not match the model built by {described_as}: " + "; ".join(parts),
            hint="the weights must be a state dict saved from this architecture",
        )
    module.load_state_dict(state, strict=True)


def input_names(module: Any) -> list[str]:
    """Names of the required positional inputs of ``module.forward``."""
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        with contextlib.suppress(Exception):
            return [a.name for a in module.forward.schema.arguments[1:] if not a.has_default_value()]
        return []
    try:
        signature = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in signature.parameters.values() if p.kind in kinds and p.default is inspect.Parameter.empty]


def input_specs(names: list[str], shapes: dict[str, tuple[int, ...]], dtypes: dict[str, str]) -> list[TensorSpec]:
    """Specs from --shape/--dtype; an input without --shape is a wildcard (rank and shape from the data)."""
    if not names:
        names = list(shapes) or ["input"]
    specs = []
    for name in names:
        if name in shapes:
            given = shapes[name]
            specs.append(TensorSpec(name, ("batch", *given[1:]), dtypes.get(name, "float32")))
        else:
            specs.append(TensorSpec(name, (), dtypes.get(name, "unknown")))
    return specs


def flatten_outputs(value: Any) -> list[Any]:
    """Tensors of a model output: a tensor, or tuples/lists/dicts of them (None entries skipped)."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in flatten_outputs(item)]
    return []


def output_specs(outputs: list[Any]) -> list[TensorSpec]:
    names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    return [
        TensorSpec(name, ("batch", *tuple(t.shape[1:])) if t.dim() else (), str(t.dtype).removeprefix("torch."))
        for name, t in zip(names, outputs, strict=True)
    ]


def concrete_specs(artifact: Artifact, dataset: Dataset | None) -> list[TensorSpec]:
    """The artifact's input specs with wildcards filled from the dataset (first axis: batch)."""
    specs = list(artifact.inputs)
    if not any(is_wildcard(s) for s in specs):
        return specs
    if dataset is None:
        missing = [s.name for s in specs if is_wildcard(s)]
        raise UsageError(
            f"the input shapes of {artifact.source or artifact.path.name} are unknown ({', '.join(missing)})",
            hint=f"give --shape, e.g. --shape {missing[0]}=1x3x224x224, or --data FILE.npz",
        )
    matched = dataset.matched_to(specs)
    return [
        TensorSpec(s.name, ("batch", *matched.inputs[s.name].shape[1:]), str(matched.inputs[s.name].dtype))
        if is_wildcard(s)
        else s
        for s in specs
    ]


def example_feeds(
    specs: list[TensorSpec],
    dataset: Dataset | None,
    shapes: dict[str, tuple[int, ...]] | None = None,
    batch: int = EXAMPLE_BATCH,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``batch`` samples of the dataset (repeated when it is smaller), else generated inputs."""
    if dataset is not None:
        matched = dataset.matched_to(specs)
        reps = -(-batch // len(matched))
        return {k: np.concatenate([v] * reps)[:batch] for k, v in matched.inputs.items()}
    return make_inputs(specs, batch=batch, shapes=shapes or {}, seed=seed)


def to_tensors(specs: list[TensorSpec], feeds: dict[str, np.ndarray], device: Any = "cpu") -> list[Any]:
    import torch

    if len(specs) == 1 and len(feeds) == 1 and specs[0].name not in feeds:
        feeds = {specs[0].name: next(iter(feeds.values()))}
    missing = [s.name for s in specs if s.name not in feeds]
    if missing:
        raise UsageError(f"no inputs given for {missing}; the model takes {[s.name for s in specs]}")
    tensors = []
    for spec in specs:
        array = np.ascontiguousarray(feeds[spec.name])
        if array.ndim <= 1 and is_wildcard(spec):  # generated from a spec without a shape
            raise UsageError(
                f"the shape of input '{spec.name}' is unknown",
                hint=f"give --shape {spec.name}=1x... or --data FILE.npz",
            )
        tensors.append(torch.from_numpy(array).to(device))
    return tensors


# --- loading by kind --------------------------------------------------------------------------------------


@dataclass
class Loaded:
    """A model as torch holds it: the module to run or train, and the program for exported models."""

    kind: str
    module: Any
    program: Any = None


def open_model(artifact: Artifact) -> Loaded:
    """Rebuild the model an artifact describes (nothing is unpickled unless it was trusted)."""
    data = manifest(artifact)
    kind = data.kind
    if kind == FACTORY:
        return Loaded(kind, factory_module(artifact, data))
    if not data.file:
        raise ModelLoadError(f"{artifact.path}: a {kind} torch artifact must name its model file")
    path = resolve(artifact, data.file)
    if not path.is_file():
        raise ModelLoadError(f"{artifact.path}: model file {path} is missing")
    if kind == TORCHSCRIPT:
        return Loaded(kind, load_torchscript(path))
    if kind == EXPORTED:
        program = load_exported(path, trusted=is_trusted(path))
        return Loaded(kind, program.module(), program)
    if not is_trusted(path):
        raise ModelLoadError(
            f"{path.name} is a pickled module: loading it runs pickle, which can execute arbitrary code",
            hint=PICKLE_HINT,
        )
    return Loaded(kind, load_pickled_module(path))


def factory_module(artifact: Artifact, data: Manifest) -> Any:
    if not data.factory:
        raise ModelLoadError(f"{artifact.path}: a factory torch artifact must name its factory (module.py:name)")
    module = build_factory(data.factory)
    if data.structure:
        replay_structure(module, data.structure, artifact.inputs)
    for dotted, value in data.attributes.items():
        owner_name, _, attr = dotted.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        if type(getattr(owner, attr, None)) is not type(value):
            raise ModelLoadError(f"{artifact.path}: cannot restore {dotted} = {value!r} on the factory's model")
        setattr(owner, attr, value)
    if data.weights:
        load_weights(module, resolve(artifact, data.weights), data.factory)
    return module.eval()


def replay_structure(module: Any, history: list[Any], specs: list[TensorSpec]) -> None:
    """Rebuild a pruned architecture: replay torch-pruning's history on a fresh factory model."""
    import torch_pruning as tp

    if any(is_wildcard(s) for s in specs):
        raise ModelLoadError("a pruned torch artifact must record its input shapes (artifact.json inputs)")
    module.eval()
    example = tuple(to_tensors(specs, make_inputs(specs, batch=EXAMPLE_BATCH)))
    try:
        graph = tp.DependencyGraph().build_dependency(module, example_inputs=example)
        graph.load_pruning_history([(name, bool(out), list(idxs)) for name, out, idxs in history])
    except Exception as exc:
        raise ModelLoadError(
            f"cannot rebuild the pruned architecture from its pruning history ({type(exc).__name__}: "
            f"{_first_line(exc)})",
            hint="the factory's code changed since the model was pruned, or torch-pruning's version differs",
        ) from exc


#: TorchScript ops that touch the file system (torch 2.13's op registry, every schema taking a file name):
#: ``aten::save`` writes a file, ``aten::from_file`` reads one (and with ``shared=True`` writes through to
#: it), ``debugprims::load_tensor`` reads one. TorchScript code can call them, in ``forward`` or in a
#: ``__setstate__`` that ``torch.jit.load`` itself runs.
TORCHSCRIPT_FILE_OPS = frozenset({"save", "from_file", "load_tensor"})


def torchscript_file_ops(path: Path) -> list[str]:
    """Where the TorchScript code in the archive at ``path`` names a file-system op (empty: it names none).

    The archive's ``code/`` files are the program's source, read as Python tokens: a name (or a string, for
    ``getattr``) equal to one of :data:`TORCHSCRIPT_FILE_OPS` anywhere in it counts, however it is spelled
    (``torch.save``, ``ops.aten.save``, split across lines). Code that does not tokenize counts as well.
    """
    import tokenize

    found = []
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if "/code/" not in f"/{name}" or not name.endswith(".py"):
                continue
            text = archive.read(name).decode("utf-8", errors="replace")
            try:
                tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
            except (tokenize.TokenError, SyntaxError):
                found.append(f"{name} (does not tokenize)")
                continue
            for token in tokens:
                value = token.string.strip("'\"") if token.type == tokenize.STRING else token.string
                if token.type in (tokenize.NAME, tokenize.STRING) and value in TORCHSCRIPT_FILE_OPS:
                    found.append(f"{value} in {name.rpartition('/code/')[2] or name} line {token.start[0]}")
    return found


def load_torchscript(path: Path) -> Any:
    import torch

    if not is_trusted(path) and (risky := torchscript_file_ops(path)):
        raise ModelLoadError(
            f"{path.name} is TorchScript whose code calls file-system ops ({_listed(risky, 3)}): loading or "
            "running it can read or write files, so it is refused without --trust-pickle",
            hint="rerun with --trust-pickle if you trust where the file came from",
        )
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:
        raise ModelLoadError(f"{path.name} is not a loadable TorchScript archive ({_first_line(exc)})") from exc


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip with a ``code/`` folder (``torch.save`` archives have none)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name or name.endswith("constants.pkl") for name in archive.namelist())


#: Entries of a ``torch.export.save`` archive that hold only JSON or raw tensor bytes.
_PT2_DATA = re.compile(
    r"^[^/]+/(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|version"
    r"|models/[^/]+\.json|data/weights/[^/]+_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/[^/]+_constants_config\.json|data/constants/tensor_\d+|data/sample_inputs/[^/]+\.pt"
    r"|extra/[^/]+)$"
)


def pt2_pickled_entries(path: Path) -> list[str]:
    """Entries of a .pt2 archive whose loading would run pickle (empty when loading reads data only).

    ``torch.export.load`` unpickles weights and constants marked ``use_pickle``, custom and opaque objects, legacy
    ``.pt`` weight files, and falls back to ``weights_only=False`` for sample inputs it cannot read safely.
    Everything else in the archive is JSON and raw tensor bytes.
    """
    import torch

    risky = []
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if not _PT2_DATA.match(name):
                risky.append(name)
            elif name.endswith(("_weights_config.json", "_constants_config.json")):
                config = json.loads(archive.read(name)).get("config", {})
                for key, meta in config.items():
                    path_name = str(meta.get("path_name", ""))
                    if meta.get("use_pickle") or not path_name.startswith(("weight_", "tensor_")):
                        risky.append(f"{name}:{key}")
            elif "/data/sample_inputs/" in name:
                try:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                except Exception:
                    risky.append(name)
    return risky


def pt2_file_ops(path: Path) -> list[str]:
    """Nodes of a .pt2 archive's graphs whose target is a file-system op (:data:`TORCHSCRIPT_FILE_OPS`)."""
    found: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            target = value.get("target")
            if isinstance(target, str) and TORCHSCRIPT_FILE_OPS & set(re.split(r"[.:]+", target)):
                found.append(f"{target} in {where}")
            for item in value.values():
                walk(item, where)
        elif isinstance(value, list):
            for item in value:
                walk(item, where)

    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if re.match(r"^[^/]+/models/[^/]+\.json$", name):
                try:
                    walk(json.loads(archive.read(name)), name.rpartition("/")[2])
                except ValueError:
                    found.append(f"{name} (not JSON)")
    return found


def load_exported(path: Path, trusted: bool) -> Any:
    import torch

    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path.name} is not a torch.export archive (not a zip file)")
    risky = pt2_pickled_entries(path)
    if risky and not trusted:
        raise ModelLoadError(
            f"{path.name} holds pickled entries ({_listed(risky, 3)}): loading it runs pickle, which can execute "
            "arbitrary code",
            hint="rerun with --trust-pickle if you trust where the file came from",
        )
    file_ops = pt2_file_ops(path)
    if file_ops and not trusted:
        raise ModelLoadError(
            f"{path.name} is a program calling file-system ops ({_listed(file_ops, 3)}): running it can read or "
            "write files, so it is refused without --trust-pickle",
            hint="rerun with --trust-pickle if you trust where the file came from",
        )
    try:
        with _quiet():
            return torch.export.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{path.name} is not a loadable torch.export program ({_first_line(exc)})") from exc


def load_pickled_module(path: Path) -> Any:
    import torch

    try:
        module = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelLoadError(
            f"unpickling {path.name} failed ({type(exc).__name__}: {_first_line(exc)})",
            hint="a pickled module needs its class importable (run from the folder that defines it)",
        ) from exc
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"{path.name} holds a {type(module).__name__}, not a torch.nn.Module")
    return module.eval()


def exported_specs(program: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output specs of an exported program (symbolic dims become names)."""
    signature = program.graph_signature
    values = {n.name: n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"}

    def spec(name: str, value: Any) -> TensorSpec:
        if value is None or not hasattr(value, "shape"):
            return TensorSpec(name, (), "unknown")
        dims = tuple(d if isinstance(d, int) else ("batch" if i == 0 else str(d)) for i, d in enumerate(value.shape))
        return TensorSpec(name, dims, str(value.dtype).removeprefix("torch."))

    inputs = [spec(name, values.get(name)) for name in signature.user_inputs]
    produced = {n.name: n.meta.get("val") for n in program.graph.nodes}
    outs = [spec(name, produced.get(name)) for name in signature.user_outputs]
    names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
    return inputs, [TensorSpec(n, s.shape, s.dtype) for n, s in zip(names, outs, strict=True)]


# --- saving ------------------------------------------------------------------------------------------------


def save_model(loaded: Loaded, data: Manifest, folder: Path) -> Manifest:
    """Write ``loaded`` into ``folder`` in its kind; returns ``data`` pointing at the written files."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    if loaded.kind == FACTORY:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().clone().contiguous() for k, v in loaded.module.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE))
        return replace(data, weights=WEIGHTS_FILE)
    target = folder / FILE_NAMES[loaded.kind]
    if loaded.kind == TORCHSCRIPT:
        torch.jit.save(loaded.module, str(target))
        trust(target)  # written from a module this process loaded: checked, or trusted by the user
    elif loaded.kind == EXPORTED:
        with _quiet():
            torch.export.save(loaded.program, str(target))
    else:
        torch.save(loaded.module, str(target))
        trust(target)
    return replace(data, file=target.name)


def derive_torch(
    artifact: Artifact,
    folder: Path,
    record: PassRecord,
    data: Manifest,
    inputs: list[TensorSpec] | None = None,
    outputs: list[TensorSpec] | None = None,
) -> Artifact:
    """The output artifact of a torch pass: ``folder`` (model files, ``torch.json``, ``artifact.json``)."""
    folder = folder.resolve()
    changes: dict[str, Any] = {"extra": with_manifest(artifact.extra, data.to_extra(folder))}
    if inputs is not None:
        changes["inputs"] = inputs
    if outputs is not None:
        changes["outputs"] = outputs
    derived = artifact.derive(folder, record, fmt="torch", **changes)
    write_sidecar(derived, folder)
    return derived


def module_of(artifact: Artifact, pass_name: str, why: str) -> Loaded:
    """The model as a trainable/prunable ``nn.Module``, or a clear PassError for kinds that are not."""
    loaded = open_model(artifact)
    if loaded.kind in (TORCHSCRIPT, EXPORTED):
        raise PassError(
            pass_name,
            f"{why} needs an nn.Module; {artifact.path.name} is a {loaded.kind} model",
            hint="load the model as module.py:factory --weights WEIGHTS (or a pickled module with --trust-pickle)",
        )
    return loaded


# --- helpers ---------------------------------------------------------------------------------------------


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def first_line(exc: BaseException) -> str:
    return _first_line(exc)


@contextlib.contextmanager
def _quiet() -> Any:
    import logging
    import warnings

    loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "torch.export", "onnxscript", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


quiet = _quiet


def device_of(name: str) -> Any:
    import torch

    from compressor.errors import MissingDependencyError

    if name == "cuda":
        if not torch.cuda.is_available():
            raise MissingDependencyError(
                "device 'cuda' needs a CUDA build of torch and an NVIDIA GPU; this torch sees none",
                hint="use --device cpu",
            )
        return torch.device("cuda")
    if name != "cpu":
        raise UsageError(f"the torch runner runs on cpu or cuda, not '{name}'")
    return torch.device("cpu")

"""Loaders for scikit-learn (skops, joblib/pickle), XGBoost (JSON/UBJ) and LightGBM (text) models.

``claims`` looks only at a suffix, the first bytes of the file, or a folder's sidecar. Each loader reads
the model once to learn its inputs and outputs; the trust the user granted (``--trust-pickle``) is
recorded in the artifact so the runner and passes read the file back with exactly that trust, never more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.artifacts import Artifact, PassRecord, read_sidecar
from compressor.errors import ModelLoadError
from compressor.loaders import Loader, LoaderOptions, sidecar_format
from compressor_sklearn.native import (
    FORMAT_LIGHTGBM,
    FORMAT_SKLEARN,
    FORMAT_XGBOOST,
    PICKLE_SUFFIXES,
    SKOPS_SUFFIXES,
    describe,
    input_spec,
    read_lightgbm,
    read_pickle,
    read_skops,
    read_xgboost,
    untrusted_types,
)

XGBOOST_JSON_START = b'{"learner"'
LIGHTGBM_SUFFIXES = (".txt", ".lgb", ".lgbm", ".model")
PEEK_BYTES = 64


def _peek(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(PEEK_BYTES).lstrip()
    except OSError:
        return b""


def _described_file(path: Path, fmt: str) -> Path | None:
    """The model file a compressor output folder of format ``fmt`` holds, or None."""
    if sidecar_format(path) != fmt:
        return None
    described = read_sidecar(path)
    return described.path if described else None


def _resolve(ref: str, fmt: str) -> tuple[Path, list[PassRecord]]:
    """The model file ``ref`` names (itself, or the file a compressor output folder holds) and its lineage."""
    path = Path(ref)
    lineage: list[PassRecord] = []
    if path.is_dir():
        described = read_sidecar(path) if sidecar_format(path) == fmt else None
        if described is None:
            raise ModelLoadError(f"{path} is a folder without a '{fmt}' artifact.json")
        path, lineage = described.path, described.lineage
    if not path.is_file():
        raise ModelLoadError(f"model not found: {path}")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path} is empty (0 bytes)")
    return path, lineage


def _artifact(
    path: Path, fmt: str, obj: Any, options: LoaderOptions, extra: dict[str, Any], lineage: list[PassRecord]
) -> Artifact:
    model = describe(obj, fmt, path.name)
    facts = {"model": model.description, "task": model.kind}
    if model.n_classes:
        facts["classes"] = model.n_classes
    if "rounds" in model.facts:
        facts["rounds"] = model.facts["rounds"]
    return Artifact(
        path=path.resolve(),
        format=fmt,
        inputs=[input_spec(model, options.shapes, options.dtypes)],
        outputs=model.output_specs(),
        source=str(path),
        lineage=lineage,
        extra={**facts, **extra},
    )


class SkopsLoader(Loader):
    name = "sklearn-skops"
    summary = ".skops scikit-learn estimators and pipelines"
    formats = (FORMAT_SKLEARN,)
    safety = (
        "skops: builds only types skops trusts; other types are listed and refused unless --trust-pickle "
        "allows exactly those listed (constructing them may run code)"
    )

    def claims(self, ref: str) -> bool:
        path = Path(ref)
        if path.suffix.lower() in SKOPS_SUFFIXES:
            return True
        inner = _described_file(path, FORMAT_SKLEARN)
        return inner is not None and inner.suffix.lower() in SKOPS_SUFFIXES

    def load(self, ref: str, options: LoaderOptions) -> Artifact:
        path, lineage = _resolve(ref, FORMAT_SKLEARN)
        untrusted = untrusted_types(path)
        if untrusted and not options.trust_pickle:
            raise ModelLoadError(
                f"{path.name} holds types skops does not trust by default: {', '.join(untrusted)}; not loaded",
                hint="constructing them may run code; if you trust this file, pass --trust-pickle to allow "
                "exactly these types",
            )
        obj = read_skops(path, untrusted)
        extra: dict[str, Any] = {"serialization": "skops"}
        if untrusted:
            extra["trusted_types"] = untrusted
        return _artifact(path, FORMAT_SKLEARN, obj, options, extra, lineage)


class PickleLoader(Loader):
    name = "sklearn-pickle"
    summary = ".joblib/.pkl/.pickle scikit-learn models (only with --trust-pickle)"
    formats = (FORMAT_SKLEARN,)
    safety = "pickle: loading runs code from the file; refused unless --trust-pickle"

    def claims(self, ref: str) -> bool:
        path = Path(ref)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            return True
        inner = _described_file(path, FORMAT_SKLEARN)
        return inner is not None and inner.suffix.lower() in PICKLE_SUFFIXES

    def load(self, ref: str, options: LoaderOptions) -> Artifact:
        path, lineage = _resolve(ref, FORMAT_SKLEARN)
        if not options.trust_pickle:
            raise ModelLoadError(
                f"{path.name} is a pickle: loading it runs code stored in the file, so it is refused "
                "without --trust-pickle",
                hint="pass --trust-pickle only for files you trust, or save the model with skops.io.dump "
                "(a .skops file loads without running code)",
            )
        obj = read_pickle(path)
        extra = {"serialization": "pickle", "trust_pickle": True}
        return _artifact(path, FORMAT_SKLEARN, obj, options, extra, lineage)


class XGBoostLoader(Loader):
    name = "xgboost"
    summary = 'XGBoost models: .json (starting {"learner"), .ubj'
    formats = (FORMAT_XGBOOST,)
    safety = "data only (JSON / UBJSON; nothing is executed)"

    def claims(self, ref: str) -> bool:
        path = Path(ref)
        suffix = path.suffix.lower()
        if suffix == ".ubj":
            return True
        if suffix == ".json" and path.is_file():
            return _peek(path).startswith(XGBOOST_JSON_START)
        return _described_file(path, FORMAT_XGBOOST) is not None

    def load(self, ref: str, options: LoaderOptions) -> Artifact:
        path, lineage = _resolve(ref, FORMAT_XGBOOST)
        return _artifact(path, FORMAT_XGBOOST, read_xgboost(path), options, {}, lineage)


class LightGBMLoader(Loader):
    name = "lightgbm"
    summary = "LightGBM text models (.txt, .lgb, .lgbm, .model starting with 'tree')"
    formats = (FORMAT_LIGHTGBM,)
    safety = "data only (text model; nothing is executed)"

    def claims(self, ref: str) -> bool:
        path = Path(ref)
        if path.suffix.lower() in LIGHTGBM_SUFFIXES and path.is_file():
            return _peek(path).startswith(b"tree\n") or _peek(path).startswith(b"tree\r\n")
        return _described_file(path, FORMAT_LIGHTGBM) is not None

    def load(self, ref: str, options: LoaderOptions) -> Artifact:
        path, lineage = _resolve(ref, FORMAT_LIGHTGBM)
        return _artifact(path, FORMAT_LIGHTGBM, read_lightgbm(path), options, {}, lineage)

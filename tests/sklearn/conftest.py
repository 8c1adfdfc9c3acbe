"""Tiny scikit-learn, XGBoost and LightGBM models, trained once per session with the example's own code."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, load_module

pytest.importorskip("compressor_sklearn")
# XGBoost and LightGBM are imported here (training) before the plugin could set it: idle OpenMP threads sleep.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


#: examples/frameworks/train.py, under a name no other ``train`` module shadows.
train = load_module(ROOT / "examples" / "frameworks" / "train.py", "frameworks_example")

#: Latency options that keep `compare` short.
FAST = ("--min-runs", "3", "--min-time", "0", "--warmup", "1")


@dataclass(frozen=True)
class Models:
    folder: Path
    xgb: Path  # XGBoost binary:logistic, 40 rounds, breast cancer
    bc_test: Path
    lgbm: Path  # LightGBM multiclass, 30 rounds, digits
    mlp: Path  # Pipeline(StandardScaler, MLPClassifier(32)), digits, .skops
    digits_test: Path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    folder = tmp_path_factory.mktemp("sk_models")
    x_train, x_test, y_train, y_test = train.split("breast_cancer")
    xgb = train.train_xgboost(folder / "bc_xgb.json", x_train, y_train, rounds=40)
    bc_test = train.save_data(folder / "bc_test.npz", "input", x_test, y_test)
    x_train, x_test, y_train, y_test = train.split("digits")
    lgbm = train.train_lightgbm(folder / "digits_lgbm.txt", x_train, y_train, rounds=30, leaves=7)
    mlp = train.train_mlp(folder / "digits_mlp.skops", x_train, y_train, hidden=(32,), epochs=60)
    digits_test = train.save_data(folder / "digits_test.npz", "input", x_test, y_test)
    return Models(folder, xgb, bc_test, lgbm, mlp, digits_test)


def write_recipe(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path

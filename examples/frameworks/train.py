"""Train small models on data that ships with scikit-learn and save them in their native formats.

    python examples/frameworks/train.py [OUT_DIR]        # default: out/frameworks

Writes, with held-out data (arrays named after the model input, plus ``labels``) beside each model:

    breast_cancer_xgb.json    XGBoost binary:logistic, 200 rounds (needs compressor-sklearn[xgboost])
    breast_cancer_test.npz    the held-out 30% of breast cancer
    digits_lgbm.txt           LightGBM multiclass, 100 rounds (needs compressor-sklearn[lightgbm])
    digits_mlp.skops          scikit-learn Pipeline(StandardScaler, MLPClassifier)
    digits_test.npz           the held-out 30% of digits (64 features); digits_calib.npz: 256 training rows
    digits_cnn.keras          a small Keras CNN on the 8x8 images (needs compressor-tensorflow)
    digits_images_test.npz    the same held-out digits as 8x8x1 images; digits_images_calib.npz

Then, for example:

    compressor compare out/frameworks/breast_cancer_xgb.json model.onnx --data out/frameworks/breast_cancer_test.npz

California housing is a download, so it is not used. Every function takes its sizes as arguments: the tests
train the same models smaller.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

SEED = 0
TEST_SHARE = 0.3


def split(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, X_test, y_train, y_test) of ``breast_cancer`` or ``digits``; float32 features, stratified."""
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.model_selection import train_test_split

    loader = {"breast_cancer": load_breast_cancer, "digits": load_digits}[name]
    x, y = loader(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y.astype(np.int64), test_size=TEST_SHARE, random_state=SEED, stratify=y
    )
    return x_train, x_test, y_train, y_test


def as_images(x: np.ndarray) -> np.ndarray:
    """Digits' 64 features (0-16) as [N, 8, 8, 1] images in [0, 1] (Keras's channels-last layout)."""
    return (x / 16.0).reshape(-1, 8, 8, 1).astype(np.float32)


def save_data(path: Path, input_name: str, x: np.ndarray, y: np.ndarray | None = None) -> Path:
    arrays: dict[str, Any] = {input_name: x}
    if y is not None:
        arrays["labels"] = y
    np.savez(path, **arrays)
    return path


def train_xgboost(path: Path, x: np.ndarray, y: np.ndarray, rounds: int = 200, depth: int = 3) -> Path:
    """A native XGBoost Booster saved as JSON (the safe format: no pickle)."""
    import xgboost as xgb

    classes = int(y.max()) + 1
    params: dict[str, Any] = {"max_depth": depth, "eta": 0.1, "nthread": 2, "seed": SEED}
    params.update(
        {"objective": "binary:logistic"} if classes == 2 else {"objective": "multi:softprob", "num_class": classes}
    )
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=rounds)
    booster.save_model(str(path))
    return path


def train_lightgbm(path: Path, x: np.ndarray, y: np.ndarray, rounds: int = 100, leaves: int = 15) -> Path:
    """A LightGBM Booster saved as a text model."""
    import lightgbm as lgb

    classes = int(y.max()) + 1
    params: dict[str, Any] = {"num_leaves": leaves, "learning_rate": 0.1, "num_threads": 2, "seed": SEED}
    params.update({"objective": "binary"} if classes == 2 else {"objective": "multiclass", "num_class": classes})
    params["verbose"] = -1
    booster = lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=rounds)
    booster.save_model(str(path))
    return path


def train_mlp(path: Path, x: np.ndarray, y: np.ndarray, hidden: tuple[int, ...] = (64,), epochs: int = 300) -> Path:
    """A scikit-learn pipeline (scaler + MLP) saved with skops."""
    import warnings

    import skops.io as sio
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), MLPClassifier(hidden, max_iter=epochs, random_state=SEED))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    sio.dump(model, path)
    return path


def train_keras_cnn(
    path: Path, images: np.ndarray, y: np.ndarray, epochs: int = 15, width: int = 16, batch: int = 32
) -> Path:
    """A small CNN (2 conv, batch norm, 2 dense) on [N, 8, 8, 1] digits, saved as .keras."""
    import keras

    keras.utils.set_random_seed(SEED)
    inputs = keras.Input((8, 8, 1), name="pixels")
    h = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(4 * width, activation="relu")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(h)
    model = keras.Model(inputs, outputs, name="digits_cnn")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(images, y, epochs=epochs, batch_size=batch, verbose=0)
    model.save(path)
    return path


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = split("breast_cancer")
    save_data(out / "breast_cancer_test.npz", "input", x_test, y_test)
    print("wrote", train_xgboost(out / "breast_cancer_xgb.json", x_train, y_train))
    x_train, x_test, y_train, y_test = split("digits")
    save_data(out / "digits_test.npz", "input", x_test, y_test)
    save_data(out / "digits_calib.npz", "input", x_train[:256])
    print("wrote", train_lightgbm(out / "digits_lgbm.txt", x_train, y_train))
    print("wrote", train_mlp(out / "digits_mlp.skops", x_train, y_train))
    save_data(out / "digits_images_test.npz", "pixels", as_images(x_test), y_test)
    save_data(out / "digits_images_calib.npz", "pixels", as_images(x_train[:256]))
    print("wrote", train_keras_cnn(out / "digits_cnn.keras", as_images(x_train), y_train))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/frameworks"))

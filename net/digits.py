"""The handwritten digits scikit-learn ships (8 x 8, 16 grey levels), split as the shipped
network was trained: the data set of ``rowstat demo --onnx`` and the accuracy benchmark."""

from importlib import resources

import numpy as np

__all__ = ["digits_split", "DIGITS_MODEL", "digits_model_path"]

#: The trained network shipped with rowstat (made by ``python -m rowstat.net.train_digits``).
DIGITS_MODEL = "digits_cnn.onnx"


def digits_model_path():
    """Path of the shipped digits network."""
    return resources.files("rowstat.net") / "models" / DIGITS_MODEL


def digits_split(test_size=0.25, seed=0):
    """(x_train, y_train, x_test, y_test): images (N, 1, 8, 8) float32 in [0, 1] (the grey
    level over 16), labels int64; a stratified split with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=seed,
                                              stratify=y)
    return x_tr, y_tr, x_te, y_te

"""Small classification data sets for the diversity experiments, as torch tensors.

=================  ==========================================================================
name               source
=================  ==========================================================================
``digits``         ``sklearn.datasets.load_digits`` (shipped with scikit-learn: 1797 images
                   8x8, 10 classes); stratified train/test split with ``seed``; standardised
                   with the training set's per-feature mean and standard deviation
``mnist1d``        the ``mnist1d`` package's generator with its default arguments (4000 train,
                   1000 test, 40 features, 10 classes; the canonical data set, generated
                   locally, never downloaded; ``seed`` is not used); already standardised
``synthetic``      a seeded Gaussian mixture: ``n_classes`` centres ``~ N(0, sep^2 I)`` in
                   ``n_features`` dimensions, samples ``N(centre, I)``; stratified split
``mnist``,         user-provided files (``path=``): a folder (or a file inside it) with the four
``fashion_mnist``  IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
                   ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally
                   ``.gz``), or an ``.npz`` with ``x_train``, ``y_train``, ``x_test``,
                   ``y_test``; pixels scaled to [0, 1] and standardised with the training
                   set's mean and standard deviation, images flattened to 784 features
=================  ==========================================================================

Inputs are float32 ``(n, features)``, labels int64 ``(n,)``.
"""

from __future__ import annotations

import gzip
import os
import random
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from netinit._rng import as_generator
from netinit.errors import DataError

__all__ = ["Dataset", "load_dataset", "DATASETS", "read_idx"]

#: Names accepted by :func:`load_dataset`.
DATASETS = ("digits", "mnist1d", "synthetic", "mnist", "fashion_mnist")

_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class Dataset(NamedTuple):
    """Train and test tensors: inputs float32 ``(n, features)``, labels int64 ``(n,)``."""

    X_train: object
    y_train: object
    X_test: object
    y_test: object


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    test_size: float = 0.25,
    path: str | os.PathLike | None = None,
    n_samples: int = 3000,
) -> Dataset:
    """Load a classification data set as torch tensors.

    Parameters
    ----------
    name : {"digits", "mnist1d", "synthetic", "mnist", "fashion_mnist"}
        See the module docstring (``"fashion-mnist"`` is accepted too).
    seed : int, default 0
        Seed of the train/test split (``digits``, ``synthetic``) and of the mixture
        (``synthetic``); ``mnist1d`` and the MNIST files have fixed splits.
    test_size : float, default 0.25
        Test share for ``digits`` and ``synthetic``.
    path : str or PathLike, optional
        ``mnist`` / ``fashion_mnist`` only: the folder of IDX files or an ``.npz`` file.
    n_samples : int, default 3000
        ``synthetic`` only: number of samples.

    Returns
    -------
    Dataset
        ``(X_train, y_train, X_test, y_test)``.

    Raises
    ------
    ValueError
        Unknown ``name`` or bad ``test_size``.
    FileNotFoundError
        ``path`` is missing or does not hold the expected files.
    DataError
        A file is malformed (bad magic number, truncated, inconsistent sizes).

    Examples
    --------
    >>> d = load_dataset("digits", seed=0)
    >>> tuple(d.X_train.shape), tuple(d.X_test.shape), d.y_train.dtype
    ((1347, 64), (450, 64), torch.int64)
    """
    key = name.replace("-", "_").lower() if isinstance(name, str) else name
    if key not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {name!r}")
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must lie in (0, 1), got {test_size!r}")
    if key == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        parts = _split(X, y, test_size, seed)
        return _to_torch(*_standardise(*parts))
    if key == "synthetic":
        X, y = _mixture(n_samples, seed)
        return _to_torch(*_standardise(*_split(X, y, test_size, seed)))
    if key == "mnist1d":
        return _to_torch(*_mnist1d())
    if path is None:
        raise ValueError(f"dataset {name!r} needs path= (a folder of IDX files or an .npz file)")
    xtr, ytr, xte, yte = _read_mnist(Path(path))
    xtr = xtr.reshape(len(xtr), -1).astype(np.float64) / 255.0
    xte = xte.reshape(len(xte), -1).astype(np.float64) / 255.0
    mu, sd = xtr.mean(), xtr.std()
    return _to_torch((xtr - mu) / sd, ytr, (xte - mu) / sd, yte)


def _split(X, y, test_size: float, seed: int):
    from sklearn.model_selection import train_test_split

    rng = as_generator(seed)
    state = int(rng.integers(2**31 - 1))
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=test_size, stratify=y, random_state=state)
    return xtr, ytr, xte, yte


def _standardise(xtr, ytr, xte, yte):
    mu = xtr.mean(axis=0)
    sd = xtr.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return (xtr - mu) / sd, ytr, (xte - mu) / sd, yte


def _to_torch(xtr, ytr, xte, yte) -> Dataset:
    import torch

    f = lambda a: torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    i = lambda a: torch.as_tensor(np.ascontiguousarray(a, dtype=np.int64))  # noqa: E731
    return Dataset(f(xtr), i(ytr), f(xte), i(yte))


def _mixture(n_samples: int, seed: int, n_classes: int = 10, n_features: int = 20, sep: float = 1.0):
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 4 * n_classes:
        raise ValueError(f"n_samples must be an int >= {4 * n_classes}, got {n_samples!r}")
    rng = as_generator(np.random.SeedSequence([int(seed), 0x5EED]))
    centres = rng.normal(scale=sep, size=(n_classes, n_features))
    y = np.arange(n_samples) % n_classes
    rng.shuffle(y)
    X = centres[y] + rng.normal(size=(n_samples, n_features))
    return X, y


def _mnist1d():
    """The canonical MNIST-1D set from the package's generator, leaving global RNG state alone."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the mnist1d data set needs the mnist1d package: pip install 'mnist1d>=0.0.2'"
        ) from e
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())  # seeds numpy and random globally (seed 42)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return d["x"], d["y"], d["x_test"], d["y_test"]


def _read_mnist(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in _IDX_FILES if k not in z.files]
                if missing:
                    raise DataError(
                        f"{path}: the .npz lacks {', '.join(missing)} (it has {', '.join(z.files)})"
                    )
                arrays = [np.asarray(z[k]) for k in _IDX_FILES]
        except (OSError, ValueError) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(f"{path}: not a readable .npz file ({e})") from e
    else:
        folder = path if path.is_dir() else path.parent
        arrays = [read_idx(_find_idx(folder, stem)) for stem in _IDX_FILES.values()]
    xtr, ytr, xte, yte = arrays
    for xs, ys, part in ((xtr, ytr, "train"), (xte, yte, "test")):
        if xs.ndim != 3 or ys.ndim != 1 or len(xs) != len(ys):
            raise DataError(
                f"{path}: {part} images must be (n, rows, cols) and labels (n,) with the same n; "
                f"got {xs.shape} and {ys.shape}"
            )
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


def _find_idx(folder: Path, stem: str) -> Path:
    for cand in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / cand).is_file():
            return folder / cand
    raise FileNotFoundError(f"{folder}: no {stem} or {stem}.gz (the MNIST IDX files are expected there)")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a numpy array.

    Raises
    ------
    DataError
        Bad magic number, unknown element type, or a size that does not match the header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot be read as {'gzip' if opener is gzip.open else 'IDX'} ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise DataError(f"{path}: not an IDX file (magic bytes {raw[:4].hex() or 'missing'})")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(">" + "I" * ndim, raw[4:head])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - head != need:
        raise DataError(
            f"{path}: header says shape {shape} ({need} bytes of data) but the file holds "
            f"{len(raw) - head} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=head).reshape(shape).astype(dtype.newbyteorder("="))

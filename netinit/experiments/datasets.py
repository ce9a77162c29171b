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
``mnist``,         user-provided files (``path=``; ``fashion_mnist`` without ``path`` reads
``fashion_mnist``  :data:`FASHION_MNIST_DIR`, where Debian's package ``dataset-fashion-mnist``
                   installs them: ``apt-get install dataset-fashion-mnist``): a folder (or a
                   file inside it) with the four IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
                   ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally
                   ``.gz``), or an ``.npz`` with ``x_train``, ``y_train``, ``x_test``,
                   ``y_test``; pixels scaled to [0, 1] and standardised with the training
                   set's mean and standard deviation, images flattened to 784 features
``cifar10``        user-provided files (``path=``): the "CIFAR-10 python version" folder
                   ``cifar-10-batches-py`` (or its parent, or a file inside it) with
                   ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``, read by a safe
                   unpickler (:func:`read_cifar_batch`), or an ``.npz`` with ``x_train``,
                   ``y_train``, ``x_test``, ``y_test`` (images ``(n, 3072)``, ``(n, 3, 32, 32)``
                   or ``(n, 32, 32, 3)`` uint8); pixels scaled to [0, 1] and standardised per
                   colour channel with the training set's mean and standard deviation,
                   images flattened channel-first to 3072 features
=================  ==========================================================================

Inputs are float32 ``(n, features)``, labels int64 ``(n,)``. The inputs of image data sets are
flattened channel-first (``C, H, W``); :data:`IMAGE_SHAPES` gives their shapes, so a model can
unflatten them.

**Pickles are data, not code.** CIFAR-10's python batches are pickles, and unpickling can run
any function the file names. :func:`read_cifar_batch` unpickles with an unpickler that resolves
only the globals numpy arrays are rebuilt from (``_reconstruct``, ``_frombuffer``, ``ndarray``,
``dtype``; dicts, lists, ints and bytes need none) and refuses any other global with a
:class:`~netinit.errors.DataError` that names the file and the global, before anything is called.
"""

from __future__ import annotations

import gzip
import os
import pickle
import random
import struct
import tokenize
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from netinit._rng import as_generator
from netinit.errors import DataError
from netinit.formats.base import ZIP_ERRORS

__all__ = ["Dataset", "load_dataset", "check_dataset", "subsample", "DATASETS", "IMAGE_SHAPES", "FASHION_MNIST_DIR",
           "read_idx", "read_cifar_batch"]

#: Where Debian's ``dataset-fashion-mnist`` installs the four gzipped IDX files (60k train, 10k test).
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: Names accepted by :func:`load_dataset`.
DATASETS = ("digits", "mnist1d", "synthetic", "mnist", "fashion_mnist", "cifar10")
#: ``(channels, height, width)`` of the data sets whose inputs are images (flattened channel-first).
IMAGE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}

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
    name : {"digits", "mnist1d", "synthetic", "mnist", "fashion_mnist", "cifar10"}
        See the module docstring (``"fashion-mnist"`` is accepted too).
    seed : int, default 0
        Seed of the train/test split (``digits``, ``synthetic``) and of the mixture
        (``synthetic``); ``mnist1d``, the MNIST and the CIFAR-10 files have fixed splits.
    test_size : float, default 0.25
        Test share for ``digits`` and ``synthetic``.
    path : str or PathLike, optional
        ``mnist`` / ``fashion_mnist``: the folder of IDX files or an ``.npz`` file
        (``fashion_mnist`` default: :data:`FASHION_MNIST_DIR`);
        ``cifar10``: the ``cifar-10-batches-py`` folder (or its parent) or an ``.npz`` file.
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
        A file is malformed (bad magic number, truncated, inconsistent sizes, wrong shapes), or
        a CIFAR-10 pickle names a global other than numpy's array reconstruction.

    Examples
    --------
    >>> d = load_dataset("digits", seed=0)
    >>> tuple(d.X_train.shape), tuple(d.X_test.shape), d.y_train.dtype
    ((1347, 64), (450, 64), torch.int64)
    """
    key = _dataset_key(name)
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
    path = _data_path(key, name, path)
    if key == "cifar10":
        return _to_torch(*_standardise_channels(*_read_cifar(Path(path))))
    xtr, ytr, xte, yte = _read_mnist(Path(path))
    xtr = xtr.reshape(len(xtr), -1).astype(np.float64) / 255.0
    xte = xte.reshape(len(xte), -1).astype(np.float64) / 255.0
    mu, sd = xtr.mean(), xtr.std()
    return _to_torch((xtr - mu) / sd, ytr, (xte - mu) / sd, yte)


def _dataset_key(name: str) -> str:
    """The :data:`DATASETS` key of ``name`` (``"fashion-mnist"`` is ``"fashion_mnist"``)."""
    key = name.replace("-", "_").lower() if isinstance(name, str) else name
    if key not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {name!r}")
    return key


def _data_path(key: str, name: str, path: str | os.PathLike | None) -> Path:
    """The file or folder a file-backed data set is read from (Fashion-MNIST's default: Debian's)."""
    if path is None and key == "fashion_mnist":
        if not (FASHION_MNIST_DIR / (_IDX_FILES["x_train"] + ".gz")).is_file() and not (
                FASHION_MNIST_DIR / _IDX_FILES["x_train"]).is_file():
            raise FileNotFoundError(f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR}: run "
                                    "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or pass path= "
                                    "(data.path) to a folder of its four IDX files")
        return FASHION_MNIST_DIR
    if path is None:
        what = "the cifar-10-batches-py folder" if key == "cifar10" else "a folder of IDX files"
        raise ValueError(f"dataset {name!r} needs path= ({what} or an .npz file)")
    return Path(path)


def check_dataset(name: str, path: str | os.PathLike | None = None) -> None:
    """Raise what :func:`load_dataset` would for an unknown data set or missing files, without
    reading them (a grid checks this once, before its first run).

    Raises
    ------
    ValueError
        Unknown ``name``, or a file-backed data set without ``path``.
    FileNotFoundError
        ``path`` is missing or does not hold the expected files.
    """
    key = _dataset_key(name)
    if key in ("digits", "synthetic", "mnist1d"):
        return
    p = _data_path(key, name, path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_file() and p.suffix == ".npz":
        return
    folder = p if p.is_dir() else p.parent
    if key == "cifar10":
        _cifar_folder(folder)
    else:
        for stem in _IDX_FILES.values():
            _find_idx(folder, stem)


def subsample(data: Dataset, n_train: int, *, n_test: int = 0, seed: int = 0) -> Dataset:
    """``data`` with stratified subsets of ``n_train`` training and ``n_test`` test samples.

    The subsets depend only on ``seed`` and the labels, so every run of a grid sees the same
    samples. A size of 0, or at or above the set's size, keeps that set whole.

    Raises
    ------
    ValueError
        A size smaller than the number of classes.
    """
    import torch
    from sklearn.model_selection import train_test_split

    def pick(X: Any, y: Any, n: int, salt: int) -> tuple[Any, Any]:
        labels = y.numpy()
        if not n or n >= len(labels):
            return X, y
        if n < len(np.unique(labels)):
            raise ValueError(f"a subset must hold at least one sample per class ({len(np.unique(labels))}), got {n}")
        state = int(as_generator(np.random.SeedSequence([int(seed), salt])).integers(2**31 - 1))
        keep, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels, random_state=state)
        keep = torch.as_tensor(np.sort(keep))
        return X[keep], y[keep]

    xtr, ytr = pick(data.X_train, data.y_train, n_train, 0x5B5)
    xte, yte = pick(data.X_test, data.y_test, n_test, 0x7E5)
    return Dataset(xtr, ytr, xte, yte)


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
        arrays = _read_npz(path)
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


def _read_npz(path: Path) -> list[np.ndarray]:
    """``x_train, y_train, x_test, y_test`` of an ``.npz`` (never unpickling object arrays)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _IDX_FILES if k not in z.files]
            if missing:
                raise DataError(
                    f"{path}: the .npz lacks {', '.join(missing)} (it has {', '.join(z.files)})"
                )
            return [np.asarray(z[k]) for k in _IDX_FILES]
    except DataError:
        raise
    except ZIP_ERRORS + (SyntaxError, tokenize.TokenError) as e:  # bad zip, CRC, damaged .npy header
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from e


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


# ----------------------------------------------------------------------------- CIFAR-10
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_CLASSES = 10


def _array_globals() -> dict[tuple[str, str], Any]:
    """The globals numpy arrays are unpickled from, under the module names numpy 1 and 2 write."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
        from numpy.core.numeric import _frombuffer
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = _reconstruct  # protocols 0-4
        allowed[(f"{core}.numeric", "_frombuffer")] = _frombuffer  # protocol 5
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays, dicts, lists, ints and bytes, and nothing else.

    Every global a pickle names (the only way it can reach code) goes through
    :meth:`find_class`; any name outside :func:`_array_globals` is refused there, before it
    could be called. Python 2 strings (the CIFAR files) are read as bytes.
    """

    def __init__(self, fh: Any, path: Path) -> None:
        super().__init__(fh, encoding="bytes")
        self._path = path
        self._allowed = _array_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted({f"{m}.{n}" for m, n in self._allowed}))
            raise DataError(
                f"{self._path}: refusing to unpickle the global {module}.{name}: a CIFAR-10 batch "
                f"holds only numpy arrays, lists, ints and bytes (allowed globals: {allowed}); "
                "nothing from the file was run"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self._path}: refusing a pickle with persistent ids ({pid!r}); "
                        "a CIFAR-10 batch has none")


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch of the CIFAR-10 python version, safely.

    The file is a pickle of a dict with ``b"data"``: uint8 ``(n, 3072)``, each row a 32x32
    colour image stored channel-first (1024 red, 1024 green, 1024 blue values, rows in order),
    ``b"labels"``: ``n`` ints in ``0..9``, and ``b"batch_label"``, ``b"filenames"`` (unused). It
    is unpickled with an unpickler that resolves only numpy's array-reconstruction globals
    (module docstring), so a file that names any other callable is refused unrun.

    Parameters
    ----------
    path : str or PathLike
        ``data_batch_1`` .. ``data_batch_5`` or ``test_batch``.

    Returns
    -------
    images : ndarray of shape (n, 3, 32, 32), uint8
    labels : ndarray of shape (n,), int64

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataError
        The pickle names a global other than numpy's array reconstruction (the message names
        the file and the global); the file is truncated or not a pickle; the dict lacks
        ``b"data"`` or ``b"labels"``; the data is not uint8 ``(n, 3072)``; the labels are not
        ``n`` integers in ``0..9``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a CIFAR-10 python batch was expected)")
    try:
        with open(path, "rb") as fh:
            batch = _ArrayUnpickler(fh, path).load()
    except DataError:
        raise
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e})") from e
    except Exception as e:  # noqa: BLE001 - any failure of the unpickler means a damaged file
        raise DataError(f"{path}: not a CIFAR-10 python batch: the pickle is truncated or corrupt "
                        f"({type(e).__name__}: {e})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: a CIFAR-10 python batch is a pickled dict, got {type(batch).__name__}")
    missing = [k.decode() for k in (b"data", b"labels") if k not in batch]
    if missing:
        found = ", ".join(repr(k) for k in list(batch)[:6])
        raise DataError(f"{path}: the batch lacks {', '.join(missing)} (it has {found or 'no keys'})")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: data must be a uint8 array of shape (n, 3072) (32x32 colour images), got {got}")
    return data.reshape(-1, 3, 32, 32), _cifar_labels(labels, len(data), f"{path}: labels")


def _cifar_labels(labels: Any, n: int, where: str) -> np.ndarray:
    try:
        y = np.asarray(labels)
    except Exception:  # noqa: BLE001 - ragged or odd objects
        y = np.asarray([], dtype=object)
    if y.ndim == 2 and y.shape[1] == 1:  # Keras stores (n, 1)
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n or (n and y.dtype.kind not in "iu"):
        raise DataError(f"{where} must be {n} integers (one per image), got {y.dtype} {y.shape}")
    if n and (y.min() < 0 or y.max() >= _CIFAR_CLASSES):
        raise DataError(f"{where} must lie in 0..{_CIFAR_CLASSES - 1}, got values {int(y.min())}..{int(y.max())}")
    return y.astype(np.int64)


def _cifar_images(x: np.ndarray, where: str) -> np.ndarray:
    """Images of an ``.npz`` as uint8 ``(n, 3, 32, 32)``: rows of 3072 are channel-first as in the
    python batches; ``(n, 32, 32, 3)`` (Keras) is transposed."""
    if x.dtype != np.uint8:
        raise DataError(f"{where} must be uint8 pixels (0..255), got {x.dtype}")
    if x.ndim == 2 and x.shape[1] == 3072:
        return x.reshape(-1, 3, 32, 32)
    if x.ndim == 4 and x.shape[1:] == (3, 32, 32):
        return x
    if x.ndim == 4 and x.shape[1:] == (32, 32, 3):
        return x.transpose(0, 3, 1, 2)
    raise DataError(f"{where} must have shape (n, 3072), (n, 3, 32, 32) or (n, 32, 32, 3), got {x.shape}")


def _cifar_folder(folder: Path) -> Path:
    """The folder holding the CIFAR-10 python batches: ``folder`` or its ``cifar-10-batches-py``."""
    if not (folder / _CIFAR_TEST).is_file() and (folder / _CIFAR_FOLDER).is_dir():
        folder = folder / _CIFAR_FOLDER
    missing = [f for f in (*_CIFAR_TRAIN, _CIFAR_TEST) if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: no {', '.join(missing)} (the CIFAR-10 python batches "
                                f"{', '.join(_CIFAR_TRAIN)}, {_CIFAR_TEST} are expected there)")
    return folder


def _read_cifar(path: Path):
    """uint8 images ``(n, 3, 32, 32)`` and int64 labels of the train and test splits."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix == ".npz":
        xtr, ytr, xte, yte = _read_npz(path)
        xtr, xte = _cifar_images(xtr, f"{path}: x_train"), _cifar_images(xte, f"{path}: x_test")
        return (xtr, _cifar_labels(ytr, len(xtr), f"{path}: y_train"),
                xte, _cifar_labels(yte, len(xte), f"{path}: y_test"))
    folder = _cifar_folder(path if path.is_dir() else path.parent)
    train = [read_cifar_batch(folder / f) for f in _CIFAR_TRAIN]
    xte, yte = read_cifar_batch(folder / _CIFAR_TEST)
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), xte, yte)


def _standardise_channels(xtr: np.ndarray, ytr, xte: np.ndarray, yte):
    """Scale uint8 ``(n, C, H, W)`` images to [0, 1], standardise each channel with the training
    set's mean and standard deviation, flatten to ``(n, C*H*W)`` float32.

    The statistics come exactly from each channel's histogram of the 256 pixel values, and every
    pixel value is mapped through a float64 table rounded once to float32, so nothing of the
    size of the data set is ever held in float64.
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    tables = []
    for c in range(xtr.shape[1]):
        counts = np.bincount(xtr[:, c].ravel(), minlength=256).astype(np.float64)
        n = counts.sum()
        mu = (counts * values).sum() / n
        sd = np.sqrt((counts * (values - mu) ** 2).sum() / n)
        tables.append(((values - mu) / (sd if sd > 0 else 1.0)).astype(np.float32))

    def apply(x: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape, dtype=np.float32)
        for c, table in enumerate(tables):
            out[:, c] = table[x[:, c]]
        return out.reshape(len(x), -1)

    return apply(xtr), ytr, apply(xte), yte

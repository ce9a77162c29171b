"""The datasets of the experiments: :mod:`netinit.datasets` (kept there so ``netinit analyze --data`` can use them)."""

from netinit.datasets import DATASETS, Dataset, load_dataset, read_idx

__all__ = ["Dataset", "load_dataset", "DATASETS", "read_idx"]

"""Fixtures shared by the format tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netinit.errors import NetinitError
from netinit.formats import load_checkpoint
from netinit.layers import find_layers
from netinit.rewire.checkpoint import rewire_checkpoint


def _damage(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    if kind == "truncate":
        return bytes(b[: int(rng.integers(0, len(b)))])
    if kind == "flip":
        for _ in range(int(rng.integers(1, 9))):
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
    else:  # a zeroed run, as a failed disk block leaves
        j = int(rng.integers(len(b)))
        b[j : j + 64] = bytes(len(b[j : j + 64]))
    return bytes(b)


@pytest.fixture
def damaged(tmp_path):
    """``check(path, n, seed, kinds) -> {kind: (rejected, tried)}``: ``n`` damaged copies of
    ``path`` (by default truncated, bytes flipped, a run zeroed; in turn) are each read in full (every layer's
    matrix) and, when that works, rewired to a new file; each must work or raise a
    :class:`NetinitError`, nothing else."""

    def check(path: Path, n: int = 45, seed: int = 0,
              kinds: tuple[str, ...] = ("truncate", "flip", "zero")) -> dict[str, tuple[int, int]]:
        rng = np.random.default_rng(seed)
        data = path.read_bytes()
        counts = {k: [0, 0] for k in kinds}
        suffix = "".join(path.suffixes)
        for i in range(n):
            kind = kinds[i % len(kinds)]
            p = tmp_path / f"damaged{i}{suffix}"
            p.write_bytes(_damage(data, kind, rng))
            counts[kind][1] += 1
            try:
                with load_checkpoint(p) as ckpt:
                    for layer in find_layers(ckpt)[0]:
                        layer.matrix()
                rewire_checkpoint(p, tmp_path / f"rewired{i}{suffix}")
            except NetinitError:
                counts[kind][0] += 1
            except Exception as exc:  # noqa: BLE001 - the point of the check
                pytest.fail(f"{kind} damage #{i} of {path.name} raised {type(exc).__name__}: {exc}")
        return {k: (r, t) for k, (r, t) in counts.items()}

    return check

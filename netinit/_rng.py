"""Random-number conventions shared by every random function of netinit.

* numpy functions take ``rng``: ``None | int | numpy.random.Generator``, normalised by
  :func:`numpy.random.default_rng`. ``0`` is a seed like any other.
* Per-layer streams derive from the seed and the layer's name through a stable hash
  (:func:`zlib.crc32`), so a layer's result does not depend on which other layers were processed:
  :func:`layer_generator` for numpy, :func:`torch_generator` (:func:`torch_seed`) for torch, both
  from :func:`layer_seed_sequence`.
* Sub-steps that need independent streams (the two passes of PA rewiring, say) get them with
  :func:`stream`, never by re-creating a generator from the same integer.
"""

from __future__ import annotations

import inspect
import zlib
from typing import Any, Callable, Union

import numpy as np

__all__ = ["RngLike", "as_generator", "layer_seed_sequence", "layer_generator", "torch_seed", "torch_generator",
           "stream", "accepts_generator"]

RngLike = Union[None, int, np.integer, np.random.Generator, np.random.SeedSequence]


def as_generator(rng: RngLike) -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` for ``rng`` (None, int, SeedSequence or Generator)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer, np.random.SeedSequence)):
        if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng < 0:
            raise ValueError(f"rng seed must be a non-negative integer, got {rng}")
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be None, a non-negative int or a numpy.random.Generator, got {type(rng).__name__}"
    )


def layer_seed_sequence(seed: int, name: str) -> np.random.SeedSequence:
    """Seed sequence of layer ``name`` under the run seed ``seed`` (stable across runs and machines)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence([int(seed), zlib.crc32(name.encode("utf-8"))])


def layer_generator(seed: int, name: str) -> np.random.Generator:
    """A numpy generator for layer ``name`` under ``seed``."""
    return np.random.default_rng(layer_seed_sequence(seed, name))


def torch_seed(seed: int, name: str) -> int:
    """A 63-bit integer for ``torch.Generator.manual_seed``: stream ``name`` of the run seed ``seed``.

    The torch counterpart of :func:`layer_generator`, from the same seed sequence: the first
    64-bit word of its state, halved to fit torch's signed seed.
    """
    return int(layer_seed_sequence(seed, name).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def torch_generator(seed: int, name: str, device: Any = "cpu") -> Any:
    """A ``torch.Generator`` on ``device`` seeded with :func:`torch_seed` ``(seed, name)``."""
    import torch

    return torch.Generator(device=device).manual_seed(torch_seed(seed, name))


def stream(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """Split ``rng`` into ``n`` independent child generators (for sub-steps of one call)."""
    return list(rng.spawn(n))


def accepts_generator(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` (an initialiser) takes a ``generator=`` keyword, so its draws can be seeded.

    Callables without an inspectable signature (some builtins) are given the benefit of the doubt.
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return "generator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())

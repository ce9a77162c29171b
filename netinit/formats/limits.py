"""How much a reader may spend on one file: memory and time bounds against hostile files.

A damaged or crafted checkpoint must not make a reader allocate without bound or run forever.
Most bounds follow from the file itself and need no setting: a tensor never spans more bytes
than its file holds, a pickle's memo index never exceeds the pickle's length, a msgpack count
never exceeds the bytes left. The few that cannot (a compressed member can legitimately inflate,
a header can legitimately be large, a third-party parser can spin) are the :class:`Limits` here:

==========================  ==============  =======================================================
limit                       default         what it bounds
==========================  ==============  =======================================================
``max_header_bytes``        100 MiB         a safetensors JSON header (the format's own limit)
``max_tensors``             100,000         entries of one safetensors header
``max_inflation``           100             decompressed / compressed size of a zip member
                                            (``.npz`` members, a TorchScript ``data.pkl``,
                                            a ``.keras`` archive's weights), above ...
``inflation_floor``         64 MiB          ... this size, below which any ratio is accepted
``h5_timeout``              60 s            the Keras reader's walk over the HDF5 structure
                                            (0: no bound, the walk runs in-process)
``h5_memory``               1 GiB           memory that walk may take beyond twice the file's size
==========================  ==============  =======================================================

Each can be raised for one block of code with :func:`limits` or for a whole process (the
command line included) with an environment variable named ``NETINIT_`` + the upper-case name
(``NETINIT_MAX_TENSORS=500000``). A file beyond a limit is refused with a
:class:`~netinit.errors.CorruptFileError` that names the file, the limit and the variable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import Iterator

__all__ = ["Limits", "current_limits", "limits"]


@dataclass(frozen=True)
class Limits:
    """Bounds a reader keeps to on one file (see the module docstring)."""

    max_header_bytes: int = 100 * 1024 * 1024
    max_tensors: int = 100_000
    max_inflation: int = 100
    inflation_floor: int = 64 * 1024 * 1024
    h5_timeout: float = 60.0
    h5_memory: int = 1024 * 1024 * 1024

    @staticmethod
    def variable(name: str) -> str:
        """The environment variable that sets limit ``name``."""
        return "NETINIT_" + name.upper()


_OVERRIDES: list[dict[str, float]] = []


def current_limits() -> Limits:
    """The limits in force: the defaults, then the environment, then any :func:`limits` block."""
    values: dict[str, float] = {}
    for f in dataclasses.fields(Limits):
        raw = os.environ.get(Limits.variable(f.name))
        if raw:
            try:
                values[f.name] = float(raw) if f.type == "float" else int(float(raw))
            except ValueError:
                raise ValueError(f"{Limits.variable(f.name)}={raw!r} is not a number") from None
    for layer in _OVERRIDES:
        values.update(layer)
    return Limits(**values)


@contextlib.contextmanager
def limits(**changes: float) -> Iterator[Limits]:
    """Raise (or lower) limits inside a ``with`` block.

    Examples
    --------
    >>> from netinit.formats.limits import limits, current_limits
    >>> with limits(max_tensors=500_000):
    ...     current_limits().max_tensors
    500000
    """
    names = {f.name for f in dataclasses.fields(Limits)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise TypeError(f"unknown limit {unknown[0]!r}; valid: {', '.join(sorted(names))}")
    bad = [k for k, v in changes.items() if not (v > 0 or (v == 0 and k == "h5_timeout"))]
    if bad:
        raise ValueError(f"limit {bad[0]}={changes[bad[0]]!r} must be positive")
    _OVERRIDES.append(dict(changes))
    try:
        yield current_limits()
    finally:
        _OVERRIDES.pop()

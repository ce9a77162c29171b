"""Option types and messages shared by the command lines (:mod:`netinit.cli` and
:mod:`netinit.experiments.cli`): argparse ``type=`` checkers that refuse a bad value before
anything runs, the progress bar and the one-line messages on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Iterable

__all__ = ["progress", "positive_int", "nonnegative_int", "device", "scheduler_address", "err", "plural",
           "SCHEDULER_SCHEMES", "int_at_least"]


def progress(desc: str, quiet: bool) -> Callable[[Iterable[Any]], Iterable[Any]] | None:
    """A tqdm wrapper for an iteration over layers, or None when quiet or stderr is no terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    def wrap(items: Iterable[Any]) -> Iterable[Any]:
        items = list(items)
        for item in tqdm(items, desc=desc, unit="layer", file=sys.stderr, leave=False):
            yield item

    return wrap


def int_at_least(text: str, minimum: int, expected: str) -> int:
    """``text`` as an integer of at least ``minimum``, else a usage error saying ``expected``."""
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    return int_at_least(text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """An integer of at least 0."""
    return int_at_least(text, 0, "a non-negative integer")


def device(text: str) -> str:
    """``--device``: ``cpu``, ``cuda`` or ``cuda:N``, checked before anything is read."""
    kind, sep, index = text.partition(":")
    if text == "cpu" or (kind == "cuda" and (not sep or (index.isdigit() and index.isascii()))):
        return text
    raise argparse.ArgumentTypeError(f"invalid device {text!r}; choose cpu, cuda or cuda:N (e.g. cuda:0)")


SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def scheduler_address(text: str) -> str:
    """``--scheduler``: a Dask scheduler address ``[SCHEME://]HOST:PORT`` (or ``local``), checked
    before anything runs so that a typo is a usage error, not a traceback from ``distributed``."""
    if text == "local":
        return text
    scheme, sep, location = text.rpartition("://")
    scheme = scheme if sep else "tcp"
    host, colon, port = location.rpartition(":")
    if scheme not in SCHEDULER_SCHEMES:
        why = f"unknown scheme {scheme!r} (known: {', '.join(SCHEDULER_SCHEMES)})"
    elif not colon or not host:
        why = "it names no HOST:PORT"
    elif not (port.isdigit() and port.isascii() and 0 < int(port) < 65536):
        why = f"the port {port!r} is not a number from 1 to 65535"
    else:
        return text
    raise argparse.ArgumentTypeError(f"invalid Dask scheduler address {text!r}: {why}; "
                                     "expected e.g. tcp://host:8786")


def err(msg: str) -> None:
    """A message on stderr (stdout is kept for tables and JSON)."""
    print(msg, file=sys.stderr, flush=True)


def plural(count: int, noun: str) -> str:
    """``1 layer``, ``3 layers``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"

"""Run a third-party parser on a file's bytes under a time bound the reader can enforce.

Some parsers can spin forever on a damaged file inside C code: HDF5 loops at 100% CPU on a
global-heap collection whose object sizes do not add up, deaf to ``KeyboardInterrupt`` (no Python
code runs, so no signal handler does). A thread cannot be stopped and ``signal.alarm`` is not
delivered while C code runs, so :func:`bounded_call` runs the function in a forked child process
and kills it (``SIGKILL``) when ``timeout`` seconds pass. The child inherits the parent's imports,
so a call costs a fork (milliseconds), not a new interpreter. Its address space can be capped as
well (``memory``): HDF5 allocates what a damaged length field declares (gigabytes from a 20 kB
file) before it finds the data is not there. The result or a
:class:`~netinit.errors.NetinitError` comes back pickled through a pipe; any other exception in
the child becomes a :class:`~netinit.errors.CorruptFileError` naming the file.

Where ``os.fork`` does not exist (Windows), the function runs in-process, without the bound.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from netinit.errors import CorruptFileError, NetinitError
from netinit.formats.base import corrupt

__all__ = ["bounded_call"]


def _limit_memory(extra: int) -> None:
    """Cap the child's address space at its size now plus ``extra`` bytes (Linux ``RLIMIT_AS``):
    an allocation past it fails inside the parser (HDF5 reports it as an error) instead of
    taking the machine's memory."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            now = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = now + extra
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    except (ImportError, OSError, ValueError):  # not Linux: time bound only
        pass


def _child(fn: Callable[[], Any], path: Path, what: str, w: int, memory: int | None) -> None:
    for sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT):
        signal.signal(sig, signal.SIG_DFL)  # a crash ends the child quietly; the parent reports it
    if memory is not None:
        _limit_memory(memory)
    try:
        try:
            result: tuple[str, Any] = ("ok", fn())
        except NetinitError as exc:
            result = ("err", exc)
        except Exception as exc:  # noqa: BLE001 - the child reports every failure, as a NetinitError
            result = ("err", corrupt(path, what, exc))
        try:
            payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001
            payload = pickle.dumps(("err", corrupt(path, what, exc)))
        view = memoryview(payload)
        while view:
            view = view[os.write(w, view):]
    finally:
        os._exit(0)  # no atexit handlers, no flushing of the parent's buffers


def bounded_call(fn: Callable[[], Any], path: Path, *, timeout: float, what: str, variable: str,
                 memory: int | None = None) -> Any:
    """``fn()`` run in a child process killed after ``timeout`` seconds, its memory capped.

    Parameters
    ----------
    fn : callable
        Takes no argument; its result must pickle.
    path : Path
        The file ``fn`` reads, for messages.
    timeout : float
        Seconds before the child is killed and :class:`CorruptFileError` raised.
    what : str
        What ``fn`` does, for messages (``"reading the HDF5 structure"``).
    variable : str
        The environment variable that raises the bound, for messages.
    memory : int, optional
        Bytes the child may allocate beyond what it holds when forked (Linux); a failed
        allocation is the parser's error, reported as a :class:`CorruptFileError`.
    """
    if not hasattr(os, "fork"):
        return fn()
    r, w = os.pipe()
    with warnings.catch_warnings():  # Python >= 3.12 and JAX warn on fork in a threaded process;
        warnings.simplefilter("ignore", DeprecationWarning)  # the child runs only fn, on its one thread
        warnings.filterwarnings("ignore", message=r".*os\.fork\(\)", category=RuntimeWarning)
        pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(fn, path, what, w, memory)
    os.close(w)
    chunks: list[bytes] = []
    done = False
    try:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CorruptFileError(
                    f"{path}: {what} did not finish in {timeout:g} s (a damaged file can make the parser "
                    f"loop forever); stopped it (raise the bound with {variable}=SECONDS)")
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                chunk = os.read(r, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        done = True
    finally:
        os.close(r)
        if not done:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if not chunks:
        code = os.waitstatus_to_exitcode(status)
        how = f"the parser crashed (signal {-code})" if code < 0 else f"the parser exited with status {code}"
        raise CorruptFileError(f"{path}: {what} failed: {how}, in a child process; nothing of it ran here")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "err":
        raise value
    return value

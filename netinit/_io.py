"""Safe output: atomic writes and the refusal to overwrite an input file."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from netinit.errors import OutputError

__all__ = ["atomic_path", "check_not_input", "prepare_output_dir", "output_of", "remove_stale_temps", "temp_beside"]


def check_not_input(out: os.PathLike | str, *inputs: os.PathLike | str) -> None:
    """Raise :class:`OutputError` if ``out`` is (or links to) one of ``inputs``."""
    out_p = Path(out)
    for inp in inputs:
        inp_p = Path(inp)
        same = out_p.resolve() == inp_p.resolve()
        if not same and out_p.exists() and inp_p.exists():
            same = os.path.samefile(out_p, inp_p)
        if same:
            raise OutputError(f"{out}: the output path is the input file; choose another path")


#: a temporary file of :func:`atomic_path` / :func:`temp_beside`: ``.NAME.PID.XXXXXXXX.tmp`` (PID of the
#: writing process; files of earlier versions have no PID: ``.NAME.XXXXXXXX.tmp``)
_TEMP = re.compile(r"^\..+?\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp$")
_TEMP_TAIL = re.compile(r"^(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: a live process of another user
        return True
    return True


def _stale_temp(entry: str, name: str | None = None) -> bool:
    """Whether ``entry`` is a temporary file of a netinit write that was killed (its writer is gone).

    ``name`` restricts it to the temporary files of the output named ``name``.
    """
    if name is not None:
        prefix = f".{name}."
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            return False
        m = _TEMP_TAIL.match(entry[len(prefix):-len(".tmp")])
    else:
        m = _TEMP.match(entry)
    if m is None:
        return False
    return m["pid"] is None or not _alive(int(m["pid"]))


def remove_stale_temps(path: os.PathLike | str) -> list[Path]:
    """Remove the temporary files that killed writes of ``path`` left beside it; return them.

    A write killed by ``SIGKILL`` (or a power cut) cannot remove its own temporary file; the next
    write of the same output removes it. A temporary file whose writer still runs is kept.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for e in entries:
        if e.name.startswith(f".{p.name}.") and _stale_temp(e.name, p.name) and e.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e.path)
                removed.append(Path(e.path))
    return removed


def temp_beside(path: os.PathLike | str) -> Path:
    """A new empty temporary file beside ``path`` (hidden, named after it and this process).

    Raises :class:`OutputError` naming ``path`` (not the temporary name) when it cannot be made.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{path}: the folder {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the output ({exc.strerror or exc})") from None
    os.close(fd)
    return Path(tmp)


def output_of(tmp: os.PathLike | str) -> Path:
    """The output path whose temporary file (:func:`temp_beside`) ``tmp`` is; ``tmp`` itself otherwise.

    A writer that needs a scratch file of its own names it after the output with this, so that a
    killed run's scratch file is removed with the temporary file by the next write.
    """
    p = Path(tmp)
    m = re.match(r"^\.(?P<name>.+)\.\d+\.[a-z0-9_]{8}\.tmp$", p.name)
    return p.with_name(m["name"]) if m else p


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is untouched. Temporary files of
    earlier writes of ``path`` that were killed are removed first (:func:`remove_stale_temps`).
    An ``OSError`` about the temporary file is reported as an :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    remove_stale_temps(path)
    tmp_p = temp_beside(path)
    try:
        yield tmp_p
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_p, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode of a new file
        os.replace(tmp_p, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_p.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, OutputError) and str(tmp_p) in (
                str(exc.filename), str(exc.filename2)):
            raise OutputError(f"{path}: cannot write the output ({exc.strerror or exc})") from None
        raise


def prepare_output_dir(path: os.PathLike | str, *, owned: tuple[str, ...] = (), overwrite: bool = False) -> Path:
    """Create the output folder ``path``, refusing one that holds files netinit did not write.

    A folder is accepted when it is empty, when every entry is one of ``owned`` (outputs of an
    earlier run, which are replaced), or when ``overwrite`` is true. Temporary files that a killed
    run left there are removed first.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p}: exists and is not a folder")
    if p.is_dir():
        for e in p.iterdir():  # temporary files of a killed run are not foreign: remove them
            if _stale_temp(e.name) and e.is_file():
                with contextlib.suppress(FileNotFoundError):
                    e.unlink()
    if p.is_dir() and not overwrite:
        foreign = sorted(e.name for e in p.iterdir() if e.name not in owned)
        if foreign:
            shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise OutputError(
                f"{p}: the output folder already holds other files ({shown}); "
                "choose an empty folder or pass --force"
            )
    p.mkdir(parents=True, exist_ok=True)
    return p

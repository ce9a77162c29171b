"""Safe output: atomic writes and the refusal to overwrite an input file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from netinit.errors import OutputError

__all__ = ["atomic_path", "check_not_input", "prepare_output_dir"]


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


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{path}: the folder {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp_p = Path(tmp)
    try:
        yield tmp_p
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_p, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode of a new file
        os.replace(tmp_p, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_p.unlink()
        raise


def prepare_output_dir(path: os.PathLike | str, *, owned: tuple[str, ...] = (), force: bool = False) -> Path:
    """Create the output folder ``path``, refusing one that holds files netinit did not write.

    A folder is accepted when it is empty, when every entry is one of ``owned`` (outputs of an
    earlier run, which are replaced), or when ``force`` is true.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p}: exists and is not a folder")
    if p.is_dir() and not force:
        foreign = sorted(e.name for e in p.iterdir() if e.name not in owned)
        if foreign:
            shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise OutputError(
                f"{p}: the output folder already holds other files ({shown}); "
                "choose an empty folder or pass --force"
            )
    p.mkdir(parents=True, exist_ok=True)
    return p

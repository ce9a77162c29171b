"""One coverage-guided fuzz target per format: ``python bench/fuzz/target.py NAME [libFuzzer options] CORPUS...``.

Each input is written to a file with the format's suffix and read the way netinit reads
checkpoints: :func:`netinit.formats.load_checkpoint` with the format forced, every tensor's info
and values loaded, and the first tensor written back with :func:`save_checkpoint` (the writer's
checks run on the same hostile structure). A :class:`~netinit.errors.NetinitError` is the expected
answer to a damaged file; any other exception is an *escape*: it is recorded (one JSON line in
``ESCAPES`` with the input saved beside it) and fuzzing goes on. Crashes, timeouts (hangs) and
out-of-memory are libFuzzer's to catch (``-timeout``, ``-rss_limit_mb``); :mod:`run` counts them.

netinit's own modules are instrumented (atheris); numpy, torch, h5py, onnx are not, so coverage
is that of netinit's readers. The Keras HDF5 walk runs in a forked child
(:mod:`netinit.formats._bounded`), whose coverage the fuzzer does not see: the ``keras`` target
runs it so, bounded at 3 s (a stopped HDF5 loop is counted as ``bounded_hangs``); the ``h5`` target
runs it in-process (``NETINIT_H5_TIMEOUT=0``), guided by its coverage, where a loop would be a hang.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

#: name -> (file suffix, registry format)
TARGETS = {
    "safetensors": (".safetensors", "safetensors"),
    "npz": (".npz", "npz"),
    "pt": (".pt", "torch"),
    "torchscript": (".jit", "torchscript"),
    "flax": (".msgpack", "flax"),
    "onnx": (".onnx", "onnx"),
    "keras": (".keras", "keras"),
    "h5": (".weights.h5", "keras"),
}
MAX_TENSORS = 64


def _setup_env(name: str) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    # keras: the reader as shipped, its HDF5 walk in a child bounded at 3 s (the fuzzer does not see
    # the child's coverage); h5: the walk in-process (0: no bound), so the fuzzer is guided by the
    # walk's coverage and an HDF5 loop the structure check misses stops libFuzzer as a hang
    os.environ.setdefault("NETINIT_H5_TIMEOUT", "0" if name == "h5" else "3")


def make_one_input(name: str, escapes: Path):
    """The function libFuzzer calls with each input (``bytes``) for target ``name``."""
    import numpy as np

    from netinit.errors import NetinitError
    from netinit.formats import load_checkpoint, save_checkpoint

    suffix, fmt = TARGETS[name]
    work = Path(tempfile.mkdtemp(prefix=f"netinit-fuzz-{name}-"))
    src, out = work / f"input{suffix}", work / f"output{suffix}"
    escapes.parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    counts = {"bounded_hangs": 0}

    def one_input(data: bytes) -> None:
        src.write_bytes(data)
        try:
            with load_checkpoint(src, format=fmt) as ckpt:
                names = ckpt.names()[:MAX_TENSORS]
                values = {}
                for n in names:
                    ckpt.info(n)
                    values[n] = ckpt.load(n)
                first = next((n for n in names if values[n].dtype.kind == "f"), None)
                if first is not None:
                    save_checkpoint(ckpt, out, {first: np.asarray(values[first])})
        except NetinitError as exc:
            if "did not finish in" in str(exc):
                counts["bounded_hangs"] += 1
                _record(escapes, name, data, exc, kind="bounded_hang", seen=seen)
        except Exception as exc:  # noqa: BLE001 - an escape: record it, go on fuzzing
            _record(escapes, name, data, exc, kind="escape", seen=seen)
        finally:
            for f in work.iterdir():  # outputs, external-data copies, a killed write's leftovers
                if f.is_file() and f != src:
                    f.unlink()

    return one_input


def _record(escapes: Path, name: str, data: bytes, exc: BaseException, *, kind: str, seen: set[str]) -> None:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "netinit" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    key = f"{kind}:{type(exc).__name__}:{where}"
    digest = hashlib.sha1(data).hexdigest()[:16]
    entry = {"target": name, "kind": kind, "type": type(exc).__name__, "where": where,
             "message": " ".join(str(exc).split())[:300], "input": f"{kind}-{digest}", "new": key not in seen}
    if key not in seen:  # keep one input per kind of escape and place
        (escapes.parent / f"{kind}-{digest}").write_bytes(data)
        seen.add(key)
    with escapes.open("a") as f:
        f.write(json.dumps(entry) + "\n")


def main() -> None:
    import atheris

    name = sys.argv[1]
    _setup_env(name)
    if name not in TARGETS:
        raise SystemExit(f"unknown target {name!r}; valid: {', '.join(TARGETS)}")
    escapes = Path(os.environ.get("NETINIT_FUZZ_ESCAPES", f"bench/results/fuzz_findings/{name}/escapes.jsonl"))
    with atheris.instrument_imports(include=["netinit"]):
        import netinit.formats  # noqa: F401 - registers (and instruments) every reader
        import netinit.formats._bounded  # noqa: F401
    import torch

    torch.set_num_threads(1)
    if name == "h5":  # the walk in-process: cap memory as the shipped reader caps its child
        from netinit.formats._bounded import _limit_memory
        from netinit.formats.limits import current_limits

        _limit_memory(current_limits().h5_memory + 2 * 65536)
    atheris.Setup([sys.argv[0]] + sys.argv[2:], make_one_input(name, escapes))
    atheris.Fuzz()


if __name__ == "__main__":
    main()

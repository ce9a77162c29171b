from __future__ import annotations

import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch

from netinit.errors import CorruptFileError, ShapeError, UnsafeCheckpointError
from netinit.formats import detect_format, load_checkpoint, save_checkpoint
from netinit.layers import find_layers

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


class SmallCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.features = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
        self.head = torch.nn.Linear(4 * 4 * 4, 5)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
            self.features[1].running_mean.copy_(torch.randn(4, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


@pytest.fixture(params=["mlp", "cnn"])
def scripted(request, tmp_path):
    module = _mlp() if request.param == "mlp" else SmallCNN()
    module.eval()
    p = tmp_path / f"{request.param}.pt"
    torch.jit.script(module).save(str(p))
    x = torch.randn(2, 6) if request.param == "mlp" else torch.randn(2, 2, 6, 6)
    return p, module, x


def test_reads_the_state_dict_without_running_code(scripted):
    p, module, _ = scripted
    assert detect_format(p).name == "torchscript"
    ckpt = load_checkpoint(p)
    sd = module.state_dict()
    assert ckpt.names() == list(sd)
    for name, t in sd.items():
        assert ckpt.info(name).shape == tuple(t.shape)
        assert ckpt.info(name).dtype == str(t.dtype).split(".")[-1]
        np.testing.assert_array_equal(ckpt.load(name), t.numpy())
    assert ckpt.metadata["module"].startswith("__torch__.")
    assert find_layers(ckpt)[0]


def test_rewritten_archive_runs_with_the_new_weights(scripted, tmp_path):
    p, module, x = scripted
    ckpt = load_checkpoint(p)
    layers, _ = find_layers(ckpt)
    rng = np.random.default_rng(0)
    new = {lay.name: rng.normal(size=lay.shape).astype(np.float32) for lay in layers}
    out = save_checkpoint(ckpt, tmp_path / "rewired.pt", new)
    assert zipfile.ZipFile(out).testzip() is None  # every CRC matches its record
    with zipfile.ZipFile(p) as a, zipfile.ZipFile(out) as b:
        assert a.namelist() == b.namelist()
        for name in a.namelist():
            if "/code/" in name or name.endswith(("constants.pkl", "data.pkl")):
                assert a.read(name) == b.read(name)
    loaded = torch.jit.load(str(out))
    with torch.no_grad():
        module.load_state_dict({k: torch.from_numpy(v) for k, v in new.items()}, strict=False)
        want = module(x)
        got = loaded(x)
    assert torch.equal(got, want)


def test_round_trip_without_changes_is_byte_identical(scripted, tmp_path):
    p, _, _ = scripted
    out = save_checkpoint(load_checkpoint(p), tmp_path / "copy.pt", {})
    assert out.read_bytes() == p.read_bytes()


def test_half_precision_archive(tmp_path):
    m = torch.jit.script(torch.nn.Linear(4, 3).to(torch.bfloat16))
    p = tmp_path / "h.jit"
    m.save(str(p))
    ckpt = load_checkpoint(p)
    assert ckpt.info("weight").dtype == "bfloat16"
    w = ckpt.load("weight")
    np.testing.assert_array_equal(w, m.weight.detach().float().numpy())
    out = save_checkpoint(ckpt, tmp_path / "h2.jit", {"weight": w[::-1].copy()})
    again = torch.jit.load(str(out))
    assert again.weight.dtype == torch.bfloat16
    assert torch.equal(again.weight, m.weight.flip(0))


def test_shared_storage_views(tmp_path):
    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            base = torch.arange(24, dtype=torch.float32)
            self.register_buffer("a", base[:12].view(3, 4))
            self.register_buffer("b", base[12:].view(4, 3).t())  # a transposed view into the same storage

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ self.a.t() + (x @ self.b).sum()

    p = tmp_path / "t.pt"
    torch.jit.script(Tied()).save(str(p))
    ckpt = load_checkpoint(p)
    np.testing.assert_array_equal(ckpt.load("b"), np.arange(12, 24, dtype=np.float32).reshape(4, 3).T)
    out = save_checkpoint(ckpt, tmp_path / "t2.pt", {"b": -ckpt.load("b")})
    again = torch.jit.load(str(out))
    assert torch.equal(again.b, -torch.arange(12, 24, dtype=torch.float32).view(4, 3).t())
    assert torch.equal(again.a, torch.arange(12, dtype=torch.float32).view(3, 4))


def test_wrong_shape_refused_and_nothing_written(scripted, tmp_path):
    p, _, _ = scripted
    ckpt = load_checkpoint(p)
    name = find_layers(ckpt)[0][0].name
    with pytest.raises(ShapeError, match=rf"'{name}' replacement has shape \(1, 1\)"):
        save_checkpoint(ckpt, tmp_path / "x.pt", {name: np.zeros((1, 1))})
    assert not (tmp_path / "x.pt").exists()


def _with_data_pkl(src, dst, payload: bytes):
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for info in a.infolist():
            b.writestr(info, payload if info.filename.endswith("/data.pkl") else a.read(info))


@pytest.mark.parametrize("module,name,arg", [
    ("os", "system", "touch {marker}"),
    ("builtins", "eval", "open({marker!r}, 'w').write('x')"),
    ("subprocess", "call", "touch {marker}"),
])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, module, name, arg):
    src = tmp_path / "ok.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(src))
    marker = tmp_path / "pwned"
    text = arg.format(marker=str(marker)).encode()
    # PROTO 2; GLOBAL module name; (arg,) ; REDUCE ; STOP  -- written by hand, opcode by opcode
    payload = (pickle.PROTO + b"\x02" + pickle.GLOBAL + f"{module}\n{name}\n".encode()
               + pickle.BINUNICODE + len(text).to_bytes(4, "little") + text + pickle.TUPLE1
               + pickle.REDUCE + pickle.STOP)
    bad = tmp_path / "evil.pt"
    _with_data_pkl(src, bad, payload)
    with pytest.raises(UnsafeCheckpointError, match=rf"evil\.pt: data\.pkl asks for {module}\.{name}, .*ran nothing"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_global_hidden_inside_a_module_record_is_refused(tmp_path):
    src = tmp_path / "ok.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(src))
    payload = (pickle.PROTO + b"\x02" + pickle.GLOBAL + b"__torch__.torch.nn.modules.linear\nLinear\n"
               + pickle.EMPTY_TUPLE + pickle.NEWOBJ + pickle.EMPTY_DICT + pickle.MARK
               + pickle.BINUNICODE + (4).to_bytes(4, "little") + b"evil"
               + pickle.GLOBAL + b"posix\nsystem\n" + pickle.SETITEMS + pickle.BUILD + pickle.STOP)
    bad = tmp_path / "evil.pt"
    _with_data_pkl(src, bad, payload)
    with pytest.raises(UnsafeCheckpointError, match=r"asks for posix\.system"):
        load_checkpoint(bad)


@pytest.mark.parametrize("cut", [100, 0.5, -30])
def test_truncated_archive(scripted, tmp_path, cut):
    p, _, _ = scripted
    data = p.read_bytes()
    bad = tmp_path / "bad.jit"
    bad.write_bytes(data[: int(len(data) * cut) if isinstance(cut, float) else cut])
    with pytest.raises(CorruptFileError, match=r"bad\.jit: "):
        load_checkpoint(bad)


def test_missing_storage_record(scripted, tmp_path):
    p, _, _ = scripted
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(p) as a, zipfile.ZipFile(bad, "w") as b:
        for info in a.infolist():
            if not info.filename.endswith("/data/0"):
                b.writestr(info, a.read(info))
    with pytest.raises(CorruptFileError, match=r"bad\.pt: tensor '.*' needs storage record '.*data/0', missing"):
        load_checkpoint(bad)


def test_input_never_modified(scripted, tmp_path):
    p, _, _ = scripted
    keep = tmp_path / "keep.pt"
    shutil.copyfile(p, keep)
    ckpt = load_checkpoint(p)
    name = find_layers(ckpt)[0][0].name
    save_checkpoint(ckpt, tmp_path / "o.pt", {name: np.zeros(ckpt.info(name).shape)})
    assert p.read_bytes() == keep.read_bytes()


def test_shared_references_cannot_make_the_walk_explode(tmp_path):
    src = tmp_path / "ok.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(src))
    # a list holding the previous list twice, 80 levels deep: 2**80 paths, a few hundred bytes
    payload = pickle.PROTO + b"\x02" + pickle.EMPTY_LIST + pickle.BINPUT + b"\x00"
    for _ in range(80):
        payload += pickle.MARK + pickle.BINGET + b"\x00" + pickle.BINGET + b"\x00" + pickle.LIST
        payload += pickle.BINPUT + b"\x00"
    payload += pickle.STOP
    bad = tmp_path / "deep.pt"
    _with_data_pkl(src, bad, payload)
    ckpt = load_checkpoint(bad)  # the depth limit stops the walk; nothing to show
    assert ckpt.names() == []

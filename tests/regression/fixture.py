"""Outputs of netinit on bundled and generated checkpoints, for the regression fixture.

:func:`outputs` computes every recorded output into a dict of plain values (tables as CSV text,
arrays as SHA-256 digests of their bytes); ``python -m tests.regression.fixture`` writes them to
``tests/regression/data/outputs.json``, and ``test_regression.py`` compares a fresh run with it.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "data" / "examples"
FIXTURE = Path(__file__).with_name("data") / "outputs.json"


def digest(a: Any) -> str:
    """SHA-256 of an array's dtype, shape and bytes (a torch tensor goes through numpy)."""
    if hasattr(a, "detach"):
        import torch

        t = a.detach().cpu()
        a = t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:32]


def zoo() -> Any:
    """A torch model holding every kind of weight layer netinit knows (seeded, CPU)."""
    import torch
    import torch.nn as nn

    torch.manual_seed(0)  # only here, inside a fixture builder: the zoo's default init
    m = nn.Module()
    m.fc = nn.Linear(12, 9)
    m.conv1 = nn.Conv1d(4, 6, 3)
    m.conv2 = nn.Conv2d(4, 6, (3, 2))
    m.conv3 = nn.Conv3d(2, 4, 2)
    m.grouped = nn.Conv2d(6, 9, 3, groups=3)
    m.dwconv = nn.Conv2d(6, 6, 3, groups=6)
    m.deconv = nn.ConvTranspose2d(6, 4, 3)
    m.deconv_grouped = nn.ConvTranspose2d(6, 8, 2, groups=2)
    m.attn = nn.MultiheadAttention(8, 2)
    m.head = nn.Linear(9, 3)
    return m


def _state_dict_file(model: Any, folder: Path, name: str) -> Path:
    from safetensors.torch import save_file

    path = folder / name
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def outputs() -> dict[str, Any]:
    import torch

    import netinit
    from netinit.formats import load_checkpoint

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        zoo_file = _state_dict_file(zoo(), tmp, "zoo.safetensors")
        cases = {
            "mlp_digits": (EXAMPLES / "mlp_digits.safetensors", {"centrality": "auto"}),
            "mlp_digits_init_pt": (EXAMPLES / "mlp_digits_init.pt", {}),
            "cnn_digits": (EXAMPLES / "cnn_digits.safetensors", {"centrality": "exact"}),
            "zoo": (zoo_file, {"centrality": "sampled", "k": 8, "seed": 3}),
        }
        for key, (path, opts) in cases.items():
            a = netinit.analyze(path, **opts)
            out[f"analyze/{key}/layers"] = a.layers.to_csv(index=False)
            out[f"analyze/{key}/neurons"] = a.neurons.to_csv(index=False)
            out[f"analyze/{key}/skipped"] = a.skipped.to_csv(index=False)
            out[f"analyze/{key}/chains"] = a.chains.to_csv(index=False)

        # checkpoint rewiring: safetensors bytes are deterministic; .pt compared by tensor values
        for key, path, suffix in (("mlp_init_st", EXAMPLES / "mlp_digits_init.safetensors", ".safetensors"),
                                  ("mlp_init_pt", EXAMPLES / "mlp_digits_init.pt", ".pt"),
                                  ("zoo", zoo_file, ".safetensors")):
            for seed, passes in ((0, "both"), (7, "rows")):
                dst = tmp / f"{key}_{seed}{suffix}"
                report = netinit.rewire_checkpoint(path, dst, seed=seed, passes=passes)
                out[f"rewire_checkpoint/{key}/{seed}/report"] = report.to_csv(index=False)
                ck = load_checkpoint(dst)
                out[f"rewire_checkpoint/{key}/{seed}/tensors"] = {
                    n: digest(ck.load(n)) for n in ck.names()}

        # rewiring of torch modules in place
        for seed, stab in ((0, 0), (5, 3)):
            model = zoo()
            table = netinit.rewire_model_(model, seed=seed, stabilize=stab)
            out[f"rewire_model/{seed}/{stab}/report"] = table.to_csv(index=False)
            out[f"rewire_model/{seed}/{stab}/params"] = {n: digest(p) for n, p in model.state_dict().items()}

        # PA on matrices, stabilize, strength variances
        rng = np.random.default_rng(11)
        W = rng.normal(size=(40, 30))
        out["pa_rewire/numpy"] = digest(netinit.pa_rewire(W, rng=1))
        t = torch.tensor(W, dtype=torch.float32)
        netinit.pa_rewire_(t, generator=torch.Generator().manual_seed(2))
        out["pa_rewire_/torch"] = digest(t)
        from netinit.rewire import strength_variances

        out["strength_variances"] = [float(v) for v in strength_variances(W)]
        out["strength_stats"] = {k: float(v) for k, v in netinit.strength_stats(W).items()}

        # diversity initialisation and measures
        for method in ("symmetric", "greedy", "backprop"):
            w = torch.empty(16, 24)
            netinit.decorrelated_(w, generator=torch.Generator().manual_seed(4), method=method)
            out[f"decorrelated_/{method}"] = digest(w)
        d = netinit.decorrelate(W)
        out["decorrelate/numpy"] = digest(d[0] if isinstance(d, tuple) else d)
        out["weight_diversity"] = {k: float(v) for k, v in netinit.weight_diversity(W).items()}
        x = np.random.default_rng(5).normal(size=(50, 64))
        a = netinit.analyze(EXAMPLES / "mlp_digits.safetensors", data=x)
        out["analyze/mlp_digits_data/layers"] = a.layers.to_csv(index=False)

        # the experiments' paired initialisation
        out["experiments/initialise"] = initialise_fingerprints()
    return out


def _experiments(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(f"netinit.experiments.{name}")
    except ModuleNotFoundError:
        return importlib.import_module(f"analysis.{name}")


def initialise_fingerprints() -> dict[str, Any]:
    """Fingerprints of the experiments' initialisation for a few methods and architectures."""
    config, models = _experiments("config"), _experiments("models")
    out = {}
    for arch, extra in (("mlp", {"hidden": (16, 12)}), ("cnn", {"channels": (4, 6)})):
        for spec in ("default", "default+pa", "kaiming_normal+stabilize+pa", "orthogonal+decorrelated",
                     "xavier_normal+decorrelated_backprop"):
            model = models.build_model(config.ModelConfig(arch=arch, **extra), 64, 10)
            fp = models.initialise(model, config.parse_method(spec), 3,
                                   config.InitConfig(stabilize_k=3, backprop_steps=5))
            out[f"{arch}/{spec}"] = fp
    return out


def main() -> None:
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(outputs(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    main()

"""Benchmark: cost of the diversity tools (netinit.diversity).

Cases:

* **regulariser overhead per training step**: one SGD step (forward, cross-entropy, backward,
  update) with and without each decorrelation penalty attached by
  :class:`netinit.diversity.Decorrelation` (constant schedule, so always on; and ``adaptive`` for
  the activation penalties, which adds a no-grad ``|r|`` measure per layer), in the same run, on
  the same model weights and batch; the variants are interleaved round by round and the median
  per-step time is reported. Models: the experiment's MLP (64-32-10, batch 64), a larger MLP
  (784-512-512-10, batch 128) and a small CNN (1x28x28 -> conv 32 -> conv 64 -> linear, batch
  64). The penalty of the activations costs ``O(batch * n^2)`` per layer.
* **decorrelated initialisation**: time and residual correlation (mean and max ``|r|`` of the
  rows, Pearson) of ``decorrelated_`` (symmetric, greedy with 4 candidates, backprop with 100
  steps) beside the base ``kaiming_uniform_`` and ``orthogonal_``, for Linear shapes including
  ``n_out > n_in`` and a conv kernel (symmetric with ``overcomplete="blocks"``, the default, and
  ``"frame"``); the lowest reachable mean ``r^2`` is given for the over-complete shapes.
* **diversity()**: one call (forward pass with hooks + weight and activation summaries) on the
  larger MLP with a batch of 512.

Run: ``python bench/bench_diversity.py [--device cuda] [--threads 1]`` (about a minute on 2 CPU
cores); writes ``bench/results/diversity.json`` (``diversity_cuda.json`` on a GPU) and prints a
table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from netinit.diversity import Decorrelation, decorrelated_, diversity, weight_diversity  # noqa: E402

SEED = 0
KINDS = ("decov", "activation_correlation", "weight_correlation", "orthogonality")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _models() -> dict[str, tuple[nn.Module, tuple[int, ...], int]]:
    """name -> (model, input shape without batch, batch size)."""
    mlp_small = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    mlp_large = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    cnn = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(4),
                        nn.Flatten(), nn.Linear(64 * 6 * 6, 10))
    return {"mlp_64-32-10_b64": (mlp_small, (64,), 64), "mlp_784-512-512-10_b128": (mlp_large, (784,), 128),
            "cnn_28x28_c32-c64_b64": (cnn, (1, 28, 28), 64)}


def _seed_params(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                nn.init.kaiming_uniform_(p, a=5**0.5, generator=g)
            else:
                p.uniform_(-0.05, 0.05, generator=g)


def step_overhead(device: torch.device, rounds: int, steps: int) -> list[dict]:
    results = []
    for name, (proto, shape, batch) in _models().items():
        _seed_params(proto, SEED)
        g = torch.Generator().manual_seed(SEED + 1)
        x = torch.randn(batch, *shape, generator=g).to(device)
        y = torch.randint(0, 10, (batch,), generator=g).to(device)
        variants = {"baseline": None}
        variants.update({k: (k, "constant") for k in KINDS})
        variants.update({f"{k}+adaptive": (k, "adaptive") for k in ("decov", "activation_correlation")})
        setups = {}
        for v, spec in variants.items():
            model = copy.deepcopy(proto).to(device)
            opt = torch.optim.SGD(model.parameters(), lr=1e-3)
            reg = None if spec is None else Decorrelation(model, kind=spec[0], schedule=spec[1], coef=0.1)
            setups[v] = (model, opt, reg)
        times = {v: [] for v in variants}

        def run(v, n):
            model, opt, reg = setups[v]
            for _ in range(n):
                loss = nn.functional.cross_entropy(model(x), y)
                if reg is not None:
                    loss = loss + reg()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        for v in variants:  # warm-up
            run(v, 3)
        for _ in range(rounds):
            for v in variants:
                _sync(device)
                t0 = time.perf_counter()
                run(v, steps)
                _sync(device)
                times[v].append((time.perf_counter() - t0) / steps)
        base = statistics.median(times["baseline"])
        for v in variants:
            med = statistics.median(times[v])
            results.append({"case": f"step/{name}/{v}", "model": name, "variant": v,
                            "median_step_ms": 1e3 * med, "min_step_ms": 1e3 * min(times[v]),
                            "overhead": med / base - 1.0, "rounds": rounds, "steps_per_round": steps,
                            "regularised_layers": None if setups[v][2] is None else setups[v][2].layers})
            print(f"{'step/' + name + '/' + v:58s} {1e3 * med:8.3f} ms  {100 * (med / base - 1):+7.1f}%",
                  flush=True)
        for _, _, reg in setups.values():
            if reg is not None:
                reg.remove()
    return results


def init_cost(device: torch.device, repeats: int) -> list[dict]:
    shapes = [(32, 64), (256, 784), (512, 512), (1024, 256), (64, 32, 3, 3)]
    methods = {
        "kaiming_uniform (base)": lambda w, g: nn.init.kaiming_uniform_(w, generator=g),
        "orthogonal_": lambda w, g: nn.init.orthogonal_(w, generator=g),
        "decorrelated_ symmetric": lambda w, g: decorrelated_(w, generator=g),
        "decorrelated_ symmetric frame": lambda w, g: decorrelated_(w, generator=g, overcomplete="frame"),
        "decorrelated_ greedy (4 candidates)": lambda w, g: decorrelated_(w, generator=g, method="greedy"),
        "decorrelated_ backprop (100 steps)": lambda w, g: decorrelated_(w, generator=g, method="backprop"),
    }
    results = []
    for shape in shapes:
        n, d = shape[0], int(torch.tensor(shape[1:]).prod())
        for label, fn in methods.items():
            secs, mean_r, max_r = [], [], []
            for r in range(repeats):
                w = torch.empty(*shape, device=device)
                g = torch.Generator(device=device).manual_seed(SEED + r)
                _sync(device)
                t0 = time.perf_counter()
                fn(w, g)
                _sync(device)
                secs.append(time.perf_counter() - t0)
                s = weight_diversity(w)
                mean_r.append(s["mean_abs_r"])
                max_r.append(s["max_abs_r"])
            results.append({"case": f"init/{'x'.join(map(str, shape))}/{label}", "shape": list(shape),
                            "method": label, "median_seconds": statistics.median(secs),
                            "mean_abs_r": statistics.mean(mean_r), "max_abs_r": statistics.mean(max_r),
                            "exact_possible": n <= d - 1,
                            "bound_mean_sq_r": 0.0 if n <= d - 1 else (n / (d - 1) - 1) / (n - 1),
                            "repeats": repeats})
            print(f"{'init/' + 'x'.join(map(str, shape)) + '/' + label:58s} {1e3 * statistics.median(secs):8.2f} ms"
                  f"  mean|r| {statistics.mean(mean_r):.2e}  max|r| {statistics.mean(max_r):.2e}", flush=True)
    return results


def diversity_cost(device: torch.device, repeats: int) -> list[dict]:
    model, shape, _ = _models()["mlp_784-512-512-10_b128"]
    _seed_params(model, SEED)
    model = model.to(device)
    x = torch.randn(512, *shape, generator=torch.Generator().manual_seed(SEED)).to(device)
    secs = []
    diversity(model, x)
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        diversity(model, x, activation="relu")
        _sync(device)
        secs.append(time.perf_counter() - t0)
    print(f"{'diversity/mlp_784-512-512-10/batch512':58s} {1e3 * statistics.median(secs):8.2f} ms", flush=True)
    return [{"case": "diversity/mlp_784-512-512-10/batch512", "median_seconds": statistics.median(secs),
             "repeats": repeats}]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    default = "diversity.json" if device.type == "cpu" else f"diversity_{device.type}.json"
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / default
    t0 = time.perf_counter()
    cases = step_overhead(device, args.rounds, args.steps) + init_cost(device, 3) + diversity_cost(device, 5)
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
                    "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seed": SEED,
        "total_seconds": time.perf_counter() - t0,
        "cases": cases,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, out)
    print(f"\nwritten to {out} in {report['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()

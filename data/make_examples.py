"""Make the example checkpoints bundled under ``data/examples/`` (deterministic, a few seconds).

Trains, on scikit-learn's digits (8x8 images, 10 classes; shipped with scikit-learn):

* ``mlp_digits``: an MLP 64-128-64-10, saved before training (``mlp_digits_init``) and after,
  as safetensors and as a PyTorch state dict;
* ``cnn_digits``: a small CNN (two 3x3 convolutions, a linear head), as safetensors.

Run ``python data/make_examples.py`` to recreate them; files are written atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from netinit.experiments.datasets import load_dataset

OUT = Path(__file__).resolve().parent / "examples"
SEED = 0


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )


def cnn() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(128, 10),
    )


def digits(image: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The training split of ``netinit.experiments.datasets.load_dataset("digits")`` (standardised), as used by
    ``netinit analyze --data digits``."""
    d = load_dataset("digits", seed=SEED)
    x = d.X_train
    if image:
        x = x.reshape(-1, 1, 8, 8)
    return x, d.y_train


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _save(state: dict, name: str, meta: dict[str, str]) -> None:
    state = {k: v.detach().contiguous().clone() for k, v in state.items()}
    for suffix, writer in ((".safetensors", lambda p: save_file(state, p, metadata=meta)),
                           (".pt", lambda p: torch.save(state, p))):
        if suffix == ".pt" and name == "cnn_digits":
            continue
        fd, tmp = tempfile.mkstemp(dir=OUT, suffix=suffix)
        os.close(fd)
        writer(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, OUT / f"{name}{suffix}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)  # module constructors draw from the global generator
    model = mlp()
    _save(model.state_dict(), "mlp_digits_init", {"model": "mlp 64-128-64-10", "trained": "no"})
    acc = train(model, *digits(image=False), epochs=20, seed=SEED)
    _save(model.state_dict(), "mlp_digits", {"model": "mlp 64-128-64-10", "train_accuracy": f"{acc:.4f}"})
    torch.manual_seed(SEED + 1)
    net = cnn()
    acc_c = train(net, *digits(image=True), epochs=10, seed=SEED + 1)
    _save(net.state_dict(), "cnn_digits", {"model": "cnn 2x conv3x3 + linear", "train_accuracy": f"{acc_c:.4f}"})
    print(f"mlp train accuracy {acc:.4f}; cnn train accuracy {acc_c:.4f}; written to {OUT}")


if __name__ == "__main__":
    main()

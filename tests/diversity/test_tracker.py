"""DiversityTracker: records over training into a tidy table and an atomically written CSV."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from netinit.diversity import DiversityTracker
from netinit.errors import DataError, OutputError


def _setup(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5, generator=g)
    x = torch.randn(40, 4, generator=g)
    y = torch.randint(0, 2, (40,), generator=g)
    return model, x, y


def _train(model, tracker, x, y, epochs=2, steps=3):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(epochs):
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            tracker.after_step()
        tracker.after_epoch(test_acc=0.5)


def test_every_epoch_records_tidy_rows():
    model, x, y = _setup()
    tr = DiversityTracker(model, x, "epoch", layers="0", activation="relu")
    tr.record(test_acc=0.1)
    _train(model, tr, x, y)
    f = tr.frame
    assert list(f.columns) == ["epoch", "step", "layer", "measure", "value"]
    assert sorted(f["epoch"].unique()) == [0, 1, 2]
    assert sorted(f["step"].unique()) == [0, 3, 6]
    assert set(f.loc[f["layer"] == "0", "measure"]) >= {"weight_mean_abs_r", "act_effective_n", "dead_neurons"}
    acc = f[f["measure"] == "test_acc"]
    assert acc["layer"].tolist() == ["", "", ""] and acc["value"].tolist() == [0.1, 0.5, 0.5]
    assert not f["value"].isna().any()


def test_every_k_steps_records_at_multiples_and_logs_epoch_values():
    model, x, y = _setup(1)
    tr = DiversityTracker(model, x, 2)
    _train(model, tr, x, y, epochs=2, steps=3)
    measured = tr.frame[tr.frame["layer"] != ""]
    assert sorted(measured["step"].unique()) == [2, 4, 6]
    assert tr.frame[tr.frame["measure"] == "test_acc"]["step"].tolist() == [3, 6]


def test_weight_only_without_data():
    model, _, _ = _setup(2)
    tr = DiversityTracker(model)
    tr.record()
    assert not tr.frame["measure"].str.startswith("act_").any()
    assert set(tr.frame["layer"]) == {"0", "2"}


def test_csv_written_atomically_after_each_record(tmp_path):
    model, x, y = _setup(3)
    path = tmp_path / "div.csv"
    tr = DiversityTracker(model, x, path=path)
    tr.record()
    first = pd.read_csv(path, keep_default_na=False)
    assert len(first) == len(tr.frame)
    _train(model, tr, x, y, epochs=1, steps=1)
    again = pd.read_csv(path, keep_default_na=False)
    pd.testing.assert_frame_equal(again, tr.frame, check_dtype=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["div.csv"]  # no temporary file left
    out = tr.to_csv(tmp_path / "copy.csv")
    assert out.exists()


def test_bad_arguments(tmp_path):
    model, x, _ = _setup(4)
    with pytest.raises(ValueError, match="every must be 'epoch' or a positive int"):
        DiversityTracker(model, x, every=0)
    with pytest.raises(ValueError, match="every must be 'epoch' or a positive int"):
        DiversityTracker(model, x, every="batch")
    with pytest.raises(OutputError, match="is a folder"):
        DiversityTracker(model, x, path=tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        DiversityTracker(model, x, path=tmp_path / "no" / "such.csv")
    with pytest.raises(ValueError, match="activation must be None"):
        DiversityTracker(model, x, activation="swish")
    with pytest.raises(DataError, match="at least 2 samples"):
        DiversityTracker(model, x[:1]).record()

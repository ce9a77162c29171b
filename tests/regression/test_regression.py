"""Today's outputs against the regression fixture (``tests/regression/data/outputs.json``).

Tables are compared on the fixture's columns (a table may gain columns) with rows matched by their
keys (model order may differ from the fixture's order); digests of arrays and files must match
exactly. Regenerate with ``python -m tests.regression.fixture`` only when a change of numbers is
intended, and say which and why in the commit.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from tests.regression.fixture import FIXTURE, outputs

_KEYS = {"layers": ["layer"], "neurons": ["layer", "side", "neuron"], "skipped": ["name"],
         "chains": ["layer_a", "layer_b"], "report": ["layer"], "": []}


@pytest.fixture(scope="module")
def fresh():
    return outputs()


def _expected():
    return json.loads(FIXTURE.read_text())


def _table(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), keep_default_na=True)


def _compare_tables(key: str, old_text: str, new_text: str) -> None:
    old, new = _table(old_text), _table(new_text)
    missing = [c for c in old.columns if c not in new.columns]
    assert not missing, f"{key}: columns gone: {missing}"
    assert len(old) == len(new), f"{key}: {len(old)} rows before, {len(new)} now"
    keys = [k for k in _KEYS.get(key.rsplit("/", 1)[-1], []) if k in old.columns]
    new = new[list(old.columns)]
    if keys:
        old = old.sort_values(keys, kind="stable").reset_index(drop=True)
        new = new.sort_values(keys, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(new, old, check_exact=False, rtol=1e-12, atol=0, obj=key)


@pytest.mark.parametrize("key", sorted(_expected()))
def test_output_unchanged(key, fresh):
    old, new = _expected()[key], fresh[key]
    if isinstance(old, str) and "," in old.split("\n", 1)[0]:
        _compare_tables(key, old, new)
    elif isinstance(old, list):
        np.testing.assert_allclose(new, old, rtol=1e-12, atol=0)
    else:
        assert new == old, key


def test_fixture_covers_every_output(fresh):
    assert sorted(fresh) == sorted(_expected())

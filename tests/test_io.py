from __future__ import annotations

import numpy as np
import pytest

from netinit._io import atomic_path, prepare_output_dir
from netinit._rng import as_generator, layer_generator, layer_seed_sequence
from netinit.errors import OutputError


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done" and list(tmp_path.iterdir()) == [target]
    assert target.stat().st_mode & 0o044  # readable by others like an ordinary new file


def test_output_dir_refuses_foreign_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"already holds other files \(notes\.txt\)"):
        prepare_output_dir(tmp_path, owned=("layers.csv",))
    assert prepare_output_dir(tmp_path, overwrite=True) == tmp_path
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        prepare_output_dir(f)


def test_seed_zero_is_a_seed_and_layers_get_own_streams():
    a = as_generator(0).random(3)
    assert np.array_equal(a, as_generator(0).random(3))
    assert not np.array_equal(a, as_generator(1).random(3))
    x = layer_generator(0, "fc1.weight").random(4)
    assert np.array_equal(x, layer_generator(0, "fc1.weight").random(4))
    assert not np.array_equal(x, layer_generator(0, "fc2.weight").random(4))
    assert not np.array_equal(x, layer_generator(1, "fc1.weight").random(4))
    assert layer_seed_sequence(3, "a").entropy == layer_seed_sequence(3, "a").entropy


@pytest.mark.parametrize("bad", [-1, 1.5, "3"])
def test_bad_seeds(bad):
    with pytest.raises((ValueError, TypeError), match="(seed must be|rng must be)"):
        if isinstance(bad, int):
            as_generator(bad)
        else:
            layer_seed_sequence(bad, "x")

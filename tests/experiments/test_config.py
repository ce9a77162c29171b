from __future__ import annotations

import pytest

from netinit.experiments.config import (
    CONFIG_DIR,
    REGULARISERS,
    ConfigError,
    ExperimentConfig,
    config_from_dict,
    config_hash,
    config_to_dict,
    for_notebook,
    load_config,
    override,
    parse_method,
)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"datta": {}}, r"unknown key 'datta' at the top level; valid keys: .*\[data\]"),
        ({"model": {"hiddn": [3]}}, r"unknown key 'hiddn' in \[model\]; valid keys: arch, hidden"),
        ({"data": {"name": "cifar"}}, r"data.name = 'cifar' is not valid; choose one of digits, mnist1d"),
        ({"grid": {"methods": ["he_normal"]}}, r"unknown initialiser 'he_normal'; initialisers: default, "),
        ({"grid": {"methods": ["default+rewire"]}}, r"unknown modifier 'rewire'; modifiers: stabilize, "),
        ({"grid": {"methods": ["pa"]}}, r"modifiers go after a base: 'default\+pa'"),
        ({"grid": {"methods": ["default+pa+stabilize"]}}, r"'stabilize' re-draws the weights"),
        ({"grid": {"regularisers": ["dropout"]}}, r"grid.regularisers = 'dropout' is not valid; choose one of none, decov"),
        ({"grid": {"baseline": "orthogonal"}}, r"grid.baseline = 'orthogonal' is not a condition"),
        ({"grid": {"methods": []}}, r"grid.methods is empty"),
        ({"model": {"arch": "vit"}}, r"model.arch = 'vit' is not valid; choose one of mlp, cnn, resnet"),
        ({"train": {"optimizer": "rmsprop"}}, r"train.optimizer = 'rmsprop' is not valid; choose one of sgd, adam"),
        ({"train": {"lr": "fast"}}, r"train.lr must be a number, got 'fast'"),
        ({"train": {"epochs": 2.5}}, r"train.epochs must be an integer, got 2.5"),
        ({"train": {"epochs": 0}}, r"train.epochs must be > 0"),
        ({"model": {"hidden": 32}}, r"model.hidden must be a list, got 32"),
        ({"data": {"name": "mnist"}}, r"data.name = 'mnist' needs data.path"),
        ({"regulariser": {"schedule": "sometimes"}}, r"regulariser.schedule = 'sometimes' is not valid"),
        ({"data": []}, r"\[data\] must be a table"),
    ],
)
def test_bad_configs_name_the_problem_and_the_options(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


def test_config_error_is_a_value_error_and_names_the_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[grid]\nmethods = ["default", "xavier+pa"]\n')
    with pytest.raises(ValueError, match=r"bad.toml: method 'xavier\+pa': unknown initialiser 'xavier'"):
        load_config(p)
    p.write_text("[grid\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        load_config(p)


def test_round_trip_and_hash_stability(tmp_path):
    cfg = load_config(CONFIG_DIR / "pa_vs_baseline.toml")
    assert config_from_dict(config_to_dict(cfg)) == cfg
    h = config_hash(cfg)
    assert len(h) == 16 and h == config_hash(load_config(CONFIG_DIR / "pa_vs_baseline.toml"))
    # the grid (seeds, methods, baseline) and descriptive keys do not change what a run computes
    assert config_hash(override(cfg, {"grid.seeds": 3, "name": "other", "grid.methods": ["default"],
                                      "grid.baseline": "default"})) == h
    # 3 and 3.0 are the same float setting
    assert config_hash(override(cfg, {"regulariser.schedule_epochs": 3})) == \
        config_hash(override(cfg, {"regulariser.schedule_epochs": 3.0}))
    assert config_hash(override(cfg, {"train.lr": 0.02})) != h
    assert config_hash(override(cfg, {"model.hidden": "[128, 128]"})) != h


def test_override_parses_toml_values_and_rejects_unknown_keys():
    cfg = override(ExperimentConfig(), {"model.hidden": "[32, 16]", "train.optimizer": "adam", "grid.seeds": "4"})
    assert cfg.model.hidden == (32, 16) and cfg.train.optimizer == "adam" and cfg.grid.seeds == 4
    with pytest.raises(ConfigError, match=r"unknown key 'epoch' in \[train\]"):
        override(cfg, {"train.epoch": 3})
    with pytest.raises(ConfigError, match=r"cannot set 'a.b.c'"):
        override(cfg, {"a.b.c": 1})


def test_conditions_labels_and_baseline():
    cfg = override(ExperimentConfig(), {"grid.methods": ["default", "default+decorrelated"],
                                        "grid.regularisers": ["none", "decov"]})
    assert [c.label for c in cfg.grid.conditions()] == [
        "default", "default@decov", "default+decorrelated", "default+decorrelated@decov"]
    assert cfg.grid.baseline_label == "default"
    assert parse_method("kaiming_normal+stabilize+pa").modifiers == ("stabilize", "pa")


def test_bundled_configs_load():
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
    assert {"pa_vs_baseline", "diversity_digits"} <= set(names)
    for p in CONFIG_DIR.glob("*.toml"):
        load_config(p)
    div = load_config(CONFIG_DIR / "diversity_digits.toml")
    assert len(div.grid.conditions()) == 20 and div.grid.seeds == 30 and div.stats.every_epoch


def test_regularisers_match_netinit():
    from netinit.diversity.regularisers import PENALTIES

    assert set(REGULARISERS) == {"none", *PENALTIES}


def test_for_notebook_small(monkeypatch):
    cfg = load_config(CONFIG_DIR / "diversity_digits.toml")
    monkeypatch.setenv("NETINIT_NOTEBOOK_SMALL", "1")
    small = for_notebook(cfg)
    assert small.grid.seeds == 2 and small.train.epochs == 2 and len(small.grid.conditions()) <= 6
    assert small.grid.baseline_label == "default"
    monkeypatch.setenv("NETINIT_NOTEBOOK_SMALL", "0")
    assert for_notebook(cfg) == cfg

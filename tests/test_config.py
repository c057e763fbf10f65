"""Configs: validation names the field; JSON round trip; presets."""

from __future__ import annotations

import dataclasses

import pytest

import s2s_jax as s2s
from s2s_jax.config import Config, ModelConfig, config_diff
from s2s_jax.errors import ConfigError
from s2s_jax.training.schedules import learning_rate_schedule


@pytest.mark.parametrize("name", s2s.list_presets())
def test_presets_round_trip_through_json(name):
    cfg = s2s.get_preset(name)
    assert Config.from_json(cfg.to_json()) == cfg


def test_configs_are_frozen():
    cfg = s2s.get_preset("dates")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.hidden_size = 3  # type: ignore[misc]


@pytest.mark.parametrize("kwargs, field", [
    (dict(cell="lstmm"), "model.cell"),
    (dict(attention="luong"), "model.attention"),
    (dict(hidden_size=0), "model.hidden_size"),
    (dict(dropout=1.5), "model.dropout"),
    (dict(maxout_units=-1), "model.maxout_units"),
    (dict(bidirectional=True, bridge="copy"), "model.bridge"),
    (dict(bidirectional=True, bridge="linear", attention="dot"), "model.attention"),
    (dict(input_feeding=True), "model.input_feeding"),
])
def test_invalid_model_fields_are_named(kwargs, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        ModelConfig(**kwargs)


def test_unknown_and_mistyped_json_fields_are_named():
    d = s2s.get_preset("copy").to_dict()
    d["model"]["hiden_size"] = 3
    with pytest.raises(ConfigError, match=r"model\.hiden_size"):
        Config.from_dict(d)
    d = s2s.get_preset("copy").to_dict()
    d["train"]["num_steps"] = "many"
    with pytest.raises(ConfigError, match=r"train\.num_steps"):
        Config.from_dict(d)


def test_unknown_preset_is_named():
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        s2s.get_preset("nope")


def test_multi30k_short_trains_the_multi30k_model_on_a_shorter_schedule():
    short, full = s2s.get_preset("multi30k_short"), s2s.get_preset("multi30k")
    assert sorted(config_diff(full, short)) == ["data.batch_size", "name", "train.checkpoint_every",
                                                "train.eval_every", "train.halving_start_epoch", "train.num_epochs"]
    assert short.model == full.model
    # Multi30k's 29,000 training pairs make 456 batches of 64: halved after 1.5 epochs, then every half.
    lr = learning_rate_schedule(short.train, steps_per_epoch=456)
    assert [float(lr(s)) for s in (0, 683, 684, 911, 912, 1139)] == pytest.approx(
        [2e-3, 2e-3, 1e-3, 1e-3, 5e-4, 5e-4])
    assert short.train.eval_every == short.train.checkpoint_every == 456


def test_replace_and_diff():
    cfg = s2s.get_preset("dates")
    other = cfg.replace(model={"hidden_size": 64}, train={"seed": 3})
    assert other.model.hidden_size == 64 and other.train.seed == 3
    assert config_diff(cfg, other) == ["model.hidden_size", "train.seed"]

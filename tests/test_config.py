"""Config loading: schema <- YAML <- overrides, with one-line errors naming the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from shapegen.config import from_dict, load_config, save_config, to_dict
from shapegen.errors import ConfigError


@dataclass
class Optim:
    lr: float = 1e-3
    """Learning rate."""
    kind: Literal["adam", "sgd"] = "adam"


@dataclass
class Experiment:
    name: str = "run"
    steps: int = 10
    optim: Optim = field(default_factory=Optim)


def test_layers_apply_in_order(tmp_path):
    yaml = tmp_path / "preset.yaml"
    yaml.write_text("steps: 20\noptim:\n  lr: 0.5\n")
    cfg = load_config(Experiment, yaml, ["optim.lr=0.25", "name=x"])
    assert isinstance(cfg, Experiment) and isinstance(cfg.optim, Optim)
    assert (cfg.steps, cfg.optim.lr, cfg.name, cfg.optim.kind) == (20, 0.25, "x", "adam")


@pytest.mark.parametrize(
    "yaml_text, overrides, needle",
    [
        ("stepz: 3\n", [], "stepz"),
        ("optim:\n  momentum: 0.9\n", [], "optim.momentum"),
        ("", ["optim.kind=rmsprop"], "optim.kind"),
        ("", ["steps=many"], "steps"),
        ("", ["steps"], "key=value"),
    ],
)
def test_bad_keys_and_values_fail_with_one_line(tmp_path, yaml_text, overrides, needle):
    yaml = tmp_path / "preset.yaml"
    yaml.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(Experiment, yaml, overrides)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Experiment, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Experiment, bad)


def test_save_and_round_trip(tmp_path):
    cfg = load_config(Experiment, overrides=["optim.kind=sgd"])
    path = tmp_path / "cfg.yaml"
    save_config(cfg, path)
    text = path.read_text()
    assert "!!python" not in text and "kind: sgd" in text
    assert load_config(Experiment, path) == cfg
    assert from_dict(Experiment, to_dict(cfg)) == cfg

"""Load, merge, validate and save typed configs.

A config is a ``@dataclass`` schema living next to the class it configures. Values are
layered as *schema defaults <- YAML preset <- ``--set a.b=c`` overrides* with OmegaConf
structured configs, so an unknown key or a value of the wrong type fails at once with one
line naming the key and where it came from. Saved configs are plain YAML (no pickles, no
Python tags), so a renamed class never breaks an old run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from shapegen.errors import ConfigError, ShapegenError
from shapegen.io import atomic_path

T = TypeVar("T")

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"
"""Folder of the YAML presets shipped with the repository (``configs/<method>/<preset>.yaml``)."""


def _describe(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    msg = str(exc).splitlines()[0]
    if "not in struct" in msg or ("Key '" in msg and "not in" in msg):
        return f"unknown config key '{key}'"
    return f"bad value for config key '{key}': {msg}" if key else msg


def resolve_preset(name_or_path: str | Path, method: str | None = None) -> Path:
    """Turn a preset name (``tiny``) or a path into a YAML file path.

    Raises:
        ConfigError: if neither a file nor a shipped preset of that name exists.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    if method is not None:
        candidate = CONFIG_ROOT / method / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
        shipped = sorted(p.stem for p in (CONFIG_ROOT / method).glob("*.yaml"))
        raise ConfigError(f"config '{name_or_path}' not found; pass a YAML file or one of the presets {shipped}")
    raise ConfigError(f"config file '{name_or_path}' not found; pass an existing YAML file")


def load_config(
    schema: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> T:
    """Build a config object of type ``schema`` from its defaults, a YAML file and overrides.

    Args:
        schema: a dataclass type whose fields (possibly nested dataclasses) are the valid keys.
        path: an optional YAML file whose keys must all exist in ``schema``.
        overrides: ``key=value`` strings with dotted keys, applied last (``--set`` on the CLI).

    Returns:
        An instance of ``schema`` with every value type-checked.

    Raises:
        ConfigError: one line naming the unknown key or the badly typed value and its source.
    """
    base = OmegaConf.structured(schema)
    layers: list[tuple[str, DictConfig]] = []
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file '{path}' not found; pass an existing YAML file")
        try:
            loaded = OmegaConf.load(path)
        except Exception as exc:  # yaml.YAMLError and friends
            raise ConfigError(f"config file '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from exc
        if not isinstance(loaded, DictConfig):
            raise ConfigError(f"config file '{path}' must hold a mapping of keys to values")
        layers.append((str(path), loaded))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value, e.g. --set train.steps=100")
        try:
            layers.append((f"--set {item}", OmegaConf.from_dotlist([item])))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"cannot parse override '{item}': {str(exc).splitlines()[0]}") from exc
    merged = base
    for source, layer in layers:
        try:
            merged = OmegaConf.merge(merged, layer)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"{_describe(exc)} in {source}; see the schema {schema.__name__} for valid keys") from exc
    try:
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{_describe(exc)}; set it in the config or with --set") from exc


def to_dict(config: Any) -> dict[str, Any]:
    """Plain, YAML-safe dict of a dataclass config (for Lightning hyper-parameters and saving)."""
    if not dataclasses.is_dataclass(config):
        raise ShapegenError(f"expected a dataclass config, got {type(config).__name__}")
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)  # type: ignore[return-value]


def from_dict(schema: type[T], values: dict[str, Any]) -> T:
    """Inverse of :func:`to_dict`, validating the keys against ``schema``."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{_describe(exc)} in saved config; it does not match {schema.__name__}") from exc


def save_config(config: Any, path: str | Path) -> None:
    """Write ``config`` as plain YAML, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(to_dict(config))))

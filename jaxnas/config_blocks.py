"""Config blocks: a nested `{name, ...that choice's options}` part of a config (`config.strategy`,
`config.estimator`), as big_vision and flax/examples nest theirs.

The owner of a block (the strategy table, the estimator table) lists each choice's options with
their defaults; `complete` fills the options a block leaves out and refuses the ones its choice
does not have. A block is written `{"name": "gdas"}` in a config file, or `--config.strategy.name=gdas`
on the command line, where the CLI gives the block its choice's options before the other
overrides apply (`--config.strategy.tau_max=5` then exists).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_collections

from jaxnas.errors import ConfigError

# choice name -> {option: default}
Choices = Mapping[str, Mapping[str, Any]]


def plain(value: Any) -> Any:
    """A ConfigDict as a plain dict (other values as they are): comparable and printable as data."""
    return value.to_dict() if hasattr(value, "to_dict") else value


def block(choices: Choices, name: str, **options: Any) -> ml_collections.ConfigDict:
    """The block of choice `name`: its default options, `options` changed."""
    return complete(ml_collections.ConfigDict({"name": name, **options}), choices, "block")


def complete(value: Any, choices: Choices, key: str) -> ml_collections.ConfigDict:
    """`value` (a block, a mapping or a bare choice name) as a full block of its choice: the
    options it leaves out at their defaults. One-line ConfigError for an unknown choice or an
    option the choice does not have."""
    given = dict(value) if isinstance(value, Mapping) or hasattr(value, "keys") else {"name": value}
    given = {k: plain(v) for k, v in given.items()}
    name = given.get("name")
    if name not in choices:
        raise ConfigError(f"unknown {key}.name {name!r}; valid choices: {', '.join(choices)}")
    extra = sorted(set(given) - {"name"} - set(choices[name]))
    if extra:
        valid = ", ".join(choices[name]) or "none"
        raise ConfigError(f"{key} {name!r} has no option(s) {', '.join(extra)}; its options: {valid}")
    return ml_collections.ConfigDict({"name": name, **choices[name], **given})


def resolve_blocks(config: ml_collections.ConfigDict, blocks: Mapping[str, Choices]) -> ml_collections.ConfigDict:
    """A copy of `config` with each of its `blocks` complete (`complete`); the config is unchanged."""
    out = config.copy_and_resolve_references()
    with out.unlocked():
        for key, choices in blocks.items():
            if key in out:
                out[key] = complete(out[key], choices, key)
    return out


def describe(choices: Choices) -> list[str]:
    """One line per choice: its name and its options with their defaults (for `--help`)."""
    return [f"{name}: " + (", ".join(f"{k}={v!r}" for k, v in options.items()) or "no options")
            for name, options in choices.items()]


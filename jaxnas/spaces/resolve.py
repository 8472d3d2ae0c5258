"""An architecture from what a user names: a genotype constant (DARTS_V1, DARTS_V2), a genotype
JSON file or a search workdir holding one, or an NB201 arch string (used by `jaxnas.describe`,
`jaxnas.train` and `jaxnas.compare`). A recurrent cell's constants (DARTS_V1, DARTS_V2, ENAS) share
names with the CNN cells: `recurrent=True` reads a name as the recurrent one."""

from __future__ import annotations

import json
import os
from typing import Any

from jaxnas.errors import ConfigError
from jaxnas.vocabulary.darts import NAMED_GENOTYPES, Genotype
from jaxnas.vocabulary.darts_rnn import NAMED_RNN_GENOTYPES, RecurrentGenotype
from jaxnas.vocabulary.nb201 import NB201Arch


def resolve_kind(spec: str, kind: type, what: str, recurrent: bool = False) -> Any:
    """`resolve_architecture(spec)` that must be a `kind`: ConfigError in one line otherwise, with
    `what` saying what is valid (for the command lines that build one kind of network)."""
    try:
        arch = resolve_architecture(spec, recurrent)
    except ValueError as e:
        raise ConfigError(str(e).splitlines()[0]) from None
    if not isinstance(arch, kind):
        raise ConfigError(f"genotype {spec!r} is not {what}")
    return arch


def resolve_architecture(spec: str, recurrent: bool = False) -> Genotype | NB201Arch | RecurrentGenotype:
    """A genotype constant name, a genotype JSON file (or search workdir), or an NB201 arch string;
    with `recurrent`, a name is one of the recurrent cell's constants."""
    if recurrent and spec in NAMED_RNN_GENOTYPES:
        return NAMED_RNN_GENOTYPES[spec]
    if recurrent and spec in NAMED_GENOTYPES:
        raise ValueError(f"unknown recurrent cell {spec!r}; valid constants: {', '.join(NAMED_RNN_GENOTYPES)}")
    if spec in NAMED_GENOTYPES:
        return NAMED_GENOTYPES[spec]
    if spec.startswith("|"):
        return NB201Arch.from_string(spec)
    path = os.path.join(spec, "genotype.json") if os.path.isdir(spec) else spec
    if os.path.isfile(path):
        with open(path) as f:
            text = f.read()
        try:
            record = json.loads(text)
        except ValueError:
            record = None  # Genotype.from_json says what is wrong with it
        if isinstance(record, dict) and "nb201" in record:  # an NB201 search's genotype.json
            return NB201Arch.from_string(record["nb201"])
        if isinstance(record, dict) and "recurrent" in record:  # a darts_rnn search's genotype.json
            return RecurrentGenotype.from_dict(record)
        return Genotype.from_json(text)
    if recurrent:
        raise ValueError(f"unknown recurrent cell {spec!r}: not a constant ({', '.join(NAMED_RNN_GENOTYPES)}), a "
                         "genotype JSON file or a darts_rnn search workdir")
    raise ValueError(
        f"unknown architecture {spec!r}: not a genotype constant ({', '.join(NAMED_GENOTYPES)}), "
        "a genotype JSON file, a search workdir, or an NB201 arch string starting with '|'"
    )

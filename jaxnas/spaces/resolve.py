"""An architecture from what a user names: a genotype constant (DARTS_V1, DARTS_V2), a genotype
JSON file or a search workdir holding one, or an NB201 arch string (used by `jaxnas.describe`,
`jaxnas.train` and `jaxnas.compare`)."""

from __future__ import annotations

import json
import os

from jaxnas.vocabulary.darts import NAMED_GENOTYPES, Genotype
from jaxnas.vocabulary.nb201 import NB201Arch


def resolve_architecture(spec: str) -> Genotype | NB201Arch:
    """A genotype constant name, a genotype JSON file (or search workdir), or an NB201 arch string."""
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
        return Genotype.from_json(text)
    raise ValueError(
        f"unknown architecture {spec!r}: not a genotype constant ({', '.join(NAMED_GENOTYPES)}), "
        "a genotype JSON file, a search workdir, or an NB201 arch string starting with '|'"
    )

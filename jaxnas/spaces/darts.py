"""The DARTS cell search space: primitives, genotypes, and derivation from α.

A cell has two inputs (the outputs of the two previous cells) and four intermediate nodes; node i
sums one mixed op per earlier state, so a cell has 2+3+4+5 = 14 edges, ordered node by node and,
within a node, by input index (the order of the DARTS code). α is `{'normal': (14, 8),
'reduce': (14, 8)}`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.nn.partial import edge_weights
from jaxnas.spaces.decisions import Decision
from jaxnas.spaces.options import SpaceOptions, check_mixing
from jaxnas.vocabulary.darts import NUM_EDGES, PRIMITIVES, STEPS, Genotype, edge_inputs


def init_alphas(rng: jax.Array, num_edges: int = NUM_EDGES, num_ops: int = len(PRIMITIVES),
                edge_betas: bool = False) -> dict:
    """α for both cell types, 1e-3·N(0, 1) as in DARTS; with `edge_betas` also PC-DARTS's edge
    weights β (`normal_edges`, `reduce_edges`: one per edge, same initialisation)."""
    kn, kr, kbn, kbr = jax.random.split(rng, 4)
    alphas = {
        "normal": 1e-3 * jax.random.normal(kn, (num_edges, num_ops)),
        "reduce": 1e-3 * jax.random.normal(kr, (num_edges, num_ops)),
    }
    if edge_betas:
        alphas["normal_edges"] = 1e-3 * jax.random.normal(kbn, (num_edges,))
        alphas["reduce_edges"] = 1e-3 * jax.random.normal(kbr, (num_edges,))
    return alphas



def parse_cell(weights: np.ndarray, steps: int = STEPS, primitives: Sequence[str] = PRIMITIVES):
    """DARTS's derivation for one cell from per-edge op weights (softmax(α), shape (edges, ops)).

    Per node keep the two incoming edges whose strongest non-`none` weight is largest; each kept
    edge's op is its argmax excluding `none`. Ties go to the lower index, as in the DARTS code.
    """
    weights = np.asarray(weights, dtype=np.float64)
    none = primitives.index("none") if "none" in primitives else None
    keep = [k for k in range(len(primitives)) if k != none]
    gene, start = [], 0
    for i in range(steps):
        n = i + 2
        w = weights[start : start + n][:, keep]
        strength = w.max(axis=1)
        edges = sorted(range(n), key=lambda j: -strength[j])[:2]
        for j in edges:
            gene.append((primitives[keep[int(np.argmax(w[j]))]], j))
        start += n
    return tuple(gene)


def derive(alphas: Mapping[str, Any], steps: int = STEPS) -> Genotype:
    """The DARTS genotype of α (softmax per edge, then `parse_cell`). With PC-DARTS's edge weights
    in α, each edge's op weights are first scaled by its β̃, as in the PC-DARTS code."""
    concat = tuple(range(2, steps + 2))
    cells = {}
    for k in ("normal", "reduce"):
        w = np.asarray(jax.nn.softmax(jnp.asarray(alphas[k]), -1))
        if f"{k}_edges" in alphas:
            w = w * np.asarray(edge_weights(jnp.asarray(alphas[f"{k}_edges"]), steps))[:, None]
        cells[k] = parse_cell(w, steps)
    return Genotype(cells["normal"], concat, cells["reduce"], concat)


# A sampled cell (ENAS, random search): per node two distinct inputs, each with one op other than
# `none`; every edge not chosen carries `none`.
SAMPLED_OPS: tuple[str, ...] = PRIMITIVES[1:]


def decisions(steps: int = STEPS) -> tuple[Decision, ...]:
    """Normal then reduction cell; per node (input, op, second input ≠ first, op)."""
    out: list[Decision] = []
    for _ in ("normal", "reduce"):
        for i in range(steps):
            first = len(out)
            out += [Decision("input", i + 2), Decision("op", len(SAMPLED_OPS)),
                    Decision("input", i + 2, exclude=first), Decision("op", len(SAMPLED_OPS))]
    return tuple(out)


def decisions_to_path(values: jax.Array, steps: int = STEPS) -> dict[str, jax.Array]:
    """One-hot (edges, ops) per cell type: the chosen op on the chosen edges, `none` elsewhere."""
    offsets = jnp.array([sum(k + 2 for k in range(i)) for i in range(steps)])
    num_edges = sum(i + 2 for i in range(steps))
    per_cell = 4 * steps
    out = {}
    for c, kind in enumerate(("normal", "reduce")):
        v = jnp.asarray(values)[c * per_cell:(c + 1) * per_cell].reshape(steps, 2, 2)  # node, pair, (input, op)
        edges = (offsets[:, None] + v[..., 0]).ravel()
        index = jnp.zeros(num_edges, jnp.int32).at[edges].set((v[..., 1] + 1).ravel())
        out[kind] = jax.nn.one_hot(index, len(PRIMITIVES))
    return out


def decisions_to_genotype(values, steps: int = STEPS) -> Genotype:
    v = np.asarray(values).reshape(2, steps, 2, 2)
    cells = [tuple((SAMPLED_OPS[op], int(j)) for node in cell for j, op in node) for cell in v]
    concat = tuple(range(2, steps + 2))
    return Genotype(cells[0], concat, cells[1], concat)


def genotype_to_decisions(genotype: Genotype, steps: int = STEPS) -> np.ndarray:
    """The inverse of `decisions_to_genotype` (a genotype with `none` or repeated inputs has none)."""
    values = []
    for pairs in (genotype.normal, genotype.reduce):
        if len(pairs) != 2 * steps:
            raise ValueError(f"genotype has {len(pairs) // 2} nodes per cell; the sampled space has {steps}")
        for op, j in pairs:
            if op not in SAMPLED_OPS:
                raise ValueError(f"op {op!r} is not a sampled op; valid: {', '.join(SAMPLED_OPS)}")
            values += [j, SAMPLED_OPS.index(op)]
    return np.asarray(values, np.int32)


@dataclasses.dataclass(frozen=True)
class DartsSpace(SpaceOptions):
    """The DARTS cell space; `impl` picks the supernet's implementation (scanned, grouped or
    reference: same network, see `jaxnas.nn.supernet`). The strategies
    set the rest: `mixing='gumbel'` for GDAS, `partial_channels`/`edge_normalization` for PC-DARTS
    (whose α then also holds the edge weights β), `mixing='path'` for the sampling strategies."""

    channels: int = 16
    layers: int = 8
    impl: str = "scanned"
    remat: bool = False
    mixing: str = "softmax"
    partial_channels: int = 1
    edge_normalization: bool = False
    name: str = "darts"
    counting_options = {"impl": "reference"}  # same parameters as the fast layouts; its convs are countable layers

    @classmethod
    def config_options(cls, config) -> dict:
        """The options a search config sets: size, the supernet's layout and rematerialisation."""
        return {**cls.sized(config.channels, config.layers), "impl": config.impl, "remat": config.remat}

    def __post_init__(self):
        from jaxnas.nn.supernet import MIXINGS

        check_mixing(self.mixing, MIXINGS)
        if self.partial_channels < 1 or self.channels % self.partial_channels:
            raise ValueError(f"partial_channels {self.partial_channels} must be a positive divisor of channels "
                             f"{self.channels}")
        if self.mixing != "softmax" and (self.partial_channels > 1 or self.edge_normalization):
            raise ValueError("partial channels and edge normalisation are PC-DARTS options; a sampled "
                             "cell (GDAS, ENAS, random search) has neither")

    def init_alphas(self, rng):
        return init_alphas(rng, edge_betas=self.edge_normalization)

    def supernet(self, num_classes, axis_name=None):
        from jaxnas.nn.supernet import DartsSupernet

        return DartsSupernet(self.channels, self.layers, num_classes, impl=self.impl, axis_name=axis_name,
                             remat=self.remat, mixing=self.mixing, partial_channels=self.partial_channels,
                             edge_normalization=self.edge_normalization)

    def derive(self, alphas):
        return derive(alphas)

    def op_names(self):
        """The op each column of α stands for, per α entry."""
        return {"normal": PRIMITIVES, "reduce": PRIMITIVES}

    def edge_names(self):
        """'c_{k-1} → node 0', ...: the input state and the intermediate node of each row of α."""
        state = ("c_{k-2}", "c_{k-1}") + tuple(f"node {i}" for i in range(STEPS))
        names = tuple(f"{state[j]} → node {i}" for i, j in edge_inputs())
        return {"normal": names, "reduce": names}

    def arch_to_dict(self, arch):
        return arch.to_dict()

    def arch_from_dict(self, d):
        return Genotype.from_dict(d)

    # The sampling strategies' view: the module's functions (see `decisions` above).
    decisions = staticmethod(decisions)
    path = staticmethod(decisions_to_path)
    arch_from_decisions = staticmethod(decisions_to_genotype)

    def decisions_of(self, arch):
        return genotype_to_decisions(arch)

    def arch_metrics(self, arch):
        return {}

    def arch_metric_references(self):
        return {}

    def network(self, arch, num_classes, axis_name=None):
        from jaxnas.nn.network import NetworkCIFAR

        return NetworkCIFAR(arch, self.channels, self.layers, num_classes, axis_name=axis_name)

    @property
    def compiled_init(self):
        """The stacked layouts (scanned, grouped) compile their initialisation without XLA's
        optimisation passes (grouped: 43 s at C=8, 5 cells; 102 s run eagerly); the per-edge ones
        (reference, the switch cells of GDAS and the sampling strategies) run it eagerly (15 s,
        where compiling took 80 s to minutes)."""
        return self.impl in ("scanned", "grouped") and self.mixing == "softmax"

    def cost_tables(self, image_shape, metric):
        from jaxnas.spaces import cost

        return cost.darts_costs(self.channels, self.layers, tuple(image_shape[:2]), metric)

    def arch_cost(self, arch, costs):
        from jaxnas.spaces import cost

        return cost.derived_cost(arch, costs)

    def plot(self, arch, path, title=""):
        from jaxnas import viz

        viz.plot_genotype(arch, path, title)

    def follow_up(self, workdir):
        return f"python -m jaxnas.train --config.genotype={workdir} --workdir={workdir}_train"

    def params_network(self, arch, num_classes, train_config):
        """The network `jaxnas.train` builds from the genotype with `train_config`'s settings."""
        from jaxnas.nn.network import trained_network

        return trained_network(arch, num_classes, train_config), ()

"""The NAS-Bench-201 cell space: 4 nodes, 6 edges, 5 ops per edge, architectures as arch strings.

An architecture is written as in the benchmark, one `|op~input|` group per node:
`|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|`.
Edges are ordered node by node (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), which is also the row
order of α (shape (6, 5)).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces.decisions import Decision, arch_path_cost
from jaxnas.spaces.options import PATH_MIXINGS, SpaceOptions, check_mixing
from jaxnas.vocabulary.nb201 import EDGES, OPS, NB201Arch


def all_archs() -> Iterator[NB201Arch]:
    """All 5^6 = 15,625 cells of the benchmark."""
    for ops in itertools.product(OPS, repeat=len(EDGES)):
        yield NB201Arch(ops)


def init_alphas(rng: jax.Array) -> dict:
    return {"cell": 1e-3 * jax.random.normal(rng, (len(EDGES), len(OPS)))}


def derive(alphas) -> NB201Arch:
    """Per edge the op of largest α (`none` included, as the benchmark's DARTS code does)."""
    a = np.asarray(alphas["cell"])
    return NB201Arch(tuple(OPS[int(i)] for i in a.argmax(axis=-1)))


def decisions() -> tuple[Decision, ...]:
    """One op per edge, `none` included (as in the benchmark)."""
    return tuple(Decision("op", len(OPS)) for _ in EDGES)


def decisions_to_path(values: jax.Array) -> dict[str, jax.Array]:
    return {"cell": jax.nn.one_hot(jnp.asarray(values), len(OPS))}


def decisions_to_arch(values) -> NB201Arch:
    return NB201Arch(tuple(OPS[int(i)] for i in np.asarray(values)))


@dataclasses.dataclass(frozen=True)
class NB201Space(SpaceOptions):
    channels: int = 16
    cells_per_stage: int = 5
    mixing: str = "softmax"
    name: str = "nb201"
    depth_option = "cells_per_stage"  # `layers` counts the cells of each of the three stages

    def __post_init__(self):
        check_mixing(self.mixing, (*PATH_MIXINGS, "gumbel"))

    def init_alphas(self, rng):
        return init_alphas(rng)

    def supernet(self, num_classes, axis_name=None):
        from jaxnas.nn.nb201 import NB201Network

        return NB201Network(self.channels, self.cells_per_stage, num_classes, axis_name=axis_name, mixing=self.mixing)

    def derive(self, alphas):
        return derive(alphas)

    def op_names(self):
        return {"cell": OPS}

    def edge_names(self):
        return {"cell": tuple(f"node {j} → node {i}" for i, j in EDGES)}

    def arch_to_dict(self, arch):
        return {"nb201": arch.to_string()}

    def arch_from_dict(self, d):
        return NB201Arch.from_string(d["nb201"])

    # The sampling strategies' view: the module's functions.
    decisions = staticmethod(decisions)
    path = staticmethod(decisions_to_path)
    arch_from_decisions = staticmethod(decisions_to_arch)

    def decisions_of(self, arch):
        return np.asarray([OPS.index(op) for op in arch.ops], np.int32)

    def arch_metrics(self, arch):
        """NAS-Bench-201's 200-epoch test accuracy (%) of the cell on each of its data sets
        (`jaxnas.benchmarks.nb201`), whatever the searched data set: the ground truth a search is judged by."""
        from jaxnas.benchmarks import nb201 as benchmark

        return {f"benchmark_acc_{d}": acc for d, acc in benchmark.accuracies(arch).items()}

    def arch_metric_references(self):
        from jaxnas.benchmarks import nb201 as benchmark

        return {"best cell of each data set": {f"benchmark_acc_{d}": benchmark.best(d)[1] for d in benchmark.DATASETS},
                "all-skip cell (where DARTS collapses)": self.arch_metrics(benchmark.ALL_SKIP)}

    def network(self, arch, num_classes, axis_name=None):
        from jaxnas.nn.nb201 import NB201Network

        return NB201Network(self.channels, self.cells_per_stage, num_classes, arch=arch, axis_name=axis_name)

    compiled_init = False  # its per-edge supernet initialises eagerly

    def cost_tables(self, image_shape, metric):
        from jaxnas.spaces import cost

        return cost.nb201_costs(self.channels, self.cells_per_stage, tuple(image_shape[:2]), metric)

    def arch_cost(self, arch, costs):
        return arch_path_cost(self, arch, costs)

    def plot(self, arch, path, title=""):
        from jaxnas import viz

        viz.plot_nb201(arch, path, title or "NAS-Bench-201 cell")

    def follow_up(self, workdir):
        return f"python -m jaxnas.describe {workdir}   (the cell's NAS-Bench-201 accuracies and size)"

    def params_network(self, arch, num_classes, train_config):
        """The space's own discrete network (the search's channels and cells)."""
        return self.network(arch, num_classes), (None,)

"""The SearchSpace interface every strategy programs against, and the registry of spaces.

A space is data plus pure functions: `init_alphas(rng)` gives α (a pytree separate from the
weights), `supernet(num_classes)` a flax module applied as
`apply({'params': w, 'batch_stats': s}, x, alphas, train)`, `derive(alphas)` the discrete
architecture, and `network(arch, num_classes)` the discrete network built from it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import flax.linen as nn
import jax
import numpy as np

from jaxnas.spaces import chain, darts, nb201
from jaxnas.spaces.decisions import Decision

PATH_MIXINGS = ("softmax", "path")  # the NB201 and chain supernets: all ops mixed, or one given path


def _check_mixing(mixing: str, valid: tuple[str, ...]) -> None:
    if mixing not in valid:
        raise ValueError(f"unknown mixing {mixing!r}; valid: {', '.join(valid)}")


class SearchSpace(Protocol):
    name: str

    def init_alphas(self, rng: jax.Array) -> dict: ...

    def supernet(self, num_classes: int, axis_name: str | None = None) -> nn.Module: ...

    def derive(self, alphas: Any) -> Any: ...

    def network(self, arch: Any, num_classes: int, axis_name: str | None = None) -> nn.Module: ...

    def op_names(self) -> dict[str, tuple[str, ...]]: ...

    def arch_to_dict(self, arch: Any) -> dict: ...

    def arch_from_dict(self, d: dict) -> Any: ...  # the inverse of arch_to_dict (a genotype.json's content)

    def edge_names(self) -> dict[str, tuple[str, ...]]: ...  # what each row of each α entry connects

    # What sampling strategies (ENAS, random search, PNAS) use: the space as a sequence of
    # decisions, their one-hot path (α-shaped, for `mixing='path'`) and their architecture.
    def decisions(self) -> tuple[Decision, ...]: ...

    def path(self, values: jax.Array) -> dict: ...

    def arch_from_decisions(self, values: Any) -> Any: ...

    def decisions_of(self, arch: Any) -> Any: ...

    # What a space knows about a derived architecture without training it (NB201: the benchmark's
    # test accuracy), logged every epoch, and named reference values drawn beside it.
    def arch_metrics(self, arch: Any) -> dict[str, float]: ...

    def arch_metric_references(self) -> dict[str, dict[str, float]]: ...

    # Whether initialising the supernet is worth compiling (stacked layouts) rather than running eagerly.
    compiled_init: bool

    # Resource-aware search (`jaxnas.search.cost`): a cost per (α entry, row, op) for images of
    # `image_shape` under `metric` (params, madds or a latency table), and a derived architecture's cost.
    def cost_tables(self, image_shape: tuple[int, ...], metric: str) -> dict[str, np.ndarray]: ...

    def arch_cost(self, arch: Any, costs: dict[str, np.ndarray]) -> float: ...

    def plot(self, arch: Any, path: str, title: str = "") -> None: ...  # draw a derived architecture

    # The discrete network whose parameters `jaxnas.compare` reports for a derived architecture, as
    # (module, extra apply args), given the training config; None where the space has none to report.
    def params_network(self, arch: Any, num_classes: int, train_config: Any) -> tuple[nn.Module, tuple] | None: ...


@dataclasses.dataclass(frozen=True)
class DartsSpace:
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

    def __post_init__(self):
        from jaxnas.nn.supernet import MIXINGS

        _check_mixing(self.mixing, MIXINGS)
        if self.partial_channels < 1 or self.channels % self.partial_channels:
            raise ValueError(f"partial_channels {self.partial_channels} must be a positive divisor of channels "
                             f"{self.channels}")
        if self.mixing != "softmax" and (self.partial_channels > 1 or self.edge_normalization):
            raise ValueError("partial channels and edge normalisation are PC-DARTS options; a sampled "
                             "cell (GDAS, ENAS, random search) has neither")

    def init_alphas(self, rng):
        return darts.init_alphas(rng, edge_betas=self.edge_normalization)

    def supernet(self, num_classes, axis_name=None):
        from jaxnas.nn.supernet import DartsSupernet

        return DartsSupernet(self.channels, self.layers, num_classes, impl=self.impl, axis_name=axis_name,
                             remat=self.remat, mixing=self.mixing, partial_channels=self.partial_channels,
                             edge_normalization=self.edge_normalization)

    def derive(self, alphas):
        return darts.derive(alphas)

    def op_names(self):
        """The op each column of α stands for, per α entry."""
        return {"normal": darts.PRIMITIVES, "reduce": darts.PRIMITIVES}

    def edge_names(self):
        """'c_{k-1} → node 0', ...: the input state and the intermediate node of each row of α."""
        state = ("c_{k-2}", "c_{k-1}") + tuple(f"node {i}" for i in range(darts.STEPS))
        names = tuple(f"{state[j]} → node {i}" for i, j in darts.edge_inputs())
        return {"normal": names, "reduce": names}

    def arch_to_dict(self, arch):
        return arch.to_dict()

    def arch_from_dict(self, d):
        return darts.Genotype.from_dict(d)

    def decisions(self):
        return darts.decisions()

    def path(self, values):
        return darts.decisions_to_path(values)

    def arch_from_decisions(self, values):
        return darts.decisions_to_genotype(values)

    def decisions_of(self, arch):
        return darts.genotype_to_decisions(arch)

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
        from jaxnas.search import cost

        return cost.darts_costs(self.channels, self.layers, tuple(image_shape[:2]), metric)

    def arch_cost(self, arch, costs):
        from jaxnas.search import cost

        return cost.derived_cost(arch, costs)

    def plot(self, arch, path, title=""):
        from jaxnas import viz

        viz.plot_genotype(arch, path, title)

    def params_network(self, arch, num_classes, train_config):
        """The network `jaxnas.train` builds from the genotype with `train_config`'s settings."""
        from jaxnas.train.loop import build_network

        return build_network(train_config, arch, num_classes), ()


@dataclasses.dataclass(frozen=True)
class NB201Space:
    channels: int = 16
    cells_per_stage: int = 5
    mixing: str = "softmax"
    name: str = "nb201"

    def __post_init__(self):
        _check_mixing(self.mixing, PATH_MIXINGS)

    def init_alphas(self, rng):
        return nb201.init_alphas(rng)

    def supernet(self, num_classes, axis_name=None):
        from jaxnas.nn.nb201 import NB201Network

        return NB201Network(self.channels, self.cells_per_stage, num_classes, axis_name=axis_name, mixing=self.mixing)

    def derive(self, alphas):
        return nb201.derive(alphas)

    def op_names(self):
        return {"cell": nb201.OPS}

    def edge_names(self):
        return {"cell": tuple(f"node {j} → node {i}" for i, j in nb201.EDGES)}

    def arch_to_dict(self, arch):
        return {"nb201": arch.to_string()}

    def arch_from_dict(self, d):
        return nb201.NB201Arch.from_string(d["nb201"])

    def decisions(self):
        return nb201.decisions()

    def path(self, values):
        return nb201.decisions_to_path(values)

    def arch_from_decisions(self, values):
        return nb201.decisions_to_arch(values)

    def decisions_of(self, arch):
        return np.asarray([nb201.OPS.index(op) for op in arch.ops], np.int32)

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
        from jaxnas.search import cost

        return cost.nb201_costs(self.channels, self.cells_per_stage, tuple(image_shape[:2]), metric)

    def arch_cost(self, arch, costs):
        return _path_cost(self, arch, costs)

    def plot(self, arch, path, title=""):
        from jaxnas import viz

        viz.plot_nb201(arch, path, title or "NAS-Bench-201 cell")

    def params_network(self, arch, num_classes, train_config):
        """The space's own discrete network (the search's channels and cells)."""
        return self.network(arch, num_classes), (None,)


@dataclasses.dataclass(frozen=True)
class ChainSpace:
    channels: int = 16
    layers: int = 4
    ops: tuple[str, ...] = chain.DEFAULT_CHAIN_OPS
    mixing: str = "softmax"
    name: str = "chain"

    def __post_init__(self):
        object.__setattr__(self, "ops", chain.check_ops(self.ops))
        _check_mixing(self.mixing, PATH_MIXINGS)

    def init_alphas(self, rng):
        return chain.init_alphas(rng, self.layers, len(self.ops))

    def supernet(self, num_classes, axis_name=None):
        from jaxnas.nn.chain import ChainNetwork

        return ChainNetwork(self.channels, self.layers, num_classes, self.ops, axis_name=axis_name, mixing=self.mixing)

    def derive(self, alphas):
        return chain.derive(alphas, self.ops)

    def op_names(self):
        return {"layers": self.ops}

    def edge_names(self):
        return {"layers": tuple(f"{'input' if i == 0 else f'layer {i - 1}'} → layer {i}" for i in range(self.layers))}

    def arch_to_dict(self, arch):
        return {"chain": list(arch.ops)}

    def arch_from_dict(self, d):
        return chain.ChainArch(tuple(d["chain"]))

    def decisions(self):
        return chain.decisions(self.layers, len(self.ops))

    def path(self, values):
        return chain.decisions_to_path(values, len(self.ops))

    def arch_from_decisions(self, values):
        return chain.decisions_to_arch(values, self.ops)

    def decisions_of(self, arch):
        return np.asarray([self.ops.index(op) for op in arch.ops], np.int32)

    def arch_metrics(self, arch):
        return {}

    def arch_metric_references(self):
        return {}

    def network(self, arch, num_classes, axis_name=None):
        from jaxnas.nn.chain import ChainNetwork

        return ChainNetwork(self.channels, self.layers, num_classes, self.ops, arch=arch, axis_name=axis_name)

    compiled_init = False

    def cost_tables(self, image_shape, metric):
        from jaxnas.search import cost

        return cost.chain_costs(self.channels, self.layers, self.ops, tuple(image_shape[:2]), metric)

    def arch_cost(self, arch, costs):
        return _path_cost(self, arch, costs)

    def plot(self, arch, path, title=""):
        from jaxnas import viz

        viz.plot_chain(arch.ops, path, title or "chain")

    def params_network(self, arch, num_classes, train_config):
        return None


def _path_cost(space, arch, costs) -> float:
    """The cost of a derived architecture as the cost of its one-hot path."""
    from jaxnas.search import cost

    path = {k: np.asarray(v, np.float64) for k, v in space.path(space.decisions_of(arch)).items()}
    return float(cost.path_cost(path, costs))


SPACES = {"darts": DartsSpace, "nb201": NB201Space, "chain": ChainSpace}


def get_space(name: str, **options: Any) -> SearchSpace:
    """Build a space by name; unknown names and options raise an error listing the valid ones."""
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; valid spaces: {', '.join(SPACES)}")
    cls = SPACES[name]
    fields = [f.name for f in dataclasses.fields(cls) if f.name != "name"]
    bad = [k for k in options if k not in fields]
    if bad:
        raise ValueError(f"unknown option(s) {bad} for space {name!r}; valid options: {', '.join(fields)}")
    return cls(**options)

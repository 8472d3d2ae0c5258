"""The chain-structured space: a sequence of layers, each a softmax(α)-weighted choice of ops."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces.decisions import Decision, arch_path_cost
from jaxnas.spaces.options import PATH_MIXINGS, SpaceOptions, check_mixing
from jaxnas.vocabulary.chain import DEFAULT_CHAIN_OPS, ChainArch, check_ops


def init_alphas(rng: jax.Array, layers: int, num_ops: int) -> dict:
    return {"layers": 1e-3 * jax.random.normal(rng, (layers, num_ops))}


def derive(alphas, ops: tuple[str, ...]) -> ChainArch:
    a = np.asarray(alphas["layers"])
    return ChainArch(tuple(ops[int(i)] for i in a.argmax(axis=-1)))


def decisions(layers: int, num_ops: int) -> tuple[Decision, ...]:
    return tuple(Decision("op", num_ops) for _ in range(layers))


def decisions_to_path(values: jax.Array, num_ops: int) -> dict[str, jax.Array]:
    return {"layers": jax.nn.one_hot(jnp.asarray(values), num_ops)}


def decisions_to_arch(values, ops: tuple[str, ...]) -> ChainArch:
    return ChainArch(tuple(ops[int(i)] for i in np.asarray(values)))


@dataclasses.dataclass(frozen=True)
class ChainSpace(SpaceOptions):
    channels: int = 16
    layers: int = 4
    ops: tuple[str, ...] = DEFAULT_CHAIN_OPS
    mixing: str = "softmax"
    name: str = "chain"

    def __post_init__(self):
        object.__setattr__(self, "ops", check_ops(self.ops))
        check_mixing(self.mixing, PATH_MIXINGS)

    def init_alphas(self, rng):
        return init_alphas(rng, self.layers, len(self.ops))

    def supernet(self, num_classes, axis_name=None):
        from jaxnas.nn.chain import ChainNetwork

        return ChainNetwork(self.channels, self.layers, num_classes, self.ops, axis_name=axis_name, mixing=self.mixing)

    def derive(self, alphas):
        return derive(alphas, self.ops)

    def op_names(self):
        return {"layers": self.ops}

    def edge_names(self):
        return {"layers": tuple(f"{'input' if i == 0 else f'layer {i - 1}'} → layer {i}" for i in range(self.layers))}

    def arch_to_dict(self, arch):
        return {"chain": list(arch.ops)}

    def arch_from_dict(self, d):
        return ChainArch(tuple(d["chain"]))

    def decisions(self):
        return decisions(self.layers, len(self.ops))

    def path(self, values):
        return decisions_to_path(values, len(self.ops))

    def arch_from_decisions(self, values):
        return decisions_to_arch(values, self.ops)

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
        from jaxnas.spaces import cost

        return cost.chain_costs(self.channels, self.layers, self.ops, tuple(image_shape[:2]), metric)

    def arch_cost(self, arch, costs):
        return arch_path_cost(self, arch, costs)

    def plot(self, arch, path, title=""):
        from jaxnas import viz

        viz.plot_chain(arch.ops, path, title or "chain")

    def follow_up(self, workdir):
        return f"python -m jaxnas.study --config.search_workdir={workdir}   (how good its hypergradients were)"

    def params_network(self, arch, num_classes, train_config):
        return None

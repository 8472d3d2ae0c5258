"""DARTS's recurrent cell space (Liu et al., ICLR 2019, section 2.1 and appendix A.1.2): 8 nodes,
each reading every earlier node through one of {none, tanh, relu, sigmoid, identity}; α is
(36 edges × 5 ops). A derived cell keeps one edge per node.

Derivation as the authors' `genotype()` (`rnn/model_search.py`): per node, the predecessor whose
strongest non-'none' op (by softmax(α), 'none' in the denominator) is strongest, then that op;
ties go to the earlier predecessor and the earlier op. α starts at 1e-3·N(0, 1) as in the code (the
paper says zeros). For sampling strategies the space is a sequence of decisions (per node: a
predecessor, then an activation) whose path the supernet runs; `output="loose_ends"` averages the
nodes no other node reads (ENAS's cell) instead of every node (DARTS's).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces.decisions import Decision
from jaxnas.spaces.options import PATH_MIXINGS, SpaceOptions, check_mixing
from jaxnas.vocabulary.darts_rnn import (
    ACTIVATIONS,
    RNN_OPS,
    STEPS,
    RecurrentGenotype,
    edge_names,
    edge_rows,
    loose_ends,
    num_edges,
)

OUTPUTS = ("all", "loose_ends")
DROPOUTS = ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute")  # the network's, as `nn.rnn` names them


def init_alphas(rng: jax.Array, steps: int = STEPS) -> dict:
    return {"recurrent": 1e-3 * jax.random.normal(rng, (num_edges(steps), len(RNN_OPS)))}


def derive(alphas, steps: int = STEPS) -> RecurrentGenotype:
    """One (activation, predecessor) per node from α, as the authors' `_parse`."""
    a = np.asarray(alphas["recurrent"], np.float64)
    probs = np.exp(a - a.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    gene = []
    for node in range(1, steps + 1):
        rows = probs[edge_rows(node).start:edge_rows(node).stop, 1:]  # without 'none'
        best = rows.max(-1)
        j = int(np.flatnonzero(best == best.max())[0])  # the earliest of tied predecessors
        k = int(np.flatnonzero(rows[j] == rows[j].max())[0])  # the earliest of tied ops
        gene.append((ACTIVATIONS[k], j))
    return RecurrentGenotype(tuple(gene), tuple(range(1, steps + 1)))


def decisions(steps: int = STEPS) -> tuple[Decision, ...]:
    """Per node i = 1..steps: its predecessor (0..i-1), then its activation."""
    return tuple(d for i in range(1, steps + 1) for d in (Decision("input", i), Decision("op", len(ACTIVATIONS))))


def path_of(values: jax.Array, steps: int) -> dict:
    """The one-hot α (36 × 5) of decision values (2·steps,): per node, the row of its predecessor set
    at its activation (what the supernet's `mixing="path"` runs, and what the α plots count)."""
    values = jnp.asarray(values)
    pred, act = values[0::2], values[1::2] + 1  # activation indices into RNN_OPS (0 is 'none')
    rows = jnp.asarray([edge_rows(i).start for i in range(1, steps + 1)]) + pred
    onehot = jnp.zeros((num_edges(steps), len(RNN_OPS)), jnp.float32).at[rows, act].set(1.0)
    return {"recurrent": onehot}


@dataclasses.dataclass(frozen=True)
class DartsRnnSpace(SpaceOptions):
    """`channels` is the embedding and hidden size (the paper: 300 in search, 850 in training),
    `steps` the nodes; the dropouts are the language model's (`jaxnas.tasks.language`)."""

    channels: int = 300
    steps: int = STEPS
    output: str = "all"
    dropouts: tuple[tuple[str, float], ...] = ()
    mixing: str = "softmax"  # "path": the sampling strategies' one edge per node (the supernet reads α's form)
    name: str = "darts_rnn"

    depth_option = "steps"
    tasks = ("language_model",)
    compiled_init = False

    def __post_init__(self):
        check_mixing(self.mixing, PATH_MIXINGS)
        if self.output not in OUTPUTS:
            raise ValueError(f"unknown output {self.output!r}; valid: {', '.join(OUTPUTS)}")

    @classmethod
    def config_options(cls, config) -> dict:
        """Size, and the language model's dropouts from the config's task block."""
        dropouts = {k: float(v) for k, v in config.task.items() if k in DROPOUTS}
        return {**cls.sized(config.channels, config.layers), "dropouts": tuple(sorted(dropouts.items()))}

    def init_alphas(self, rng):
        return init_alphas(rng, self.steps)

    def supernet(self, num_classes, axis_name=None):
        from jaxnas.nn.rnn import RnnSupernet

        return RnnSupernet(vocab_size=num_classes, dim=self.channels, steps=self.steps, axis_name=axis_name,
                           mixing=self.mixing, output=self.output, **dict(self.dropouts))

    def network(self, arch, num_classes, axis_name=None):
        from jaxnas.nn.rnn import rnn_network

        return rnn_network(arch, num_classes, self.channels, **dict(self.dropouts))

    def derive(self, alphas):
        return derive(alphas, self.steps)

    def op_names(self):
        return {"recurrent": RNN_OPS}

    def edge_names(self):
        return {"recurrent": tuple(edge_names(self.steps))}

    def arch_to_dict(self, arch):
        return arch.to_dict()

    def arch_from_dict(self, d):
        return RecurrentGenotype.from_dict(d)

    def decisions(self):
        return decisions(self.steps)

    def path(self, values):
        return path_of(values, self.steps)

    def arch_from_decisions(self, values):
        values = [int(v) for v in np.asarray(values)]
        recurrent = tuple((ACTIVATIONS[values[2 * i + 1]], values[2 * i]) for i in range(self.steps))
        concat = tuple(range(1, self.steps + 1)) if self.output == "all" else loose_ends(recurrent)
        return RecurrentGenotype(recurrent, concat)

    def decisions_of(self, arch):
        return np.asarray([v for op, j in arch.recurrent for v in (j, ACTIVATIONS.index(op))], np.int32)

    def arch_metrics(self, arch):
        return {}

    def arch_metric_references(self):
        return {}

    def cost_tables(self, image_shape, metric):
        raise ValueError("the darts_rnn space has no cost tables: its nodes all cost one (hidden, 2·hidden) matrix")

    def arch_cost(self, arch, costs):
        raise ValueError("the darts_rnn space has no cost tables")

    def plot(self, arch, path, title=""):
        from jaxnas import viz

        viz.plot_recurrent(arch.recurrent, arch.concat, path, title or "recurrent cell")

    def params_network(self, arch, num_classes, train_config):
        return None

    def follow_up(self, workdir):
        return (f"python -m jaxnas.describe {workdir} --dataset ptb --plot cell.png   (the cell and its size as the "
                "paper's PTB model)")

"""ENAS (Pham et al., 2018): shared weights trained on the cells an LSTM controller samples, the
controller trained with REINFORCE on search-val.

Each step: the controller draws one cell and the shared weights take an SGD step on it; then it
draws `strategy.samples` cells, each is rewarded with its accuracy on the step's search-val batch
(shared weights, BN in training mode; a language model: 80 / perplexity, as ENAS's PTB search)
minus `strategy.reward_cost` per million parameters, the
baseline moves to b ← decay·b + (1 − decay)·mean(R), and Adam (the α optimizer's settings) steps on
−(R − b)·log p − entropy_weight·H. α in the state is {'controller': its parameters, 'baseline': b}.
The genotype is the best of `strategy.derive_samples` controller samples on a search-val batch.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jaxnas.search.strategies import enas_controller as ctl
from jaxnas.search.strategies.sampled import SampledStrategy
from jaxnas.spaces import cost as cost_lib
from jaxnas.tasks.image import ImageClassification


def controller_of(config, space) -> ctl.Controller:
    return ctl.Controller(space.decisions(), hidden=config.strategy.hidden, temperature=config.strategy.temperature,
                          tanh_constant=config.strategy.tanh_constant)


@dataclasses.dataclass(frozen=True)
class EnasStrategy(SampledStrategy):
    def check_options(self, config):
        o = config.strategy
        if (problem := super().check_options(config)) is not None:
            return problem
        if o.samples < 1 or o.hidden < 1:
            return f"strategy.samples and strategy.hidden must be positive, got {o.samples}, {o.hidden}"
        if not 0 <= config.strategy.baseline_decay < 1:
            return f"strategy.baseline_decay must be in [0, 1), got {config.strategy.baseline_decay}"
        if config.strategy.reward_cost < 0:
            return f"strategy.reward_cost must be >= 0, got {config.strategy.reward_cost}"
        return None

    def space_preferences(self, config):
        return {"output": "loose_ends"}  # ENAS's recurrent cell: the mean of the nodes no other node reads

    def init_alphas(self, config, space, rng):
        return {"controller": ctl.init_controller(controller_of(config, space), rng), "baseline": jnp.zeros(())}

    def draw(self, config, space):
        controller = controller_of(config, space)
        return lambda alphas, key: controller.apply({"params": alphas["controller"]}, key=key)[0]

    def alpha_update(self, config, space, net, axis_name, image_shape, optimizer, task=None):
        controller = controller_of(config, space)
        costs = None
        if config.strategy.reward_cost:
            # Parameter tables of the supernet's cells, counted once when the step is built.
            costs = cost_lib.space_costs(space, image_shape, "params")

        reward_of = (task or ImageClassification()).reward

        def update(params, batch_stats, alphas, opt_state, key, val_batch):
            def accuracy(values):  # the task's reward: images, accuracy; a language model, 80 / perplexity
                return reward_of(net, {"params": params, "batch_stats": batch_stats}, space.path(values), val_batch,
                                 axis_name)

            def reward_fn(values):  # sequential: a vmap would run every branch of every switch
                rewards = jax.lax.map(accuracy, values)
                if costs is not None:
                    cost = jax.vmap(lambda v: cost_lib.path_cost(space.path(v), costs))(values)
                    rewards = rewards - config.strategy.reward_cost * cost / 1e6
                return rewards

            grads, baseline, metrics = ctl.reinforce_gradient(
                controller, alphas["controller"], reward_fn, alphas["baseline"], key, config.strategy.samples,
                config.strategy.entropy_weight, config.strategy.baseline_decay)
            # The α optimizer's state covers the whole α; the baseline is set, not learnt.
            grads = {"controller": grads, "baseline": jnp.zeros_like(baseline)}
            updates, opt_state = optimizer.update(grads, opt_state, alphas)
            alphas = {**optax.apply_updates(alphas, updates), "baseline": baseline}
            return alphas, opt_state, metrics

        return update


ENAS = EnasStrategy("enas", spaces=("darts", "nb201", "chain", "darts_rnn"),
                    step_metrics=("reward", "baseline", "controller_entropy"), options=(
    ("derive_samples", 64),  # candidates the controller draws for the genotype
    ("hidden", 100),  # LSTM controller width (ENAS: 100)
    ("samples", 2),  # architectures rewarded per controller step
    ("temperature", 5.0),  # logits = tanh_constant·tanh(logits / temperature), as ENAS's code
    ("tanh_constant", 2.5),
    ("entropy_weight", 1e-4),  # entropy bonus of the REINFORCE loss
    ("baseline_decay", 0.99),  # moving-average reward baseline
    ("reward_cost", 0.0),  # reward = val accuracy − this · parameters in millions
))

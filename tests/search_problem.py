"""A tiny search problem shared by the search-step tests and the multi-device check script."""

import jax
import jax.numpy as jnp

from jaxnas.nn.chain import ChainNetwork
from jaxnas.parallel import DATA_AXIS
from jaxnas.search import hypergrad
from jaxnas.search.state import SearchOptimizers, alpha_optimizer, cosine_lr, inner_optimizer, weight_optimizer
from jaxnas.search.step import StepOptions, init_state, make_search_step, supernet_loss

GLOBAL_BATCH = 8


def build(estimator: str, dtype=jnp.float32, alpha_penalty=None, **options):
    net = ChainNetwork(C=4, layers=2, num_classes=3, ops=("conv_3x3", "identity", "max_pool_3x3"),
                       axis_name=DATA_AXIS)
    schedule = cosine_lr(0.05, 0.001, epochs=4, steps_per_epoch=2)
    optimizers = SearchOptimizers(schedule, inner_optimizer(schedule), weight_optimizer(schedule), alpha_optimizer())
    step = make_search_step(net, hypergrad.get_estimator(estimator, **options), optimizers,
                            StepOptions(axis_name=DATA_AXIS, alpha_penalty=alpha_penalty))
    w_opt, a_opt = optimizers.weight, optimizers.alpha
    keys = jax.random.split(jax.random.key(0), 4)
    batches = [(jax.random.normal(k, (GLOBAL_BATCH, 6, 6, 3), dtype), jnp.arange(GLOBAL_BATCH) % 3) for k in keys]
    alphas = {"layers": 0.1 * jax.random.normal(jax.random.key(5), (2, 3), dtype)}
    init_net = ChainNetwork(C=4, layers=2, num_classes=3, ops=("conv_3x3", "identity", "max_pool_3x3"))
    state = init_state(init_net, alphas, batches[0][0][:2], jax.random.key(1), w_opt, a_opt)
    state = jax.tree.map(lambda t: t.astype(dtype) if jnp.issubdtype(t.dtype, jnp.floating) else t, state)
    return step, state, batches, schedule


def plain_loss(w, alphas, batch, batch_stats):
    """The training loss on one device, without the data axis (for hand computations)."""
    net = ChainNetwork(C=4, layers=2, num_classes=3, ops=("conv_3x3", "identity", "max_pool_3x3"))
    return supernet_loss(net, batch_stats)(w, alphas, batch)[0]

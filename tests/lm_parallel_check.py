"""Run language-model steps on a 1-device and an N-device mesh (the same global windows) and print the
largest difference: the DARTS recurrent search step (`estimator` from argv) and the cell's training
step. Run with XLA_FLAGS=--xla_force_host_platform_device_count=N and, for an exact comparison,
JAX_ENABLE_X64=1 (set before jax loads)."""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import config_blocks
from jaxnas.parallel import DATA_AXIS, data_mesh, data_parallel, replicate, shard_batch
from jaxnas.search import config as search_config
from jaxnas.search.loop import search_setup
from jaxnas.tasks import TASK_OPTIONS, get_task
from jaxnas.train import language
from jaxnas.train.step import optimizer
from jaxnas.vocabulary.darts_rnn import DARTS_V2

# 4 examples a device: with 2 (batch 4 over 2 devices) the search's BatchNorm over heavily dropped-out
# states is so ill-conditioned that float64 rounding grows to 1e-2 within one window.
VOCAB, BATCH, BPTT, DIM = 13, 8, 6, 5


def _widest(tree):
    """Floating leaves in the widest float enabled (float64 under JAX_ENABLE_X64)."""
    wide = jnp.zeros(()).dtype
    return jax.tree.map(lambda t: t.astype(wide) if jnp.issubdtype(t.dtype, jnp.floating) else t, tree)


def _config(estimator: str):
    c = search_config.get_config()
    c.task = search_config.task_block("language_model", bptt=BPTT)
    c.space, c.dataset, c.channels, c.batch_size, c.epochs = "darts_rnn", "pydoc", DIM, BATCH, 2
    c.lr = c.lr_min = 2.0
    c.momentum, c.weight_decay, c.clip_norm = 0.0, 5e-7, 0.25
    c.estimator = search_config.estimator_block(estimator)
    return c


def windows(n: int):
    """n windows (x, y, length, reset) of random tokens; the first resets, one is short."""
    out = []
    for i in range(n):
        k = jax.random.key(100 + i)
        x = jax.random.randint(k, (BATCH, BPTT), 0, VOCAB)
        y = jax.random.randint(jax.random.fold_in(k, 1), (BATCH, BPTT), 0, VOCAB)
        length = BPTT - 2 if i == 1 else BPTT
        out.append((x, y, jnp.full(BATCH, length, jnp.int32), jnp.full(BATCH, i == 0)))
    return out


def search(estimator: str, devices, steps: int = 3):
    config = _config(estimator)
    space, strategy = search_config.space_and_strategy(config)
    task = get_task(config.task)
    setup = search_setup(config, space, strategy, VOCAB, None, 10, axis_name=DATA_AXIS, task=task)
    mesh = data_mesh(devices)
    state = replicate(_widest(setup.init()), mesh)
    fn = data_parallel(setup.step, mesh)
    train, val = windows(steps), windows(steps + 3)[3:]
    for i in range(steps):
        state, _ = fn(state, (shard_batch(train[i], mesh),), shard_batch(val[i], mesh))
    state = jax.device_get(state)
    return (state.params, state.alphas, state.batch_stats, state.carry)


def train(devices, steps: int = 3):
    task = get_task(config_blocks.block(TASK_OPTIONS, "language_model", bptt=BPTT, dropoute=0.1))
    net = language.rnn_network(DARTS_V2, VOCAB, DIM, axis_name=DATA_AXIS, **task.network_options())
    plain = language.rnn_network(DARTS_V2, VOCAB, DIM, **task.network_options())
    opt = optimizer(lambda _: 2.0, 0.0, 8e-7, 0.25)
    mesh = data_mesh(devices)
    state = replicate(_widest(language.init_state(plain, jax.random.key(0), opt, BATCH)), mesh)
    fn = data_parallel(language.make_train_step(net, task, opt, DATA_AXIS), mesh)
    for batch in windows(steps):
        state, _ = fn(state, shard_batch(batch, mesh))
    state = jax.device_get(state)
    return (state.params, state.hidden)


def max_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


if __name__ == "__main__":
    estimator = sys.argv[1]
    one, many = search(estimator, jax.devices()[:1]), search(estimator, jax.devices())
    t_one, t_many = train(jax.devices()[:1]), train(jax.devices())
    start = search(estimator, jax.devices()[:1], steps=0)
    print(f"devices={jax.device_count()} search_diff={max_diff(one, many):.3e} "
          f"train_diff={max_diff(t_one, t_many):.3e} alpha_moved={max_diff(one[1], start[1]):.3e} "
          f"x64={jnp.zeros(()).dtype == jnp.float64}")

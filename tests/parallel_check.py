"""Run search steps on a 1-device and an N-device mesh (same global batch) and print the largest
difference. Run with XLA_FLAGS=--xla_force_host_platform_device_count=N (set before jax loads)."""

import sys

import jax
import numpy as np
from search_problem import build

from jaxnas.parallel import data_mesh, data_parallel, replicate, shard_batch


def run(estimator, devices, steps=3):
    step, state, batches, _ = build(estimator)
    mesh = data_mesh(devices)
    fn = data_parallel(step, mesh)
    state = replicate(state, mesh)
    for i in range(steps):
        train, val = batches[i % 2], batches[2 + i % 2]
        state, metrics = fn(state, shard_batch((train,), mesh), shard_batch(val, mesh))
    return jax.device_get(state), jax.device_get(metrics)


def flat(state):
    """Weights, α and BN statistics as one vector."""
    return np.concatenate([np.asarray(x).ravel() for x in jax.tree.leaves((state.params, state.alphas,
                                                                        state.batch_stats))])


if __name__ == "__main__":
    estimator = sys.argv[1]
    one, m1 = run(estimator, jax.devices()[:1])
    many, mn = run(estimator, jax.devices())
    diffs = [float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
             for a, b in zip(jax.tree.leaves((one.params, one.alphas, one.batch_stats)),
                             jax.tree.leaves((many.params, many.alphas, many.batch_stats)))]
    moved = float(np.max(np.abs(np.asarray(one.alphas["layers"]) - np.asarray(build(estimator)[1].alphas["layers"]))))
    if len(sys.argv) > 2:  # the N-device state, flattened as tests/multihost_check.py writes it
        np.save(sys.argv[2], flat(many))
    print(f"devices={jax.device_count()} max_diff={max(diffs):.3e} alpha_moved={moved:.3e} "
          f"loss1={float(m1['train_loss']):.6f} lossN={float(mn['train_loss']):.6f}")

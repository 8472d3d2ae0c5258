"""PC-DARTS's partial channel connections and edge normalisation (Xu et al., 2020).

An edge sends only its input's first C/K channels through the mixed op; the other channels
bypass it (max-pooled 2×2 on a stride-2 edge), and a channel shuffle interleaves the two so the
next edge sees a different subset. Each node then weighs its incoming edges by β̃ = softmax(β)
over those edges (`edge_weights`), which steadies the choice of edges while
the channel subset varies.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.vocabulary.darts import STEPS, edge_inputs

Array = jax.Array


def channel_shuffle(x: Array, groups: int) -> Array:
    """NHWC channel shuffle: channel g·(C/groups) + i moves to position i·groups + g."""
    *lead, c = x.shape
    return x.reshape(*lead, groups, c // groups).swapaxes(-1, -2).reshape(*lead, c)


def partial_output(mixed: Array, x: Array, k: int, stride: int) -> Array:
    """Join an edge's mixed-op output on the first C/k channels of `x` with the bypassed rest."""
    if k == 1:
        return mixed
    rest = x[..., x.shape[-1] // k:]
    if stride == 2:
        rest = nn.max_pool(rest, (2, 2), strides=(2, 2))
    return channel_shuffle(jnp.concatenate([mixed, rest], axis=-1), k)


def edge_weights(betas: jax.Array, steps: int = STEPS) -> jax.Array:
    """PC-DARTS's β̃: softmax of β over the edges that enter each node, as one (edges,) vector."""
    nodes = jnp.array([node for node, _ in edge_inputs(steps)])
    shifted = betas - jax.ops.segment_max(betas, nodes, num_segments=steps)[nodes]
    e = jnp.exp(shifted)
    return e / jax.ops.segment_sum(e, nodes, num_segments=steps)[nodes]

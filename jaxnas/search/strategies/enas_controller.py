"""ENAS's controller (Pham et al., 2018): an LSTM that emits an architecture one decision at a time,
trained with REINFORCE.

At each decision the LSTM's output goes through the head of that decision's kind ('input' or
'op'), logits are scaled as in the ENAS code (`tanh_constant · tanh(logits / temperature)`),
invalid values are masked (a DARTS node's second input must differ from its first), a value is
drawn, and its embedding is the next input. `Controller.apply(params, key=k)` samples;
`Controller.apply(params, values=v)` scores given values. Both return (values, log p, entropy).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.search.hypergrad import tree_norm
from jaxnas.spaces.decisions import Decision, valid_mask, widths


class Controller(nn.Module):
    decisions: tuple[Decision, ...]
    hidden: int = 100
    temperature: float = 5.0
    tanh_constant: float = 2.5

    @nn.compact
    def __call__(self, key: jax.Array | None = None, values: jax.Array | None = None):
        if (key is None) == (values is None):
            raise ValueError("give the controller either a key (to sample) or values (to score)")
        w = widths(self.decisions)
        init = nn.initializers.uniform(0.2)  # ENAS: U(-0.1, 0.1); shifted below
        lstm = nn.OptimizedLSTMCell(self.hidden, name="lstm")
        heads = {k: nn.Dense(n, name=f"{k}_head") for k, n in w.items()}
        embeds = {k: nn.Embed(n, self.hidden, name=f"{k}_embed") for k, n in w.items()}
        start = self.param("start", lambda k, s: init(k, s) - 0.1, (self.hidden,))
        carry = (jnp.zeros(self.hidden), jnp.zeros(self.hidden))
        x = start
        keys = jax.random.split(key, len(self.decisions)) if key is not None else None
        chosen: list[jax.Array] = []
        log_prob, entropy = 0.0, 0.0
        for t, d in enumerate(self.decisions):
            carry, h = lstm(carry, x)
            logits = self.tanh_constant * jnp.tanh(heads[d.kind](h) / self.temperature)
            mask = valid_mask(d, w[d.kind], chosen)
            # A finite mask value keeps p·log p and every gradient finite (exp(-1e9) is 0).
            logp = jax.nn.log_softmax(jnp.where(mask, logits, -1e9))
            if values is None:
                v = jax.random.categorical(keys[t], logp).astype(jnp.int32)
            else:
                v = jnp.asarray(values[t], jnp.int32)
            chosen.append(v)
            log_prob = log_prob + logp[v]
            entropy = entropy - jnp.sum(jnp.where(mask, jnp.exp(logp) * logp, 0.0))
            x = embeds[d.kind](v)
        return jnp.stack(chosen), log_prob, entropy


def init_controller(controller: Controller, rng: jax.Array):
    return controller.init(rng, values=jnp.zeros(len(controller.decisions), jnp.int32))["params"]


def sample(controller: Controller, params, key: jax.Array, n: int) -> jax.Array:
    """n architectures drawn from the controller: (n, D) int32 values."""
    return jax.vmap(lambda k: controller.apply({"params": params}, key=k)[0])(jax.random.split(key, n))


def reinforce_loss(controller: Controller, params, values: jax.Array, advantages: jax.Array,
                   entropy_weight: float) -> jax.Array:
    """−mean((R − b)·log p(values)) − entropy_weight·mean(H): its gradient is REINFORCE's estimate of
    −∇E[R] (the baseline b lowers its variance, the entropy bonus keeps the controller exploring)."""
    _, logp, ent = jax.vmap(lambda v: controller.apply({"params": params}, values=v))(values)
    return -jnp.mean(jax.lax.stop_gradient(advantages) * logp) - entropy_weight * jnp.mean(ent)


def reinforce_gradient(controller: Controller, params, reward_fn: Callable[[jax.Array], jax.Array],
                       baseline: jax.Array, key: jax.Array, samples: int, entropy_weight: float,
                       baseline_decay: float):
    """Draw `samples` architectures, reward them, move the baseline b ← decay·b + (1 − decay)·mean(R)
    (as ENAS), and return (the REINFORCE loss's gradient, the new baseline, metrics)."""
    values = sample(controller, params, key, samples)
    rewards = reward_fn(values)
    baseline = baseline_decay * baseline + (1.0 - baseline_decay) * jnp.mean(rewards)
    loss = lambda p: reinforce_loss(controller, p, values, rewards - baseline, entropy_weight)  # noqa: E731
    grads = jax.grad(loss)(params)
    entropy = jnp.mean(jax.vmap(lambda v: controller.apply({"params": params}, values=v)[2])(values))
    return grads, baseline, {"reward": jnp.mean(rewards), "baseline": baseline, "controller_entropy": entropy,
                             "hypergrad_norm": tree_norm(grads)}


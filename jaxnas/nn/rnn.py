"""DARTS's recurrent language model: the gated cell, its search supernet and its discrete network
(Liu et al., ICLR 2019; the model of Merity et al.'s AWD-LSTM with the LSTM replaced by the cell).

Every node of the cell is a highway step: from a state s and its node's matrix W (D, 2D),
`c, h = split(s @ W)` and `s + σ(c)·(f(h) − s)`. Node 0 reads the input and the previous hidden
state through W0 (2D, 2D) with f = tanh; the cell's output (the next hidden state) is the mean of
the nodes in `concat`. Dropout masks on x, h and every state fed to a matrix are drawn once per
window and shared by all time steps ("variational" dropout); the highway term uses the unmasked
state, as the authors' code does.

- Search (`RnnSupernet`, `alphas={"recurrent": (36, 5)}`): node i reads every earlier node through
  its one matrix W_i, mixes the four activations of each edge by softmax(α) ('none' takes part in
  the softmax and adds nothing), and every node (node 0 too) goes through one BatchNorm without
  affine parameters, shared by all nodes and time steps; its running statistics are updated at
  each of those calls, in order, as PyTorch's `BatchNorm1d` does.
- Paths (`RnnSupernet` with `alphas={"pred", "op", "concat"}`): one predecessor and one activation
  per node, and the nodes to average (what ENAS's controller and random search draw), on the same
  shared weights and BatchNorm.
- Discrete (`RnnNetwork`, from a `RecurrentGenotype`): one matrix per node, no BatchNorm.

Everything runs in one `lax.scan` over time; windows shorter than the input's T (DARTS draws
BPTT lengths) pass `length`: later steps leave the hidden state and BN statistics unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.parallel import cross_device_mean
from jaxnas.vocabulary.darts_rnn import ACTIVATIONS, RNN_OPS, STEPS, RecurrentGenotype, edge_rows

INIT_RANGE = 0.04  # every weight: uniform in ±0.04 (the decoder bias: 0)
BN_MOMENTUM, BN_EPS = 0.1, 1e-5  # PyTorch's BatchNorm1d defaults, which the authors use
_ACTS: dict[str, Callable] = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid,
                              "identity": lambda x: x}


def uniform_init(key, shape, dtype=jnp.float32):
    """U(±0.04): every weight of the authors' model."""
    return jax.random.uniform(key, shape, dtype, -INIT_RANGE, INIT_RANGE)


def highway(s: jax.Array, ch: jax.Array, act: Callable) -> jax.Array:
    """s + σ(c)·(act(h) − s), with (c, h) the halves of `ch` = (masked s) @ W."""
    c, h = jnp.split(ch, 2, axis=-1)
    return s + jax.nn.sigmoid(c) * (act(h) - s)


def first_node(x, h, w0, x_mask, h_mask):
    """Node 0 from the input and the previous hidden state."""
    return highway(h, jnp.concatenate([x * x_mask, h * h_mask], -1) @ w0, jnp.tanh)


def batch_norm(s, stats, train: bool, axis_name=None):
    """(normalised s, new running statistics): in training with the batch's mean and biased variance
    (across devices with `axis_name`), the running variance updated with the unbiased one."""
    mean_run, var_run = stats
    if not train:
        return (s - mean_run) * jax.lax.rsqrt(var_run + BN_EPS), stats
    mean = cross_device_mean(s.mean(0), axis_name)
    var = cross_device_mean(jnp.mean(jnp.square(s), 0), axis_name) - jnp.square(mean)
    n = s.shape[0] * (jax.lax.psum(1, axis_name) if axis_name else 1)
    new = ((1 - BN_MOMENTUM) * mean_run + BN_MOMENTUM * mean,
           (1 - BN_MOMENTUM) * var_run + BN_MOMENTUM * var * n / max(n - 1, 1))
    return (s - mean) * jax.lax.rsqrt(var + BN_EPS), new


def mixed_cell(params, probs, x, h, masks, stats, train, axis_name=None):
    """One time step of the search cell; `probs` = softmax(α), (36, 5). Returns (h', stats)."""
    x_mask, h_mask = masks
    s0, stats = batch_norm(first_node(x, h, params["W0"], x_mask, h_mask), stats, train, axis_name)
    states = [s0]
    for i in range(1, len(params["Ws"]) + 1):
        prev = jnp.stack(states)  # (i, B, D)
        c, hh = jnp.split((prev * h_mask) @ params["Ws"][i - 1], 2, axis=-1)
        gate = jax.nn.sigmoid(c)
        p = probs[edge_rows(i).start:edge_rows(i).stop]  # (i, 5): this node's edges
        mixed_act = sum(p[:, k, None, None] * _ACTS[op](hh) for k, op in enumerate(RNN_OPS) if op != "none")
        kept = p[:, 1:].sum(-1)[:, None, None]  # the mass not on 'none'
        s = jnp.sum(kept * prev + gate * (mixed_act - kept * prev), axis=0)
        s, stats = batch_norm(s, stats, train, axis_name)
        states.append(s)
    return jnp.mean(jnp.stack(states[1:]), 0), stats


def path_cell(params, path, x, h, masks, stats, norm: Callable | None = None):
    """One time step of the cell with one (predecessor, activation) per node: `path["pred"]` (steps,)
    ints, `path["op"]` (steps,) indices into RNN_OPS (never 'none'), `path["concat"]` (steps,) the
    weights of nodes 1..steps in the output mean. `norm(s, stats) -> (s, stats)`: the supernet's
    shared BatchNorm after every node (None: none, as in a derived network)."""
    x_mask, h_mask = masks

    def bn(s, stats):
        return norm(s, stats) if norm is not None else (s, stats)

    s0, stats = bn(first_node(x, h, params["W0"], x_mask, h_mask), stats)
    states = [s0]
    for i in range(1, len(params["Ws"]) + 1):
        pred, op = path["pred"][i - 1], path["op"][i - 1]
        s_prev = states[pred] if isinstance(pred, int) else jnp.take(jnp.stack(states), pred, axis=0)
        c, hh = jnp.split((s_prev * h_mask) @ params["Ws"][i - 1], 2, axis=-1)
        if isinstance(op, int):  # a genotype's cell: its activation only
            act = _ACTS[RNN_OPS[op]](hh)
        else:
            act = jnp.take(jnp.stack([_ACTS[name](hh) for name in ACTIVATIONS]), op - 1, axis=0)
        s, stats = bn(s_prev + jax.nn.sigmoid(c) * (act - s_prev), stats)
        states.append(s)
    if isinstance(path["concat"], tuple):
        return jnp.mean(jnp.stack([states[i] for i in path["concat"]]), 0), stats
    weights = path["concat"].astype(s0.dtype)
    return jnp.einsum("n,nbd->bd", weights, jnp.stack(states[1:])) / weights.sum(), stats


def genotype_path(genotype: RecurrentGenotype) -> dict:
    """A genotype as the static path `path_cell` reads: Python ints and the concat tuple (the
    discrete network is traced for its cell only)."""
    return {"pred": tuple(j for _, j in genotype.recurrent),
            "op": tuple(RNN_OPS.index(name) for name, _ in genotype.recurrent), "concat": tuple(genotype.concat)}


def path_of_onehot(onehot: jax.Array, steps: int, output: str = "all") -> dict:
    """The path a one-hot α (rows: edges, one row per node set at its activation) describes:
    each node's predecessor and activation, and the output weights (`all` nodes, or the
    `loose_ends` no other node reads, ENAS's output)."""
    preds, ops = [], []
    for i in range(1, steps + 1):
        block = onehot[edge_rows(i).start:edge_rows(i).stop]  # (i, 5)
        j = jnp.argmax(block.max(-1))
        preds.append(j)
        ops.append(jnp.argmax(block[j]))
    pred, op = jnp.stack(preds).astype(jnp.int32), jnp.stack(ops).astype(jnp.int32)
    if output == "all":
        concat = jnp.ones(steps, jnp.float32)
    else:
        concat = 1.0 - jnp.zeros(steps + 1, jnp.float32).at[pred].set(1.0)[1:]
    return {"pred": pred, "op": op, "concat": concat}


def locked_mask(rng, rate: float, shape, dtype=jnp.float32):
    """A dropout mask (Bernoulli(1−rate)/(1−rate)), or ones when `rng` is None or `rate` is 0."""
    if rng is None or rate == 0.0:
        return jnp.ones(shape, dtype)
    # p in float32: the same uniform bits, so the same mask, with or without JAX_ENABLE_X64 (the
    # float64 study evaluates the float32 search's losses).
    return jax.random.bernoulli(rng, jnp.float32(1.0 - rate), shape).astype(dtype) / (1.0 - rate)


class _LanguageModel(nn.Module):
    """Embedding (tied to the decoder), the cell over time, the decoder; dropouts as AWD-LSTM's.

    `__call__(tokens (T, B) ints, hidden (B, D), alphas, train, length=None, use_dropout=None)` returns
    `(logits (T, B, V), {"hidden": h_T, "outputs": (T, B, D) cell outputs before output dropout})`;
    the outputs are what the temporal activation regulariser (TAR) reads. `train` sets BatchNorm's
    mode and, unless `use_dropout` says otherwise, whether dropout is on (scoring sampled cells: BN on
    the batch's statistics, no dropout).
    """

    vocab_size: int
    dim: int
    steps: int = STEPS
    dropout: float = 0.75  # on the cell's outputs
    dropouth: float = 0.25  # on h and every state fed to a node's matrix
    dropoutx: float = 0.75  # on the cell's input
    dropouti: float = 0.2  # on the embeddings
    dropoute: float = 0.0  # whole words: rows of the embedding
    axis_name: Any = None

    def cell_params(self) -> dict:
        """The cell's weights: W0 (2D, 2D) and one (D, 2D) matrix per node (declared in `__call__`)."""
        d = self.dim
        return {"W0": self.param("W0", uniform_init, (2 * d, 2 * d)),
                "Ws": self.param("Ws", uniform_init, (self.steps, d, 2 * d))}

    def cell(self, params, alphas, x, h, masks, stats, train):  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def state_size(self) -> int:
        """The width of the hidden state carried between windows (the cell's: D)."""
        return self.dim

    @property
    def mask_sizes(self) -> tuple[int, int]:
        """The widths of the input and hidden dropout masks."""
        return self.dim, self.dim

    def cell_output(self, state: jax.Array) -> jax.Array:
        """The (B, D) output of a time step from the carried state (the cell's: the state itself)."""
        return state

    def uses_batch_norm(self, alphas) -> bool:
        return False

    def _example_mask(self, rng, rate: float, b: int, d: int, dtype):
        """A (b, d) mask of this device's examples: drawn for the whole batch over `axis_name`'s
        devices and sliced, so N devices drop what one device would."""
        if self.axis_name is None or rng is None or rate == 0.0:
            return locked_mask(rng, rate, (b, d), dtype)
        n = jax.lax.psum(1, self.axis_name)
        full = locked_mask(rng, rate, (b * n, d), dtype)
        return jax.lax.dynamic_slice_in_dim(full, jax.lax.axis_index(self.axis_name) * b, b, 0)

    @nn.compact
    def __call__(self, tokens, hidden, alphas=None, train: bool = False, length=None, use_dropout: bool | None = None):
        d, v = self.dim, self.vocab_size
        embedding = self.param("embedding", uniform_init, (v, d))
        bias = self.param("bias", nn.initializers.zeros, (v,))
        params = self.cell_params()
        norm = self.uses_batch_norm(alphas)
        if norm:
            bn_mean = self.variable("batch_stats", "mean", jnp.zeros, (d,), embedding.dtype)
            bn_var = self.variable("batch_stats", "var", jnp.ones, (d,), embedding.dtype)
            stats = (bn_mean.value, bn_var.value)
        else:
            stats = ()
        t_len, b = tokens.shape
        rates = (self.dropoute, self.dropouti, self.dropoutx, self.dropouth, self.dropout)
        use_dropout = train if use_dropout is None else use_dropout
        rngs = list(jax.random.split(self.make_rng("dropout"), 5)) if use_dropout and any(rates) else [None] * 5
        words = locked_mask(rngs[0], self.dropoute, (v, 1), embedding.dtype)
        emb = jnp.take(embedding * words, tokens, axis=0)  # (T, B, D)
        emb = emb * self._example_mask(rngs[1], self.dropouti, b, d, emb.dtype)[None]
        x_size, h_size = self.mask_sizes
        masks = (self._example_mask(rngs[2], self.dropoutx, b, x_size, emb.dtype),
                 self._example_mask(rngs[3], self.dropouth, b, h_size, emb.dtype))
        length = t_len if length is None else length
        # The scan's carry in the widest float of its inputs (α in float64 under x64 makes the
        # cell's states float64 even with float32 weights).
        dtype = jnp.result_type(hidden.dtype, embedding.dtype,
                                *[a.dtype for a in jax.tree.leaves(alphas) if jnp.issubdtype(a.dtype, jnp.floating)])
        hidden, stats = jax.tree.map(lambda a: a.astype(dtype), (hidden, stats))

        def step(carry, inputs):
            h, stats = carry
            x, t = inputs
            new_h, new_stats = self.cell(params, alphas, x, h, masks, stats, train and norm)
            live = t < length
            h = jnp.where(live, new_h, h)
            stats = jax.tree.map(lambda n, o: jnp.where(live, n, o), new_stats, stats)
            return (h, stats), self.cell_output(new_h)

        (h_last, stats), outputs = jax.lax.scan(step, (hidden, stats), (emb, jnp.arange(t_len)))
        if train and norm and not self.is_initializing():
            bn_mean.value, bn_var.value = (s.astype(v.value.dtype) for s, v in zip(stats, (bn_mean, bn_var)))
        dropped = outputs * self._example_mask(rngs[4], self.dropout, b, d, outputs.dtype)[None]
        logits = dropped @ embedding.T + bias
        return logits, {"hidden": h_last, "outputs": outputs}


class RnnSupernet(_LanguageModel):
    """The search network; `alphas` is {"recurrent": (36, 5)}. With `mixing="softmax"` (DARTS) it
    mixes every edge and activation by softmax(α); with `mixing="path"` α is a one-hot path (one
    edge and activation per node: ENAS, random search) and only that path is computed, its output
    the mean of `output`'s nodes ("all", or ENAS's "loose_ends")."""

    mixing: str = "softmax"
    output: str = "all"

    def uses_batch_norm(self, alphas) -> bool:
        return True

    def cell(self, params, alphas, x, h, masks, stats, train):
        if self.mixing == "softmax":
            return mixed_cell(params, jax.nn.softmax(alphas["recurrent"], -1), x, h, masks, stats, train,
                              self.axis_name)
        return path_cell(params, path_of_onehot(alphas["recurrent"], self.steps, self.output), x, h, masks, stats,
                         lambda s, st: batch_norm(s, st, train, self.axis_name))


class RnnNetwork(_LanguageModel):
    """The network of a derived cell (`genotype`), as trained from scratch: no BatchNorm."""

    genotype: RecurrentGenotype | None = None

    def cell(self, params, alphas, x, h, masks, stats, train):
        return path_cell(params, genotype_path(self.genotype), x, h, masks, stats)


def rnn_network(genotype: RecurrentGenotype, vocab_size: int, dim: int, **dropouts) -> RnnNetwork:
    return RnnNetwork(vocab_size=vocab_size, dim=dim, steps=genotype.steps, genotype=genotype, **dropouts)


def lstm_step(w, b, x, h, c):
    """One LSTM step (gates i, f, g, o in PyTorch's order) from `[x, h] @ w + b`."""
    i, f, g, o = jnp.split(jnp.concatenate([x, h], -1) @ w + b, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


class LstmNetwork(_LanguageModel):
    """The baseline a searched cell is compared with: two LSTM layers (D → `hidden` → D, the second
    tied to the embedding's width), in the same model, dropouts and recipe as the cell's network:
    `dropoutx` on the first layer's input, `dropouth` on its output, the rest unchanged. The carried
    state packs (h1, c1, c2, h2)."""

    hidden: int = 0

    def cell_params(self) -> dict:
        d, n = self.dim, self.hidden
        return {"W1": self.param("W1", uniform_init, (d + n, 4 * n)), "b1": self.param("b1", nn.initializers.zeros,
                                                                                     (4 * n,)),
                "W2": self.param("W2", uniform_init, (n + d, 4 * d)), "b2": self.param("b2", nn.initializers.zeros,
                                                                                     (4 * d,))}

    @property
    def state_size(self) -> int:
        return 2 * self.hidden + 2 * self.dim

    @property
    def mask_sizes(self) -> tuple[int, int]:
        return self.dim, self.hidden

    def cell_output(self, state: jax.Array) -> jax.Array:
        return state[:, -self.dim:]

    def cell(self, params, alphas, x, h, masks, stats, train):
        x_mask, h_mask = masks
        n, d = self.hidden, self.dim
        h1, c1, c2, h2 = jnp.split(h, [n, 2 * n, 2 * n + d], axis=-1)
        h1, c1 = lstm_step(params["W1"], params["b1"], x * x_mask, h1, c1)
        h2, c2 = lstm_step(params["W2"], params["b2"], h1 * h_mask, h2, c2)
        return jnp.concatenate([h1, c1, c2, h2], -1), stats


def lstm_cell_params(dim: int, hidden: int) -> int:
    """Weights of the two LSTM layers (D → hidden → D) outside the embedding and decoder bias."""
    return (dim + hidden) * 4 * hidden + 4 * hidden + (hidden + dim) * 4 * dim + 4 * dim


def matching_lstm(dim: int, cell_params: int) -> int:
    """The first layer's width whose two-layer LSTM has the parameter count nearest `cell_params`."""
    a, b, c = 4.0, 8.0 * dim + 4.0, 4.0 * dim * dim + 4.0 * dim - cell_params
    root = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    candidates = (max(1, int(root) + k) for k in (-1, 0, 1, 2))
    return min(candidates, key=lambda n: abs(lstm_cell_params(dim, n) - cell_params))

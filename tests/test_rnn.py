"""DARTS's recurrent cell against per-edge, per-time-step loops written here in float64 numpy: the
supernet's logits, hidden state and BN running statistics; its α gradient against central
differences of the loop; the discrete network of a genotype; paths; dropout masks shared over time;
the published genotypes; DARTS_V2's parameter count at the paper's size."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.nn.rnn import RnnNetwork, RnnSupernet, rnn_network
from jaxnas.vocabulary.darts_rnn import (
    DARTS_V1,
    DARTS_V2,
    ENAS,
    RNN_OPS,
    RecurrentGenotype,
    edge_names,
    loose_ends,
    num_edges,
)

V, D, T, B = 11, 4, 3, 5
NO_DROPOUT = dict(dropout=0.0, dropouth=0.0, dropoutx=0.0, dropouti=0.0, dropoute=0.0)
ACT = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0), "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
       "identity": lambda a: a}


def sig(a):
    return 1 / (1 + np.exp(-a))


class RefBN:
    """PyTorch's BatchNorm1d(affine=False) in training mode, one call at a time."""

    def __init__(self, mean, var):
        self.mean, self.var = np.array(mean), np.array(var)

    def __call__(self, s):
        m, v = s.mean(0), s.var(0)
        n = s.shape[0]
        self.mean = 0.9 * self.mean + 0.1 * m
        self.var = 0.9 * self.var + 0.1 * v * n / (n - 1)
        return (s - m) / np.sqrt(v + 1e-5)


def ref_search(p, alpha, tokens, h, bn_stats):
    """The search model, one edge, op and time step at a time (no dropout, BN in training mode)."""
    e = np.exp(alpha - alpha.max(1, keepdims=True))
    probs = e / e.sum(1, keepdims=True)
    bn = RefBN(*bn_stats)
    outputs = []
    for t in range(tokens.shape[0]):
        x = p["embedding"][tokens[t]]
        ch = np.concatenate([x, h], 1) @ p["W0"]
        s0 = bn(h + sig(ch[:, :D]) * (np.tanh(ch[:, D:]) - h))
        states, row = [s0], 0
        for i in range(8):
            s = np.zeros_like(s0)
            for j in range(i + 1):
                chj = states[j] @ p["Ws"][i]
                c, hh = sig(chj[:, :D]), chj[:, D:]
                for k, op in enumerate(RNN_OPS):
                    if op != "none":
                        s = s + probs[row + j, k] * (states[j] + c * (ACT[op](hh) - states[j]))
            states.append(bn(s))
            row += i + 1
        h = np.mean(states[1:], 0)
        outputs.append(h)
    outputs = np.stack(outputs)
    return outputs @ p["embedding"].T + p["bias"], h, (bn.mean, bn.var)


def ref_genotype(p, genotype, tokens, h):
    outputs = []
    for t in range(tokens.shape[0]):
        x = p["embedding"][tokens[t]]
        ch = np.concatenate([x, h], 1) @ p["W0"]
        states = [h + sig(ch[:, :D]) * (np.tanh(ch[:, D:]) - h)]
        for i, (op, j) in enumerate(genotype.recurrent):
            chj = states[j] @ p["Ws"][i]
            states.append(states[j] + sig(chj[:, :D]) * (ACT[op](chj[:, D:]) - states[j]))
        h = np.mean([states[i] for i in genotype.concat], 0)
        outputs.append(h)
    return np.stack(outputs) @ p["embedding"].T + p["bias"], h


def _f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


@pytest.fixture(scope="module")
def problem():
    k = jax.random.split(jax.random.key(0), 4)
    tokens = jax.random.randint(k[0], (T, B), 0, V)
    h0 = np.asarray(jax.random.normal(k[1], (B, D)), np.float64) * 0.5
    alpha = np.asarray(jax.random.normal(k[2], (num_edges(), len(RNN_OPS))), np.float64)
    net = RnnSupernet(vocab_size=V, dim=D, **NO_DROPOUT)
    variables = _f64(net.init(k[3], tokens, jnp.zeros((B, D)), {"recurrent": jnp.asarray(alpha)}))
    # non-trivial running statistics to start from
    variables["batch_stats"] = {"mean": jnp.linspace(-0.1, 0.2, D), "var": jnp.linspace(0.5, 1.5, D)}
    return net, variables, np.asarray(tokens), h0, alpha


def test_supernet_matches_the_loop(problem):
    net, variables, tokens, h0, alpha = problem
    (logits, out), upd = net.apply(variables, jnp.asarray(tokens), jnp.asarray(h0), {"recurrent": jnp.asarray(alpha)},
                                   train=True, mutable=["batch_stats"])
    p = jax.tree.map(np.asarray, variables["params"])
    bn = (np.asarray(variables["batch_stats"]["mean"]), np.asarray(variables["batch_stats"]["var"]))
    ref_logits, ref_h, ref_stats = ref_search(p, alpha, tokens, h0, bn)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["hidden"], ref_h, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(upd["batch_stats"]["mean"], ref_stats[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(upd["batch_stats"]["var"], ref_stats[1], rtol=1e-10, atol=1e-12)


def test_a_shorter_window_leaves_the_state_after_its_length(problem):
    net, variables, tokens, h0, alpha = problem
    a = {"recurrent": jnp.asarray(alpha)}
    (_, out), upd = net.apply(variables, jnp.asarray(tokens), jnp.asarray(h0), a, train=True, length=2,
                              mutable=["batch_stats"])
    (_, short), upd_short = net.apply(variables, jnp.asarray(tokens[:2]), jnp.asarray(h0), a, train=True,
                                      mutable=["batch_stats"])
    np.testing.assert_allclose(out["hidden"], short["hidden"], rtol=1e-12)
    np.testing.assert_allclose(upd["batch_stats"]["var"], upd_short["batch_stats"]["var"], rtol=1e-12)


def test_alpha_gradient_against_central_differences_of_the_loop(problem):
    net, variables, tokens, h0, alpha = problem
    p = jax.tree.map(np.asarray, variables["params"])
    bn = (np.asarray(variables["batch_stats"]["mean"]), np.asarray(variables["batch_stats"]["var"]))
    targets = np.roll(tokens, -1, 0)

    def ref_loss(a):
        logits = ref_search(p, a, tokens, h0, bn)[0]
        z = logits - logits.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        return -np.take_along_axis(logp, targets[..., None], -1).mean()

    def loss(a):
        logits = net.apply(variables, jnp.asarray(tokens), jnp.asarray(h0), {"recurrent": a}, train=True,
                           mutable=["batch_stats"])[0][0]
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.asarray(targets)[..., None], -1).mean()

    grad = np.asarray(jax.grad(loss)(jnp.asarray(alpha)))
    assert abs(float(loss(jnp.asarray(alpha))) - ref_loss(alpha)) < 1e-12
    eps = 1e-6
    for row, k in [(0, 0), (0, 1), (3, 2), (14, 4), (35, 3), (20, 0), (27, 1)]:
        d = np.zeros_like(alpha)
        d[row, k] = eps
        fd = (ref_loss(alpha + d) - ref_loss(alpha - d)) / (2 * eps)
        assert abs(grad[row, k] - fd) < 1e-8 * max(1.0, abs(fd)), (row, k, grad[row, k], fd)


@pytest.mark.parametrize("genotype", [DARTS_V2, ENAS], ids=["DARTS_V2", "ENAS"])
def test_discrete_network_matches_the_loop(genotype):
    k = jax.random.split(jax.random.key(1), 3)
    tokens = jax.random.randint(k[0], (T, B), 0, V)
    h0 = np.asarray(jax.random.normal(k[1], (B, D)), np.float64)
    net = rnn_network(genotype, V, D, **NO_DROPOUT)
    variables = _f64(net.init(k[2], tokens, jnp.zeros((B, D))))
    assert "batch_stats" not in variables
    logits, out = net.apply(variables, tokens, jnp.asarray(h0), train=True)
    ref_logits, ref_h = ref_genotype(jax.tree.map(np.asarray, variables["params"]), genotype, np.asarray(tokens), h0)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["hidden"], ref_h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("output", ["all", "loose_ends"])
def test_a_path_through_the_supernet_is_its_genotype_with_batch_norm(problem, output):
    """A one-hot path runs one (predecessor, activation) per node on the shared weights: in eval
    mode with neutral running statistics it computes the genotype's network (its output the mean of
    every node, or of the loose ends as ENAS's cell)."""
    from jaxnas.spaces.darts_rnn import DartsRnnSpace

    net, variables, tokens, h0, _ = problem
    space = DartsRnnSpace(channels=D, mixing="path", output=output)
    genotype = space.arch_from_decisions(space.decisions_of(DARTS_V1))
    assert genotype.recurrent == DARTS_V1.recurrent
    assert genotype.concat == (DARTS_V1.concat if output == "all" else (6, 7, 8))  # nodes no node reads
    path_net = net.clone(mixing="path", output=output)
    neutral = {**variables, "batch_stats": {"mean": jnp.zeros(D), "var": jnp.full(D, 1 - 1e-5)}}
    logits, out = path_net.apply(neutral, jnp.asarray(tokens), jnp.asarray(h0),
                                 space.path(space.decisions_of(DARTS_V1)), train=False)
    ref_logits, ref_h = ref_genotype(jax.tree.map(np.asarray, variables["params"]), genotype, tokens, h0)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(out["hidden"], ref_h, rtol=1e-9, atol=1e-11)


def test_dropout_masks_are_shared_over_time_and_scaled():
    net = RnnNetwork(vocab_size=100, dim=16, steps=8, genotype=DARTS_V2, dropout=0.5, dropouth=0.0, dropoutx=0.0,
                     dropouti=0.0, dropoute=0.0)
    tokens = jnp.arange(18, dtype=jnp.int32).reshape(6, 3)
    variables = _f64(net.init(jax.random.key(0), tokens, jnp.zeros((3, 16))))
    logits, out = net.apply(variables, tokens, jnp.zeros((3, 16)), train=True, rngs={"dropout": jax.random.key(5)})
    # logits = (outputs · mask) @ E.T + b: recover the mask of one example from its logits
    embedding = variables["params"]["embedding"]
    recovered = np.linalg.lstsq(np.asarray(embedding), np.asarray(logits[:, 0].T), rcond=None)[0].T  # (T, D)
    ratio = recovered / np.asarray(out["outputs"][:, 0])
    mask = np.round(ratio, 3)
    assert set(np.unique(mask)) <= {0.0, 2.0}
    assert (mask == mask[0]).all()  # one mask for the whole window
    again = net.apply(variables, tokens, jnp.zeros((3, 16)), train=True, rngs={"dropout": jax.random.key(6)})[0]
    assert not np.allclose(again, logits)


def test_published_genotypes():
    assert RNN_OPS == ("none", "tanh", "relu", "sigmoid", "identity")
    assert DARTS_V2.recurrent[0] == ("sigmoid", 0) and DARTS_V2.recurrent[-1] == ("relu", 5)
    assert DARTS_V2.concat == tuple(range(1, 9)) and DARTS_V1.concat == tuple(range(1, 9))
    assert ENAS.steps == 11 and ENAS.concat == loose_ends(ENAS.recurrent) == (2, 5, 6, 9, 10, 11)
    assert num_edges() == 36 and edge_names()[:4] == ["0->1", "0->2", "1->2", "0->3"]
    assert RecurrentGenotype.from_dict(DARTS_V2.to_dict()) == DARTS_V2
    with pytest.raises(ValueError, match="node 2 reads node 2"):
        RecurrentGenotype((("tanh", 0), ("relu", 2)), (1, 2))
    with pytest.raises(ValueError, match="unknown activation 'none'"):
        RecurrentGenotype((("none", 0),), (1,))


def test_darts_v2_parameter_count_at_the_paper_size():
    """850 dims, 10,000 words (PTB): embedding (tied decoder) + decoder bias + W0 + 8 node matrices."""
    net = rnn_network(DARTS_V2, 10_000, 850)
    shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((2, 1), jnp.int32), jnp.zeros((1, 850))))
    count = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes["params"]))
    assert count == 10_000 * 850 + 10_000 + (2 * 850) * (2 * 850) + 8 * 850 * (2 * 850) == 22_960_000

import random

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_alpha_gradient_reaches_every_row

from jaxnas.describe import describe
from jaxnas.nn.gdas import gumbel_hard
from jaxnas.nn.nb201 import NB201Network
from jaxnas.spaces.nb201 import all_archs, derive, init_alphas
from jaxnas.vocabulary.nb201 import EDGES, OPS, NB201Arch

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_arch_strings_round_trip():
    rng = random.Random(0)
    archs = list(all_archs())
    for arch in rng.sample(archs, 50):
        assert NB201Arch.from_string(arch.to_string()) == arch
    assert NB201Arch.from_string(BEST).to_string() == BEST


def test_enumeration_has_every_cell_once():
    strings = {a.to_string() for a in all_archs()}
    assert len(strings) == 5**6 == 15625


@pytest.mark.parametrize(
    "text,message",
    [
        ("|nor_conv_3x3~0|+|skip_connect~0|", "expected 3 '\\+'-separated nodes"),
        ("|conv_7x7~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|", "unknown NB201 op 'conv_7x7'.*nor_conv_3x3"),
        ("|none~1|+|skip_connect~0|none~1|+|none~0|none~1|none~2|", "should be `op~0`"),
        ("|none~0|+|skip_connect~0|+|none~0|none~1|none~2|", "node 2 must list 2"),
    ],
)
def test_malformed_arch_strings_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        NB201Arch.from_string(text)


def test_derive_picks_each_edges_strongest_op():
    a = np.zeros((len(EDGES), len(OPS)))
    choice = [3, 0, 1, 4, 2, 3]
    a[np.arange(6), choice] = 1.0
    assert derive({"cell": a}).ops == tuple(OPS[i] for i in choice)


def test_parameter_count_matches_hand_count():
    # 5 nor_conv_3x3 per cell: 45 C^2 + 10 C; 5 cells per stage at C = 16, 32, 64; stem 3*9*16 + 32;
    # reduction blocks 9*16*32 + 64 + 9*32*32 + 64 + 16*32 and 9*32*64 + 128 + 9*64*64 + 128 + 32*64;
    # last BN 128; classifier 64*10 + 10.
    cells = sum(5 * (45 * c * c + 10 * c) for c in (16, 32, 64))
    expected = cells + 464 + 14464 + 57600 + 128 + 650
    assert describe(BEST, dataset="cifar10")["params"] == expected == 1288506


def test_supernet_alpha_gradient_reaches_every_edge_and_arch_network_runs():
    net = NB201Network(C=4, N=1, num_classes=10)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3), jnp.float32)
    alphas = init_alphas(jax.random.key(1))
    v = net.init(jax.random.key(2), x, alphas, False)
    assert_alpha_gradient_reaches_every_row(net, v, x, alphas, "cell")
    arch_net = NB201Network(C=4, N=1, num_classes=10, arch=NB201Arch.from_string(BEST))
    va = arch_net.init(jax.random.key(0), x, None, False)
    assert jax.jit(lambda v, x: arch_net.apply(v, x, None, False))(va, x).shape == (4, 10)


def test_gdas_forward_is_the_drawn_path_and_its_gradient_reaches_every_edge(monkeypatch):
    # GDAS on NB201: the value of a straight-through draw is the one-hot path of the drawn ops, and
    # α gets the gradient of softmax((log p + g)/τ) through every entry of every edge's row.
    from jaxnas.nn import nb201 as nb201_nets

    draws = []

    def recording(alpha, key, tau):
        hard, index = gumbel_hard(alpha, key, tau)
        draws.append(index)
        return hard, index

    monkeypatch.setattr(nb201_nets, "gumbel_hard", recording)
    gdas = NB201Network(C=4, N=1, num_classes=10, mixing="gumbel")
    path = NB201Network(C=4, N=1, num_classes=10, mixing="path")
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3), jnp.float32)
    alphas = init_alphas(jax.random.key(1))
    v = path.init(jax.random.key(2), x, alphas, False)  # the same variables: ops named by edge and op
    rngs, tau = {"gumbel": jax.random.key(7)}, 0.5

    def run(net, a, **kw):
        return net.apply(v, x, a, True, mutable=["batch_stats"], **kw)[0]

    got = run(gdas, alphas, rngs=rngs, tau=tau)
    (index,) = draws
    assert len(set(np.asarray(index).tolist())) > 1  # this draw mixes ops
    want = run(path, {"cell": jax.nn.one_hot(index, alphas["cell"].shape[-1])})
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

    def loss(a):
        logits = run(gdas, a, rngs=rngs, tau=tau)
        return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.arange(4)).mean()

    g = np.asarray(jax.jit(jax.grad(loss))(alphas)["cell"])
    assert np.all(np.isfinite(g)) and np.all(np.abs(g).sum(1) > 0)
    # In evaluation each edge takes its strongest op, with no noise.
    strongest = {"cell": jax.nn.one_hot(jnp.argmax(alphas["cell"], -1), alphas["cell"].shape[-1])}
    np.testing.assert_allclose(gdas.apply(v, x, alphas, False), path.apply(v, x, strongest, False), rtol=1e-6,
                               atol=1e-6)

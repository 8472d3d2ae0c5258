import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_alpha_gradient_reaches_every_row

from jaxnas.describe import describe
from jaxnas.nn.nb201 import NB201Network
from jaxnas.spaces.nb201 import EDGES, OPS, NB201Arch, all_archs, derive, init_alphas

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

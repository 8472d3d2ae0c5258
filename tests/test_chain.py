import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_alpha_gradient_reaches_every_row

from jaxnas.nn.chain import ChainNetwork
from jaxnas.spaces.base import get_space
from jaxnas.vocabulary.chain import ChainArch


def test_chain_supernet_gradient_reaches_every_layer_and_derives():
    space = get_space("chain", channels=4, layers=3, ops=("conv_3x3", "conv_5x5", "max_pool_3x3", "identity"))
    net = space.supernet(10)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3), jnp.float32)
    alphas = space.init_alphas(jax.random.key(1))
    assert alphas["layers"].shape == (3, 4)
    v = net.init(jax.random.key(2), x, alphas, False)
    assert_alpha_gradient_reaches_every_row(net, v, x, alphas, "layers")
    a = np.zeros((3, 4))
    a[0, 1] = a[1, 3] = a[2, 2] = 1.0
    arch = space.derive({"layers": a})
    assert arch == ChainArch(("conv_5x5", "identity", "max_pool_3x3"))
    discrete = space.network(arch, 10)
    vd = discrete.init(jax.random.key(0), x, None, False)
    assert discrete.apply(vd, x, None, False).shape == (4, 10)


def test_unknown_chain_op_is_named():
    with pytest.raises(ValueError, match="unknown chain op 'conv_11x11'; valid ops: conv_3x3"):
        net = ChainNetwork(ops=("conv_11x11",))
        net.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), {"layers": jnp.zeros((4, 1))})

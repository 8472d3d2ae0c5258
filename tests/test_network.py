import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.counting import multiply_adds
from jaxnas.nn.chain import ChainNetwork
from jaxnas.nn.network import NetworkCIFAR, NetworkImageNet, drop_path
from jaxnas.vocabulary.chain import ChainArch
from jaxnas.vocabulary.darts import DARTS_V2, Genotype


def test_cifar_network_trains_and_evaluates_under_jit():
    net = NetworkCIFAR(DARTS_V2, C=4, layers=3, num_classes=10, auxiliary=True)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3), jnp.float32)  # aux head wants 8x8
    v = net.init({"params": jax.random.key(1), "dropout": jax.random.key(2)}, x, train=True)
    assert "auxiliary_head" in v["params"]["stack"]

    @jax.jit
    def train_step(v, x, rng):
        (logits, aux), upd = net.apply(v, x, train=True, drop_rate=0.2, rngs={"dropout": rng}, mutable=["batch_stats"])
        return logits, aux, upd

    logits, aux, upd = train_step(v, x, jax.random.key(3))
    assert logits.shape == (2, 10) and aux.shape == (2, 10)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), v["batch_stats"], upd["batch_stats"])
    assert all(jax.tree.leaves(changed))
    logits_eval, aux_eval = jax.jit(lambda v, x: net.apply(v, x, train=False))({**v, **upd}, x)
    assert aux_eval is None and np.all(np.isfinite(logits_eval))


def test_imagenet_network_runs():
    net = NetworkImageNet(DARTS_V2, C=8, layers=3, num_classes=5)
    x = jnp.zeros((2, 32, 32, 3), jnp.float32)
    v = net.init(jax.random.key(0), x, train=False)
    logits, _ = jax.jit(lambda v, x: net.apply(v, x, train=False))(v, x)
    assert logits.shape == (2, 5)


def test_drop_path_zeroes_whole_samples_and_rescales():
    x = jnp.ones((4000, 2, 2, 3))
    y = drop_path(x, 0.25, jax.random.key(0))
    per_sample = np.asarray(y).reshape(4000, -1)
    assert np.all((per_sample == 0).all(1) | np.isclose(per_sample, 1 / 0.75).all(1))
    assert abs((per_sample[:, 0] == 0).mean() - 0.25) < 0.03


def test_multiply_adds_of_a_hand_computable_network():
    # stem 3x3 conv 3->C on 8x8, two identity layers, linear C->10
    C = 6
    net = ChainNetwork(C, 2, 10, ops=("identity",), arch=ChainArch(("identity", "identity")))
    counts = multiply_adds(net, (8, 8, 3), None, train=False)
    assert sum(counts.values()) == 8 * 8 * 9 * 3 * C + C * 10


class _GroupedConv(nn.Module):
    channels: int
    groups: int
    stride: int

    @nn.compact
    def __call__(self, x):
        return nn.Conv(self.channels, (3, 3), strides=self.stride, padding=1, feature_group_count=self.groups,
                       use_bias=False)(x)


@pytest.mark.parametrize("groups", [6, 2, 1])  # depthwise, grouped, dense
@pytest.mark.parametrize("stride, side", [(1, 8), (2, 4)])
def test_grouped_and_strided_convs_are_counted_per_group(groups, stride, side):
    # By hand: each of the side² outputs of each of the 6 filters sums 3·3·(6/groups) products.
    # Counting every filter over all 6 input channels (the dense-count bug) gives `groups` times more.
    counts = multiply_adds(_GroupedConv(6, groups, stride), (8, 8, 6))
    assert list(counts.values()) == [side * side * 3 * 3 * (6 // groups) * 6]


def test_the_network_counts_its_depthwise_convs_per_group():
    # DARTS_V2's normal cell as the reduction cell too: separable convs with stride 2 on the input edges.
    genotype = Genotype(DARTS_V2.normal, DARTS_V2.normal_concat, DARTS_V2.normal, DARTS_V2.reduce_concat)
    net = NetworkCIFAR(genotype, C=4, layers=3, num_classes=10)
    counts = multiply_adds(net, (8, 8, 3), train=False)
    seen = {}  # each depthwise conv's output side and kernel shape, read off its call

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and context.module.name == "dw1":
            seen["/".join(context.module.path)] = (out.shape[1] * out.shape[2], context.module.variables["params"]
                                                   ["kernel"].shape)
        return out

    with nn.intercept_methods(record):
        jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), train=False))
    assert seen and {hw for hw, _ in seen.values()} == {64, 16, 4}  # strided convs included
    for name, (hw, (kh, kw, per_group, c_out)) in seen.items():
        assert per_group == 1 and counts[name] == hw * kh * kw * c_out  # not hw·kh·kw·C_in·C_out

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxnas.nn import depthwise
from jaxnas.nn.ops import (
    BatchNorm,
    BatchNormStack,
    FactorizedReduce,
    Pool,
    SepConv,
    avg_pool_excluding_padding,
    darts_op,
)


def test_avg_pool_does_not_count_padding():
    x = jnp.ones((1, 4, 4, 1))
    y = Pool("avg").apply({}, x, False)
    np.testing.assert_allclose(y, 1.0)  # counting the padding would give 4/9 in the corners


def test_max_pool_pads_with_minus_infinity():
    x = -jnp.ones((1, 4, 4, 2))
    y = Pool("max", 2).apply({}, x, False)
    assert y.shape == (1, 2, 2, 2)
    np.testing.assert_allclose(y, -1.0)


def test_factorized_reduce_matches_hand_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 6, 3))
    fr = FactorizedReduce(4, affine=False)
    v = fr.init(jax.random.key(0), x, False)
    w1 = np.asarray(v["params"]["conv1"]["kernel"])[0, 0]  # (3, 2)
    w2 = np.asarray(v["params"]["conv2"]["kernel"])[0, 0]
    y, _ = fr.apply(v, x, True, mutable=["batch_stats"])
    r = np.maximum(x, 0)
    z = np.concatenate([r[:, ::2, ::2] @ w1, r[:, 1::2, 1::2] @ w2], axis=-1)
    z = (z - z.mean((0, 1, 2))) / np.sqrt(z.var((0, 1, 2)) + 1e-5)
    np.testing.assert_allclose(y, z, rtol=1e-5, atol=1e-5)


def test_batchnorm_follows_pytorch():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=(4, 3, 3, 5))
    bn = BatchNorm(affine=True)
    v = bn.init(jax.random.key(0), x, False)
    y, upd = bn.apply(v, x, True, mutable=["batch_stats"])
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-5, atol=1e-5)
    n = 4 * 3 * 3
    np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(upd["batch_stats"]["var"], 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    y_eval = bn.apply({**v, **upd}, x, False)
    stats = upd["batch_stats"]
    np.testing.assert_allclose(y_eval, (x - stats["mean"]) / np.sqrt(stats["var"] + 1e-5), rtol=1e-5)


@pytest.mark.parametrize("affine,expected", [(False, 2 * (9 * 4 + 16)), (True, 2 * (9 * 4 + 16) + 2 * 2 * 4)])
def test_sep_conv_parameter_count(affine, expected):
    v = SepConv(4, 3, 1, 1, affine=affine).init(jax.random.key(0), jnp.zeros((1, 5, 5, 4)), False)
    assert sum(p.size for p in jax.tree.leaves(v["params"])) == expected


def test_unknown_op_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown op 'conv_9x9'.*sep_conv_3x3"):
        darts_op("conv_9x9", 4, 1, True)


# Stacked edges (the grouped cell) and one edge (the scan bodies, GDAS's branch ops).
EDGES = [3, 1]


@pytest.mark.parametrize("edges", EDGES)
@pytest.mark.parametrize("ks,stride,pad,dil", [(3, 1, 1, 1), (5, 2, 2, 1), (3, 2, 2, 2), (5, 1, 4, 2)])
def test_depthwise_equals_xla_convolution(ks, stride, pad, dil, edges):
    kx, kw = jax.random.split(jax.random.key(ks * 10 + stride))
    x = jax.random.normal(kx, (2, 7, 7, edges, 4))
    w = jax.random.normal(kw, (edges, ks, ks, 1, 4))
    expected = depthwise.depthwise_conv(x, w, stride, pad, dil)
    np.testing.assert_allclose(depthwise.depthwise(x, w, stride, pad, dil), expected, rtol=1e-10, atol=1e-10)
    # The gradients too: the two differ only in how the kernel gradient is computed.
    g = jax.random.normal(jax.random.key(9), expected.shape)
    got = jax.grad(lambda x, w: jnp.vdot(depthwise.depthwise(x, w, stride, pad, dil), g), (0, 1))(x, w)
    want = jax.grad(lambda x, w: jnp.vdot(depthwise.depthwise_conv(x, w, stride, pad, dil), g), (0, 1))(x, w)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("edges", [2, 1])
def test_depthwise_derivatives_match_finite_differences(edges):
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, edges, 3))
    w = jax.random.normal(jax.random.key(1), (edges, 3, 3, 1, 3))
    f = lambda x, w: depthwise.depthwise(x, w, 2, 2, 2)  # noqa: E731
    # Second order in both modes: the custom JVP must support forward-over-reverse HVPs.
    check_grads(f, (x, w), order=2, modes=["fwd", "rev"], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"])
@pytest.mark.parametrize("stride", [1, 2])
def test_fast_depthwise_ops_equal_the_plain_ones(name, stride):
    """`darts_op(..., fast=True)` (shifted-slice depthwise and matmul pointwise convs, what GDAS's
    cells use) has the same parameters and computes the same outputs and gradients as the nn.Conv version (float64)."""
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4), jnp.float64)
    plain, fast = (darts_op(name, 4, stride, affine=False, fast=f) for f in (False, True))
    v = jax.tree.map(lambda t: t.astype(jnp.float64), plain.init(jax.random.key(1), x, False))
    assert jax.tree.map(jnp.shape, fast.init(jax.random.key(1), x, False)) == jax.tree.map(jnp.shape, v)

    def loss(op, p, x):
        y, _ = op.apply({"params": p, "batch_stats": v["batch_stats"]}, x, True, mutable=["batch_stats"])
        return jnp.sum(jnp.sin(y))

    for got, want in zip(jax.grad(functools.partial(loss, fast), (0, 1))(v["params"], x),
                         jax.grad(functools.partial(loss, plain), (0, 1))(v["params"], x)):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(loss(fast, v["params"], x), loss(plain, v["params"], x), rtol=1e-12)


@pytest.mark.parametrize("size,window,stride,padding", [
    ((8, 8), (3, 3), (1, 1), ((1, 1), (1, 1))),
    ((7, 9), (3, 3), (2, 2), ((1, 1), (1, 1))),
    ((8, 8), (5, 5), (3, 3), "VALID"),  # the CIFAR auxiliary head
    ((7, 7), (5, 5), (2, 2), "VALID"),  # the ImageNet one
])
def test_avg_pool_excluding_padding_equals_flax_keeps_the_dtype_and_differentiates(size, window, stride, padding):
    x = jax.random.normal(jax.random.key(0), (2, *size, 3), jnp.float64)
    want = nn.avg_pool(x, window, strides=stride, padding=padding, count_include_pad=False)
    np.testing.assert_allclose(avg_pool_excluding_padding(x, window, stride, padding), want, rtol=1e-14)
    assert avg_pool_excluding_padding(x.astype(jnp.bfloat16), window, stride, padding).dtype == jnp.bfloat16
    check_grads(lambda x: avg_pool_excluding_padding(x, window, stride, padding), (x,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_stack_equals_batch_norm_of_the_stacked_tensors(train):
    """Same outputs, statistics and variables layout as one BatchNorm over the stack on axis -3."""
    keys = jax.random.split(jax.random.key(0), 5)
    xs = [jax.random.normal(k, (4, 5, 5, 2, 3), jnp.float64) * (i + 1) + i for i, k in enumerate(keys[:3])]
    stacked = jnp.stack(xs, axis=3)
    bn, bns = BatchNorm(feature_axes=3), BatchNormStack(feature_axes=2)
    variables = bn.init(keys[3], stacked, True)
    assert jax.tree.map(jnp.shape, bns.init(keys[3], xs, True)) == jax.tree.map(jnp.shape, variables)
    variables = jax.tree.map(lambda v: v + jax.random.uniform(keys[4], v.shape, v.dtype), variables)  # not 0/1
    want, want_stats = bn.apply(variables, stacked, train, mutable=["batch_stats"])
    got, got_stats = bns.apply(variables, xs, train, mutable=["batch_stats"])
    np.testing.assert_allclose(jnp.stack(got, axis=3), want, rtol=1e-12, atol=1e-12)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), got_stats, want_stats)

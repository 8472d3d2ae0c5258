"""Primitive operations of the DARTS family of search spaces (NHWC).

Definitions follow the DARTS paper and its reference code exactly, so that a genotype built here
has the same parameters and computes the same function as the original: convolutions carry no
bias, BatchNorm uses PyTorch's conventions (momentum 0.1, eps 1e-5, unbiased running variance),
and weights are initialised with PyTorch's default distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnas.parallel import cross_device_mean
from jaxnas.vocabulary.darts import DARTS_OPS

Array = jax.Array

# PyTorch's default for conv and linear weights (kaiming_uniform with a=sqrt(5)): U(±1/sqrt(fan_in)).
torch_default_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int) -> Callable:
    """PyTorch's default bias init for a layer with `fan_in` inputs: U(±1/sqrt(fan_in))."""
    bound = 1.0 / max(fan_in, 1) ** 0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _batch_moments(xs: Sequence[Array], feature_axes: int, axis_name: str | None) -> tuple[Array, Array, Any]:
    """Per-tensor batch mean and biased variance over all but the trailing `feature_axes` axes,
    stacked on a leading axis (synchronised across devices with `axis_name`), and the count."""
    axes = tuple(range(xs[0].ndim - feature_axes))
    mean = cross_device_mean(jnp.stack([jnp.mean(x, axes) for x in xs]), axis_name)
    var = cross_device_mean(jnp.stack([jnp.mean(jnp.square(x - mu), axes) for x, mu in zip(xs, mean)]), axis_name)
    count = 1
    for a in axes:
        count *= xs[0].shape[a]
    if axis_name is not None:
        count = count * lax.psum(1, axis_name)
    return mean, var, count


def _update_running(ra_mean: Any, ra_var: Any, mean: Array, var: Array, count: Any, momentum: float) -> None:
    """PyTorch's running statistics update (the variance unbiased). Statistics keep their own dtype
    whatever the input's (GDAS's switch needs every branch to return them unchanged in type)."""
    unbiased = var * (count / max(count - 1, 1))
    dtype = ra_mean.value.dtype
    ra_mean.value = ((1 - momentum) * ra_mean.value + momentum * lax.stop_gradient(mean)).astype(dtype)
    ra_var.value = ((1 - momentum) * ra_var.value + momentum * lax.stop_gradient(unbiased)).astype(dtype)


class _BatchNormBase(nn.Module):
    """What `BatchNorm` and `BatchNormStack` share: their fields and `normalise`."""

    affine: bool = True
    momentum: float = 0.1
    epsilon: float = 1e-5
    feature_axes: int = 1
    axis_name: str | None = None

    def normalise(self, xs: Sequence[Array], variable_shape: tuple[int, ...], train: bool) -> list[Array]:
        """Each of the same-shaped `xs` by its own statistics and affine parameters, whose
        variables (shape `variable_shape`) hold all of them; called from the subclass's
        `__call__`."""
        per_tensor = (len(xs),) + xs[0].shape[xs[0].ndim - self.feature_axes :]
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, variable_shape, jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, variable_shape, jnp.float32)
        if train:
            mean, var, count = _batch_moments(xs, self.feature_axes, self.axis_name)
            if not self.is_initializing():
                _update_running(ra_mean, ra_var, mean.reshape(variable_shape), var.reshape(variable_shape), count,
                                self.momentum)
        else:
            mean, var = ra_mean.value.reshape(per_tensor), ra_var.value.reshape(per_tensor)
        dtype = xs[0].dtype
        if self.affine:
            scale = self.param("scale", nn.initializers.ones, variable_shape, jnp.float32).reshape(per_tensor)
            bias = self.param("bias", nn.initializers.zeros, variable_shape, jnp.float32).reshape(per_tensor)
        inv = lax.rsqrt(var.astype(dtype) + self.epsilon)
        ys = []
        for i, x in enumerate(xs):
            y = (x - mean[i].astype(dtype)) * inv[i]
            if self.affine:
                y = y * scale[i].astype(dtype)
                y = y + bias[i].astype(dtype)
            ys.append(y)
        return ys


class BatchNormStack(_BatchNormBase):
    """BatchNorm with PyTorch semantics of several same-shaped tensors, each by its own statistics
    (over all but the trailing `feature_axes` axes) and affine parameters, stored stacked on a
    leading axis.

    Why stacked variables without a stacked input: the grouped and scanned supernets normalise the
    outputs of several ops at once, and building their stack in memory is a copy (a layout pass
    over every activation) that this avoids. With `axis_name`, batch statistics are averaged
    across devices (synchronised BN), so a data-parallel step equals the one-device step.
    """

    @nn.compact
    def __call__(self, xs: Sequence[Array], train: bool) -> list[Array]:
        return self.normalise(xs, (len(xs),) + xs[0].shape[xs[0].ndim - self.feature_axes :], train)


class BatchNorm(_BatchNormBase):
    """BatchNorm with PyTorch semantics over all but the trailing `feature_axes` axes.

    `feature_axes=2` normalises a stack of edges `(..., edges, C)` per edge and channel, which is
    what the grouped supernet needs. With `axis_name`, batch statistics are averaged across
    devices (synchronised BN), so a data-parallel step equals the one-device step.
    """

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        return self.normalise([x], x.shape[x.ndim - self.feature_axes :], train)[0]


def conv(
    features: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
    name: str | None = None,
) -> nn.Conv:
    """A bias-free 2-D convolution with PyTorch's padding convention and init."""
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=[(padding, padding), (padding, padding)],
        kernel_dilation=(dilation, dilation),
        feature_group_count=groups,
        use_bias=False,
        kernel_init=torch_default_init,
        name=name,
    )


class ReLUConvBN(nn.Module):
    """ReLU → conv → BN: the preprocessing op of a cell and the conv op of NAS-Bench-201."""

    features: int
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    affine: bool = True
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        x = nn.relu(x)
        x = conv(self.features, self.kernel, self.stride, self.padding, self.dilation, name="conv")(x)
        return BatchNorm(self.affine, axis_name=self.axis_name, name="bn")(x, train)


class DepthwiseConv(nn.Module):
    """Bias-free depthwise conv with `nn.Conv`'s parameter (`kernel`, (K, K, 1, C)) computed as
    shifted slices (`jaxnas.nn.depthwise.depthwise` on one edge): what XLA:CPU runs fastest inside
    `lax.switch` branches; same numbers, same init."""

    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    @nn.compact
    def __call__(self, x: Array) -> Array:
        from jaxnas.nn.depthwise import depthwise

        k = self.param("kernel", torch_default_init, (self.kernel, self.kernel, 1, x.shape[-1]))
        y = depthwise(x[:, :, :, None, :], k[None], self.stride, self.padding, self.dilation)
        return y[:, :, :, 0, :]


class Pointwise(nn.Module):
    """Bias-free 1×1 conv as a matmul, with `nn.Conv`'s parameter (`kernel`, (1, 1, C, D)).

    Inside `lax.switch` branches XLA:CPU leaves convolutions as slow feature-major Eigen
    convolutions; a dot is fast there. Same numbers, same init."""

    features: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.param("kernel", torch_default_init, (1, 1, x.shape[-1], self.features))
        return jnp.einsum("nhwc,cd->nhwd", x, k[0, 0].astype(x.dtype))


def pointwise_conv(features: int, fast: bool, name: str) -> nn.Module:
    """The pointwise conv of the separable/dilated ops: `nn.Conv`, or a matmul (`fast`)."""
    return Pointwise(features, name=name) if fast else conv(features, 1, name=name)


def depthwise_conv(c: int, kernel: int, stride: int, padding: int, dilation: int = 1, fast: bool = False,
                   name: str | None = None) -> nn.Module:
    """The depthwise conv of the separable/dilated ops: XLA's grouped conv, or shifted slices (`fast`)."""
    if fast:
        return DepthwiseConv(kernel, stride, padding, dilation, name=name)
    return conv(c, kernel, stride, padding, dilation, groups=c, name=name)


def _relu_separable(x: Array, features: int, kernel: int, stride: int, padding: int, dilation: int, fast: bool,
                    suffix: str) -> Array:
    """ReLU → depthwise conv → pointwise conv, its convs named `dw<suffix>`, `pw<suffix>` in the
    module whose compact method calls it."""
    x = depthwise_conv(x.shape[-1], kernel, stride, padding, dilation, fast, name=f"dw{suffix}")(nn.relu(x))
    return pointwise_conv(features, fast, name=f"pw{suffix}")(x)


class DilConv(nn.Module):
    """ReLU → dilated depthwise conv → pointwise conv → BN."""

    features: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    affine: bool = True
    axis_name: str | None = None
    fast: bool = False  # the switch-branch formulation: shifted-slice depthwise, matmul pointwise

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        x = _relu_separable(x, self.features, self.kernel, self.stride, self.padding, self.dilation, self.fast, "")
        return BatchNorm(self.affine, axis_name=self.axis_name, name="bn")(x, train)


class SepConv(nn.Module):
    """Two stacked ReLU → depthwise conv → pointwise conv → BN blocks (stride in the first)."""

    features: int
    kernel: int
    stride: int
    padding: int
    affine: bool = True
    axis_name: str | None = None
    fast: bool = False  # the switch-branch formulation: shifted-slice depthwise, matmul pointwise

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        x = _relu_separable(x, x.shape[-1], self.kernel, self.stride, self.padding, 1, self.fast, "1")
        x = BatchNorm(self.affine, axis_name=self.axis_name, name="bn1")(x, train)
        x = _relu_separable(x, self.features, self.kernel, 1, self.padding, 1, self.fast, "2")
        return BatchNorm(self.affine, axis_name=self.axis_name, name="bn2")(x, train)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1×1 convs, concatenated (ReLU first, BN last)."""

    features: int
    affine: bool = True
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        if self.features % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {self.features}")
        x = nn.relu(x)
        a = conv(self.features // 2, 1, stride=2, name="conv1")(x)
        b = conv(self.features // 2, 1, stride=2, name="conv2")(x[:, 1:, 1:, :])
        y = jnp.concatenate([a, b], axis=-1)
        return BatchNorm(self.affine, axis_name=self.axis_name, name="bn")(y, train)


class Pool(nn.Module):
    """3×3 max or average pooling with padding 1; average pooling does not count the padding."""

    kind: str
    stride: int = 1

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        del train
        s = (self.stride, self.stride)
        if self.kind == "max":
            return nn.max_pool(x, (3, 3), strides=s, padding=((1, 1), (1, 1)))
        return avg_pool_excluding_padding(x, (3, 3), strides=s, padding=((1, 1), (1, 1)))


def _window_counts(size: int, window: int, stride: int, pad: tuple[int, int]) -> np.ndarray:
    """How many of each output's `window` inputs along one axis are real (not padding)."""
    starts = np.arange((size + sum(pad) - window) // stride + 1) * stride - pad[0]
    return np.minimum(starts + window, size) - np.maximum(starts, 0)


def avg_pool_excluding_padding(x: Array, window: tuple[int, int], strides: tuple[int, int],
                               padding: str | tuple[tuple[int, int], tuple[int, int]]) -> Array:
    """PyTorch's `count_include_pad=False` average pool of an NHWC `x`, in `x`'s dtype.

    The divisors are constants of the shapes, so they are computed here, not pooled from ones at run
    time; flax's `avg_pool` does that in float32 and so returns float32 for a bfloat16 input, which
    lifts everything after it to float32.
    """
    pads = ((0, 0), (0, 0)) if padding == "VALID" else tuple(padding)
    sums = lax.reduce_window(x, np.zeros((), x.dtype), lax.add, (1, *window, 1), (1, *strides, 1),
                             ((0, 0), *pads, (0, 0)))
    counts = np.outer(*(_window_counts(n, k, s, p) for n, k, s, p in zip(x.shape[1:3], window, strides, pads)))
    return sums / jnp.asarray(counts[:, :, None], x.dtype)


class Identity(nn.Module):
    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        return x


class Zero(nn.Module):
    """The `none` op: zeros with the (possibly strided) output shape."""

    stride: int = 1

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        return jnp.zeros_like(x[:, :: self.stride, :: self.stride, :])


def darts_op(
    name: str,
    C: int,
    stride: int,
    affine: bool,
    axis_name: str | None = None,
    module_name: str | None = None,
    fast: bool = False,
) -> nn.Module:
    """Build one DARTS primitive by name (the op set of the paper's search space); `fast` computes
    depthwise convs as shifted slices and pointwise convs as matmuls (same parameters and numbers;
    what XLA:CPU runs fastest inside the `lax.switch` branches of sampled cells)."""
    module_name = module_name or name
    kw = dict(affine=affine, axis_name=axis_name, name=module_name)
    conv_kw = dict(kw, fast=fast)
    if name == "none":
        return Zero(stride, name=module_name)
    if name == "max_pool_3x3":
        return Pool("max", stride, name=module_name)
    if name == "avg_pool_3x3":
        return Pool("avg", stride, name=module_name)
    if name == "skip_connect":
        return Identity(name=module_name) if stride == 1 else FactorizedReduce(C, **kw)
    if name == "sep_conv_3x3":
        return SepConv(C, 3, stride, 1, **conv_kw)
    if name == "sep_conv_5x5":
        return SepConv(C, 5, stride, 2, **conv_kw)
    if name == "sep_conv_7x7":
        return SepConv(C, 7, stride, 3, **conv_kw)
    if name == "dil_conv_3x3":
        return DilConv(C, 3, stride, 2, 2, **conv_kw)
    if name == "dil_conv_5x5":
        return DilConv(C, 5, stride, 4, 2, **conv_kw)
    raise ValueError(f"unknown op {name!r}; valid ops: {', '.join(DARTS_OPS)}")




def preprocess(C: int, reduction_prev: bool, axis_name, s0, s1, train):
    """The search cell's input ops (affine-free BN): FactorizedReduce after a reduction, else 1×1."""
    if reduction_prev:
        s0 = FactorizedReduce(C, affine=False, axis_name=axis_name, name="preprocess0")(s0, train)
    else:
        s0 = ReLUConvBN(C, 1, affine=False, axis_name=axis_name, name="preprocess0")(s0, train)
    s1 = ReLUConvBN(C, 1, affine=False, axis_name=axis_name, name="preprocess1")(s1, train)
    return s0, s1

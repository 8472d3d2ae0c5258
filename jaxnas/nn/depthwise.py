"""Depthwise convolution that XLA:CPU runs fast: a sum of shifted slices, with a custom JVP.

`depthwise` is used by the fast supernet's stacked edges (`jaxnas.nn.grouped`, and one edge at a
time in `jaxnas.nn.scanned`'s scan bodies) and, with one edge, by the ops of GDAS's sampled cells
(`DepthwiseConv` in `jaxnas.nn.ops`), which run inside `lax.switch` branches.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array


def _shifted_sum(x: Array, kernel: Array, stride: int, padding: int, dilation: int) -> Array:
    """Depthwise conv as a sum of strided slices times per-channel weights.

    XLA:CPU fuses the whole sum into one loop (measured ~30× faster than its grouped
    convolution here, forward and input-gradient).
    """
    n, h, w, k, c = x.shape
    ks = kernel.shape[1]
    ho = (h + 2 * padding - dilation * (ks - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (ks - 1) - 1) // stride + 1
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0), (0, 0)))
    out = 0.0
    for i in range(ks):
        for j in range(ks):
            start = (0, i * dilation, j * dilation, 0, 0)
            limit = (n, start[1] + (ho - 1) * stride + 1, start[2] + (wo - 1) * stride + 1, k, c)
            out = out + lax.slice(xp, start, limit, (1, stride, stride, 1, 1)) * kernel[:, i, j, 0]
    return out


def depthwise_conv(x: Array, kernel: Array, stride: int, padding: int, dilation: int) -> Array:
    """Per-edge depthwise conv: x (N, H, W, k, C), kernel (k, K, K, 1, C) -> (N, H', W', k, C).

    XLA's grouped convolution in a layout chosen for its transpose, the kernel gradient: with the
    input as (C, H, W, N), the kernel as (I, K, K, O) and the output as (H', W', N, C), JAX's
    transpose with respect to the kernel is a convolution already in XLA:CPU's canonical layout
    (b01f_01io->b01f), which runs on its fast (Eigen) path even inside a `lax.scan` body, where
    XLA does not canonicalise layouts itself. In the NHWC layout, inside a scan, it ran on XLA's
    generic loop emitter: 8–30x slower (see docs/performance.md).
    """
    n, h, w, k, c = x.shape
    ks = kernel.shape[1]
    lhs = jnp.transpose(x.reshape(n, h, w, k * c), (3, 1, 2, 0))  # (C, H, W, N)
    rhs = jnp.transpose(kernel, (3, 1, 2, 0, 4)).reshape(1, ks, ks, k * c)  # (I, K, K, O)
    y = lax.conv_general_dilated(
        lhs,
        rhs.astype(x.dtype),
        (stride, stride),
        [(padding, padding)] * 2,
        rhs_dilation=(dilation, dilation),
        dimension_numbers=("CHWN", "IHWO", "HWNC"),
        feature_group_count=k * c,
    )
    return jnp.transpose(y, (2, 0, 1, 3)).reshape(n, y.shape[0], y.shape[1], k, c)


def per_edge_depthwise_conv(x: Array, kernel: Array, stride: int, padding: int, dilation: int) -> Array:
    """`depthwise_conv` as one XLA convolution per edge, concatenated over the edge axis.

    The same numbers; what differs is the transpose. XLA:CPU computes a depthwise kernel gradient
    (a convolution with `batch_group_count`) as a dense convolution over all its channels and keeps
    the diagonal, so one convolution over the `k·C` stacked channels costs ∝ (k·C)², and `k`
    convolutions of `C` channels cost ∝ k·C².
    """
    k = x.shape[3]
    if k == 1:
        return depthwise_conv(x, kernel, stride, padding, dilation)
    return jnp.concatenate(
        [depthwise_conv(x[:, :, :, e : e + 1], kernel[e : e + 1], stride, padding, dilation) for e in range(k)], axis=3
    )


@partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def depthwise(x: Array, kernel: Array, stride: int, padding: int, dilation: int) -> Array:
    """Per-edge depthwise conv: x (N, H, W, k, C), kernel (k, K, K, 1, C) -> (N, H', W', k, C).

    Forward and the input tangent use shifted slices; the kernel tangent uses XLA's grouped
    convolution, one per edge (`per_edge_depthwise_conv`), whose transpose (the kernel gradient)
    was the fastest formulation measured, at top level and, in `depthwise_conv`'s layout, inside
    loops and `lax.switch` branches too (GDAS's first-order step at the offline default: compile
    67.9 -> 60.4 s, step 61.9 -> 58.3 ms against a kernel tangent of K² shifted slices). A custom
    JVP (not VJP) keeps forward-over-reverse Hessian-vector products working.
    """
    return _shifted_sum(x, kernel.astype(x.dtype), stride, padding, dilation)


@depthwise.defjvp
def _depthwise_jvp(stride, padding, dilation, primals, tangents):
    x, kernel = primals
    dx, dk = tangents
    y = depthwise(x, kernel, stride, padding, dilation)
    t = _shifted_sum(dx, kernel.astype(x.dtype), stride, padding, dilation)
    return y, t + per_edge_depthwise_conv(x, dk.astype(x.dtype), stride, padding, dilation)

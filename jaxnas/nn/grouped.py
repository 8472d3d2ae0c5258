"""Mixed ops of several edges computed at once, for the fast supernet.

The `k` edges that leave the same state(s) see the same input, so instead of `k` copies of every
op XLA gets one: depthwise convolutions run over the `k·C` stacked channels, pointwise
convolutions become one batched matmul over edges, the ReLU is applied once, and pooling is done
once per source. Parameters are the per-edge parameters of the reference ops stacked on a leading
edge axis, so both layouts hold the same numbers (see `grouped_variables_from_reference`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn.depthwise import depthwise
from jaxnas.nn.ops import BatchNorm, BatchNormStack, avg_pool_excluding_padding, torch_default_init
from jaxnas.vocabulary.darts import PRIMITIVES

Array = jax.Array


def stacked_init(k: int):
    """Initialise `k` edges' kernels independently with the per-edge (PyTorch) distribution."""

    def init(key, shape, dtype=jnp.float32):
        return jax.vmap(lambda kk: torch_default_init(kk, shape[1:], dtype))(jax.random.split(key, k))

    return init


def pointwise(x: Array, kernel: Array) -> Array:
    """Per-edge 1×1 conv as a batched matmul: x (N, H, W, k, C), kernel (k, 1, 1, C, D)."""
    return jnp.einsum("nhwkc,kcd->nhwkd", x, kernel[:, 0, 0].astype(x.dtype))


class StackedKernel(nn.Module):
    """A stack of `k` per-edge conv kernels, stored as `{'kernel': (k, ...)}` like `nn.Conv`."""

    shape: tuple[int, ...]

    @nn.compact
    def __call__(self) -> Array:
        return self.param("kernel", stacked_init(self.shape[0]), self.shape)


# The conv primitives: (kernel, padding, dilation, blocks). SepConv has two blocks, DilConv one.
CONV_OPS = {
    "sep_conv_3x3": (3, 1, 1, 2),
    "sep_conv_5x5": (5, 2, 1, 2),
    "dil_conv_3x3": (3, 2, 2, 1),
    "dil_conv_5x5": (5, 4, 2, 1),
}
SEP_OPS = tuple(n for n, spec in CONV_OPS.items() if spec[3] == 2)
POOL_OPS = ("max_pool_3x3", "avg_pool_3x3")


class ConvKernels(nn.Module):
    """One conv primitive's stacked per-edge kernels, named like the reference module's convs."""

    kernel: int
    blocks: int

    @nn.compact
    def __call__(self, k: int, c: int) -> list[tuple[Array, Array]]:
        tags = ["1", "2"] if self.blocks == 2 else [""]
        ks = self.kernel
        return [
            (
                StackedKernel((k, ks, ks, 1, c), name=f"dw{t}")(),
                StackedKernel((k, 1, 1, c, c), name=f"pw{t}")(),
            )
            for t in tags
        ]


class EdgeGroup(nn.Module):
    """All primitives on `k` edges whose inputs are the `m` stacked `sources` (k divisible by m).

    Edge `e` reads source `e // (k // m)`. Returns the α-mixed output of every edge,
    shape (N, H', W', k, C). Ops whose outputs have the same shape share one BatchNorm (BN is per
    channel, so stacking ops changes nothing): the first blocks of all conv ops, the second blocks
    of the separable convs, and the two pools.
    """

    C: int
    k: int
    stride: int
    axis_name: str | None = None

    @nn.compact
    def __call__(self, sources: Array, weights: Array, train: bool) -> Array:
        n, h, w, m, c = sources.shape
        per_source = self.k // m
        an, s, k = self.axis_name, self.stride, self.k

        def per_edge(t):  # (..., m, C) -> (..., k, C)
            return jnp.repeat(t, per_source, axis=-2) if per_source > 1 else t

        def bn(ts, name):  # ts: ops' (N, H, W, k, C) outputs; their statistics stacked (ops, k, C)
            return BatchNormStack(False, feature_axes=2, axis_name=an, name=name)(ts, train)

        def pw(ts, kernels):  # each op's pointwise convs: one matmul per op
            # Each op's depthwise output goes to its own matmul as it is: stacking them for one batched
            # matmul over (op, edge), and its output for one BN, cost layout copies (first-order step
            # at the paper config 44.0 -> 28.9 s; C=8, 5 cells: 3.56 -> 3.47 s).
            return [pointwise(t, kk) for t, kk in zip(ts, kernels)]

        relu_in = per_edge(nn.relu(sources))
        kernels = {name: ConvKernels(spec[0], spec[3], name=name)(k, c) for name, spec in CONV_OPS.items()}
        first = [
            depthwise(relu_in, kernels[name][0][0], s, pad, dil)
            for name, (_, pad, dil, _) in CONV_OPS.items()
        ]
        first = bn(pw(first, [kernels[name][0][1] for name in CONV_OPS]), "conv_bn_a")
        outputs = dict(zip(CONV_OPS, first))
        second = [
            depthwise(nn.relu(outputs[name]), kernels[name][1][0], 1, CONV_OPS[name][1], 1) for name in SEP_OPS
        ]
        second = bn(pw(second, [kernels[name][1][1] for name in SEP_OPS]), "conv_bn_b")
        outputs.update(zip(SEP_OPS, second))

        flat = sources.reshape(n, h, w, m * c)
        win = dict(strides=(s, s), padding=((1, 1), (1, 1)))
        pooled = [nn.max_pool(flat, (3, 3), **win), avg_pool_excluding_padding(flat, (3, 3), **win)]
        pooled = bn([per_edge(p.reshape(p.shape[:3] + (m, c))) for p in pooled], "pool_bn")
        outputs.update(zip(POOL_OPS, pooled))

        if s == 1:
            outputs["skip_connect"] = per_edge(sources)
        else:
            outputs["skip_connect"] = GroupedFactorizedReduce(k, an, name="skip_connect")(relu_in, train)

        total = 0.0
        for o, name in enumerate(PRIMITIVES):
            if name != "none":  # the zero op adds nothing
                total = total + weights[:, o][:, None] * outputs[name]
        return total


class GroupedFactorizedReduce(nn.Module):
    """FactorizedReduce on stacked edges (its input already passed through the ReLU)."""

    k: int
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        c = x.shape[-1]
        w1 = StackedKernel((self.k, 1, 1, c, c // 2), name="conv1")()
        w2 = StackedKernel((self.k, 1, 1, c, c // 2), name="conv2")()
        a = pointwise(x[:, ::2, ::2], w1)
        b = pointwise(x[:, 1::2, 1::2], w2)
        y = jnp.concatenate([a, b], axis=-1)
        return BatchNorm(False, feature_axes=2, axis_name=self.axis_name, name="bn")(y, train)

"""Discrete networks built from a DARTS Genotype (the evaluation networks of the paper).

`NetworkCIFAR` and `NetworkImageNet` mirror the DARTS evaluation code layer for layer, so a
genotype has the same parameter count here as there. The auxiliary head lives under the
`auxiliary_head` parameter subtree so it can be left out of counts the way DARTS reports them.
Call with `train=True` and `mutable=['batch_stats']`; drop path needs a `'dropout'` rng.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnas.nn.ops import (
    BatchNorm,
    FactorizedReduce,
    ReLUConvBN,
    avg_pool_excluding_padding,
    conv,
    darts_op,
    torch_bias_init,
    torch_default_init,
)
from jaxnas.vocabulary.darts import Genotype

Array = jax.Array


def drop_path(x: Array, rate: float, rng: jax.Array) -> Array:
    """Zero whole samples with probability `rate` and rescale the survivors (DARTS's drop path)."""
    keep = 1.0 - rate
    mask = jax.random.bernoulli(rng, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x / keep, 0.0).astype(x.dtype)


def reduction_layers(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells: at 1/3 and 2/3 of the depth, as in DARTS."""
    return layers // 3, 2 * layers // 3


def dense(features: int, fan_in: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=torch_default_init, bias_init=torch_bias_init(fan_in), name=name)


class Cell(nn.Module):
    genotype: Genotype
    C: int
    reduction: bool
    reduction_prev: bool
    axis_name: str | None = None

    @nn.compact
    def __call__(self, s0: Array, s1: Array, train: bool, drop_rate: float = 0.0) -> Array:
        an = self.axis_name
        if self.reduction_prev:
            s0 = FactorizedReduce(self.C, axis_name=an, name="preprocess0")(s0, train)
        else:
            s0 = ReLUConvBN(self.C, 1, axis_name=an, name="preprocess0")(s0, train)
        s1 = ReLUConvBN(self.C, 1, axis_name=an, name="preprocess1")(s1, train)
        pairs = self.genotype.reduce if self.reduction else self.genotype.normal
        concat = self.genotype.reduce_concat if self.reduction else self.genotype.normal_concat
        states = [s0, s1]
        for node in range(len(pairs) // 2):
            total = 0.0
            for e in (2 * node, 2 * node + 1):
                op_name, j = pairs[e]
                stride = 2 if self.reduction and j < 2 else 1
                op = darts_op(op_name, self.C, stride, True, an, module_name=f"edge{e}_{op_name}")
                h = op(states[j], train)
                is_identity = op_name == "skip_connect" and stride == 1
                # `drop_rate` may be traced (it ramps up over training without recompiling).
                if train and not is_identity and not (isinstance(drop_rate, (int, float)) and drop_rate == 0):
                    h = drop_path(h, drop_rate, self.make_rng("dropout"))
                total = total + h
            states.append(total)
        return jnp.concatenate([states[i] for i in concat], axis=-1)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier at 2/3 depth (8×8 input on CIFAR, 14×14 on ImageNet)."""

    num_classes: int
    imagenet: bool = False
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        x = nn.relu(x)
        stride = 2 if self.imagenet else 3
        x = avg_pool_excluding_padding(x, (5, 5), strides=(stride, stride), padding="VALID")
        x = conv(128, 1, name="conv1")(x)
        x = nn.relu(BatchNorm(axis_name=self.axis_name, name="bn1")(x, train))
        x = conv(768, 2, name="conv2")(x)
        if not self.imagenet:  # the DARTS ImageNet head omits this BN (a typo kept for its results)
            x = BatchNorm(axis_name=self.axis_name, name="bn2")(x, train)
        x = nn.relu(x).reshape(x.shape[0], -1)
        return dense(self.num_classes, 768, "classifier")(x)


class _CellStack(nn.Module):
    """The cells and classifier shared by the CIFAR and ImageNet networks."""

    genotype: Genotype
    C: int
    layers: int
    num_classes: int
    auxiliary: bool
    reduction_prev: bool
    imagenet: bool = False
    axis_name: str | None = None

    @nn.compact
    def __call__(self, s0, s1, train: bool, drop_rate: float):
        C_curr = self.C
        reduction_prev = self.reduction_prev
        reductions = reduction_layers(self.layers)
        aux_logits = None
        for i in range(self.layers):
            reduction = i in reductions
            if reduction:
                C_curr *= 2
            cell = Cell(self.genotype, C_curr, reduction, reduction_prev, self.axis_name, name=f"cell{i}")
            s0, s1 = s1, cell(s0, s1, train, drop_rate)
            reduction_prev = reduction
            if i == reductions[1] and self.auxiliary:
                aux_logits = AuxiliaryHead(self.num_classes, self.imagenet, self.axis_name, name="auxiliary_head")(
                    s1, train
                )
        out = jnp.mean(s1, axis=(1, 2))
        logits = dense(self.num_classes, s1.shape[-1], "classifier")(out)
        return logits, aux_logits


class NetworkCIFAR(nn.Module):
    """The DARTS CIFAR evaluation network: 3C stem, `layers` cells, reductions at 1/3 and 2/3.

    Returns `(logits, aux_logits)`; `aux_logits` is None unless `auxiliary` and `train`.
    """

    genotype: Genotype
    C: int = 36
    layers: int = 20
    num_classes: int = 10
    auxiliary: bool = False
    stem_multiplier: int = 3
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool, drop_rate: float = 0.0):
        c_stem = self.stem_multiplier * self.C
        s = conv(c_stem, 3, padding=1, name="stem_conv")(x)
        s = BatchNorm(axis_name=self.axis_name, name="stem_bn")(s, train)
        stack = _CellStack(
            self.genotype, self.C, self.layers, self.num_classes, self.auxiliary and train,
            reduction_prev=False, axis_name=self.axis_name,
            name="stack",
        )
        return stack(s, s, train, drop_rate)


class NetworkImageNet(nn.Module):
    """The DARTS ImageNet (mobile setting) network: two stride-2 stems then `layers` cells."""

    genotype: Genotype
    C: int = 48
    layers: int = 14
    num_classes: int = 1000
    auxiliary: bool = False
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Array, train: bool, drop_rate: float = 0.0):
        an = self.axis_name
        s0 = conv(self.C // 2, 3, stride=2, padding=1, name="stem0_conv1")(x)
        s0 = nn.relu(BatchNorm(axis_name=an, name="stem0_bn1")(s0, train))
        s0 = conv(self.C, 3, stride=2, padding=1, name="stem0_conv2")(s0)
        s0 = BatchNorm(axis_name=an, name="stem0_bn2")(s0, train)
        s1 = conv(self.C, 3, stride=2, padding=1, name="stem1_conv")(nn.relu(s0))
        s1 = BatchNorm(axis_name=an, name="stem1_bn")(s1, train)
        stack = _CellStack(
            self.genotype, self.C, self.layers, self.num_classes, self.auxiliary and train,
            reduction_prev=True, imagenet=True, axis_name=an,
            name="stack",
        )
        return stack(s0, s1, train, drop_rate)


NETWORKS = {"cifar": NetworkCIFAR, "imagenet": NetworkImageNet}


def trained_network(genotype: Genotype, num_classes: int, options: Any, axis_name: str | None = None) -> nn.Module:
    """The network `jaxnas.train` trains from `genotype`, as `options` (a training config: `network`
    cifar|imagenet, `channels`, `layers`, `auxiliary_weight`) sets it up."""
    return NETWORKS[options.network](genotype, options.channels, options.layers, num_classes,
                                     auxiliary=options.auxiliary_weight > 0, axis_name=axis_name)


def auxiliary_param_count(params) -> int:
    """Parameters inside the auxiliary head subtree(s)."""
    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if any(getattr(k, "key", None) == "auxiliary_head" for k in path):
            total += leaf.size
    return total

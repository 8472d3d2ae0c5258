"""`compute_dtype='bfloat16'` must run every network's convolutions, matmuls and pools in bfloat16.

An op that quietly returns float32 for a bfloat16 input lifts everything after it to float32, and the
network still trains (the losses only differ in their low bits), so this reads the traced
computation itself: every heavy primitive, inside scans, remat and custom JVPs too, must see
bfloat16 operands. (flax's `avg_pool(count_include_pad=False)` did return float32.)
"""

import jax
import jax.numpy as jnp
import pytest

from jaxnas.nn.chain import ChainNetwork
from jaxnas.nn.nb201 import NB201Network
from jaxnas.nn.network import NetworkCIFAR
from jaxnas.nn.precision import ComputeDtype
from jaxnas.nn.supernet import DartsSupernet
from jaxnas.vocabulary.darts import DARTS_V2

HEAVY = {"conv_general_dilated", "dot_general", "reduce_window_sum", "reduce_window_max", "reduce_window"}


def _sub_jaxprs(value):
    if hasattr(value, "eqns"):
        yield value
    elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        yield value.jaxpr
    elif isinstance(value, tuple | list):
        for v in value:
            yield from _sub_jaxprs(v)


def heavy_operand_dtypes(jaxpr) -> set[tuple[str, str]]:
    """(primitive, dtype) of every floating operand of a heavy primitive, recursively."""
    found = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in HEAVY:
            found |= {(eqn.primitive.name, str(v.aval.dtype)) for v in eqn.invars
                      if jnp.issubdtype(v.aval.dtype, jnp.floating)}
        for param in eqn.params.values():
            for sub in _sub_jaxprs(param):
                found |= heavy_operand_dtypes(sub)
    return found


def _darts_alphas():
    return {"normal": jnp.zeros((14, 8)), "reduce": jnp.zeros((14, 8))}


NETS = {
    **{f"darts supernet {impl}": (DartsSupernet(C=4, layers=2, num_classes=10, impl=impl), (8, 8, 3), _darts_alphas())
       for impl in ("reference", "grouped", "scanned")},
    "darts network with auxiliary head": (NetworkCIFAR(DARTS_V2, C=4, layers=3, num_classes=10, auxiliary=True),
                                          (32, 32, 3), None),
    "nb201 supernet": (NB201Network(C=4, N=1, num_classes=10), (8, 8, 3), {"cell": jnp.zeros((6, 5))}),
    "chain supernet": (ChainNetwork(C=4, layers=2, num_classes=10), (8, 8, 3), {"layers": jnp.zeros((2, 7))}),
}


@pytest.mark.parametrize("name", list(NETS))
def test_bfloat16_compute_reaches_every_heavy_op(name):
    net, shape, alphas = NETS[name]
    x = jnp.ones((2, *shape), jnp.float32)
    args = (x,) if alphas is None else (x, alphas)
    variables = jax.eval_shape(lambda: net.init(jax.random.key(0), *args, train=True))
    mixed = ComputeDtype(net, jnp.bfloat16)
    jaxpr = jax.make_jaxpr(lambda v: mixed.apply(v, *args, train=True, mutable=["batch_stats"]))(variables)
    dtypes = heavy_operand_dtypes(jaxpr.jaxpr)
    assert {p for p, _ in dtypes} >= {"conv_general_dilated", "dot_general"}, dtypes
    assert {d for _, d in dtypes} == {"bfloat16"}, sorted(dtypes)

"""The resource-aware objective: cost tables against hand counts and against the discrete network's
own parameter count, the expected cost's gradient against finite differences, the penalty's effect
on a search step, and one-line errors for bad latency tables."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxnas.counting import count_params
from jaxnas.nn.network import NetworkCIFAR
from jaxnas.search import config as config_lib
from jaxnas.spaces import darts
from jaxnas.spaces.cost import darts_costs, derived_cost, expected_cost, read_latency_table
from jaxnas.vocabulary.darts import DARTS_V1, DARTS_V2


def test_op_costs_match_hand_counts():
    c = darts_costs(16, 8, (32, 32), "params")
    sep3 = darts.PRIMITIVES.index("sep_conv_3x3")

    def sep3_params(C):  # two blocks of depthwise 3x3 + pointwise + affine BN
        return 2 * (9 * C + C * C + 2 * C)

    # Normal cells of 8: two at each of C = 16, 32, 64 (reductions at cells 2 and 5).
    assert c["normal"][0, sep3] == 2 * (sep3_params(16) + sep3_params(32) + sep3_params(64))
    skip = darts.PRIMITIVES.index("skip_connect")
    assert c["normal"][0, skip] == 0  # identity
    # Reduction cells at C = 32, 64: edge 0 (from s0) is strided, so skip is a FactorizedReduce
    # (two 1x1 convs C -> C/2 and an affine BN); edge 4 (node 1 from node 0) is not strided.
    assert c["reduce"][0, skip] == sum(2 * C * (C // 2) + 2 * C for C in (32, 64))
    assert c["reduce"][4, skip] == 0
    pools = [darts.PRIMITIVES.index(p) for p in ("none", "max_pool_3x3", "avg_pool_3x3")]
    assert np.all(c["normal"][:, pools] == 0) and np.all(c["reduce"][:, pools] == 0)
    m = darts_costs(16, 8, (32, 32), "madds")
    # sep_conv_3x3 at C=16 on 32x32, stride 1, in the first cell only: depthwise + pointwise, twice.
    first_cell = darts_costs(16, 3, (32, 32), "madds")  # cells: normal, reduce, reduce
    assert first_cell["normal"][0, sep3] == 2 * (32 * 32 * 9 * 16 + 32 * 32 * 16 * 16)
    assert m["normal"][0, sep3] > first_cell["normal"][0, sep3]


@pytest.mark.parametrize("genotype", [DARTS_V1, DARTS_V2])
def test_derived_cost_is_the_networks_own_parameter_difference(genotype):
    """Independent check: the discrete network of a genotype minus that of the same cells with every
    op a (parameter-free) pooling, counted on the network itself, is the genotype's derived cost."""
    C, layers = 4, 5
    costs = darts_costs(C, layers, (32, 32), "params")
    pooled = dataclasses.replace(genotype, normal=tuple(("max_pool_3x3", j) for _, j in genotype.normal),
                                 reduce=tuple(("max_pool_3x3", j) for _, j in genotype.reduce))

    def params(g):
        net = NetworkCIFAR(g, C, layers, 10)
        v = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
        return count_params(v["params"])

    assert derived_cost(pooled, costs) == 0
    assert derived_cost(genotype, costs) == params(genotype) - params(pooled)


def test_expected_cost_gradient():
    costs = darts_costs(4, 5, (8, 8), "params")
    alphas = jax.tree.map(lambda a: 300 * a.astype(jnp.float64), darts.init_alphas(jax.random.key(0)))
    check_grads(lambda a: expected_cost(a, costs), (alphas,), order=2, modes=["rev"])
    # By hand: d/dα Σ p·c = p·(c − Σ p·c), per edge.
    g = jax.grad(lambda a: expected_cost(a, costs))(alphas)
    for k in ("normal", "reduce"):
        p = np.asarray(jax.nn.softmax(alphas[k], -1))
        want = p * (costs[k] - np.sum(p * costs[k], -1, keepdims=True))
        np.testing.assert_allclose(np.asarray(g[k]), want, rtol=1e-10, atol=1e-8)


def test_derived_cost_falls_monotonically_as_the_weight_grows():
    """α descending −E_α[benefit] + λ·E_α[cost] (with the α optimizer, Adam) from the same start,
    where the benefit (a stand-in for accuracy) grows like √cost: as λ grows over a sweep, the
    derived cells' parameter count falls monotonically, from the costliest to parameter-free."""
    from jaxnas.search.state import alpha_optimizer

    costs = {k: v / 1e4 for k, v in darts_costs(8, 5, (8, 8), "params").items()}
    benefit = {k: np.sqrt(v) for k, v in costs.items()}
    start = {k: jnp.asarray(np.random.default_rng(0).normal(size=(14, 8)) * 0.1) for k in ("normal", "reduce")}

    def objective(a, lam):
        return -expected_cost(a, benefit) + lam * expected_cost(a, costs)

    derived = []
    for lam in (0.0, 0.3, 1.0, 3.0, 10.0):
        opt = alpha_optimizer(3e-2, 0.5, 0.999, 1e-3)
        a, s = start, opt.init(start)
        for _ in range(200):
            u, s = opt.update(jax.grad(objective)(a, lam), s, a)
            a = jax.tree.map(jnp.add, a, u)
        derived.append(derived_cost(darts.derive(a), costs))
    print(derived)
    assert all(x >= y for x, y in zip(derived, derived[1:])) and derived[0] > derived[-1]
    assert len(set(derived)) >= 3  # graded, not all-or-nothing


def test_latency_table_errors_and_values(tmp_path):
    good = {op: float(i) for i, op in enumerate(darts.PRIMITIVES)}
    path = tmp_path / "lat.json"
    path.write_text(json.dumps(good))
    c = darts_costs(4, 5, (8, 8), str(path))  # 3 normal cells, 2 reduction cells
    np.testing.assert_array_equal(c["normal"][3], 3 * np.arange(8.0))
    np.testing.assert_array_equal(c["reduce"][3], 2 * np.arange(8.0))
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "sep_conv_5x5"} | {"conv_9x9": 1.0}))
    with pytest.raises(ValueError, match=r"missing ops \['sep_conv_5x5'\], unknown ops \['conv_9x9'\]"):
        read_latency_table(str(path), darts.PRIMITIVES)
    with pytest.raises(ValueError, match="neither one of params, madds nor an existing JSON file"):
        read_latency_table(str(tmp_path / "none.json"), darts.PRIMITIVES)


def test_config_validation_names_the_choices():
    c = config_lib.get_config()
    c.cost_weight = 1.0
    c.cost_metric = "flops"
    with pytest.raises(config_lib.ConfigError, match="unknown cost_metric 'flops'; valid: params, madds"):
        config_lib.validate(c)
    c.cost_metric, c.space = "params", "nb201"
    config_lib.validate(c)  # every space has cost tables


@pytest.mark.parametrize("space_name", ["nb201", "chain"])
def test_nb201_and_chain_costs_are_the_networks_own_parameter_difference(space_name):
    """Independent check, as for DARTS: an architecture's cost is its discrete network's parameters
    minus those of the same network with every op a parameter-free pooling; madds likewise grow
    with the convolutions' work."""
    from jaxnas.spaces.base import get_space
    from jaxnas.spaces.cost import arch_cost, space_costs

    space = get_space(space_name, channels=4, **({"cells_per_stage": 2} if space_name == "nb201" else {"layers": 3}))
    costs = space_costs(space, (8, 8, 1), "params")
    n = len(space.decisions())
    ops = next(iter(space.op_names().values()))
    pooled = space.arch_from_decisions([ops.index("avg_pool_3x3" if space_name == "nb201" else "max_pool_3x3")] * n)

    def params(arch):
        net = space.network(arch, 10)
        v = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), None, train=False))
        return count_params(v["params"])

    for seed in range(3):
        values = np.random.default_rng(seed).integers(0, len(ops), n)
        arch = space.arch_from_decisions(values)
        assert arch_cost(space, arch, costs) == params(arch) - params(pooled)
    assert arch_cost(space, pooled, costs) == 0
    madds = space_costs(space, (8, 8, 1), "madds")
    conv3 = ops.index("nor_conv_3x3" if space_name == "nb201" else "conv_3x3")
    assert next(iter(madds.values()))[0, conv3] >= 8 * 8 * 9 * 4 * 4

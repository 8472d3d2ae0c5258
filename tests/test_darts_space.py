import json

import jax
import numpy as np
import pytest

from jaxnas.describe import describe
from jaxnas.spaces.base import get_space
from jaxnas.spaces.darts import derive
from jaxnas.vocabulary.darts import DARTS_V1, DARTS_V2, PRIMITIVES, Genotype, edge_inputs

OP = {name: i for i, name in enumerate(PRIMITIVES)}


def hand_alphas(choices):
    """α whose strong entries are {(edge, op): value}; everything else 0."""
    a = np.zeros((14, 8))
    for (edge, op), value in choices.items():
        a[edge, OP[op]] = value
    return a


def test_edge_order_is_darts_order():
    assert edge_inputs()[:5] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    assert len(edge_inputs()) == 14


def test_derivation_keeps_two_strongest_edges_and_ignores_none():
    normal = hand_alphas({
        (0, "sep_conv_3x3"): 3.0, (1, "skip_connect"): 2.0,            # node 0: both inputs
        (2, "none"): 9.0, (2, "max_pool_3x3"): 0.5,                    # node 1: `none` must not count
        (3, "dil_conv_5x5"): 2.5, (4, "sep_conv_5x5"): 2.0,
        (5, "avg_pool_3x3"): 1.0, (7, "sep_conv_3x3"): 4.0, (8, "dil_conv_3x3"): 3.0,  # node 2
        (9, "skip_connect"): 1.0, (13, "sep_conv_5x5"): 5.0, (12, "max_pool_3x3"): 2.0,  # node 3
    })
    reduce = hand_alphas({(0, "max_pool_3x3"): 1.0, (1, "avg_pool_3x3"): 2.0})
    g = derive({"normal": normal, "reduce": reduce})
    assert g.normal == (
        ("sep_conv_3x3", 0), ("skip_connect", 1),
        ("dil_conv_5x5", 1), ("sep_conv_5x5", 2),
        ("sep_conv_3x3", 2), ("dil_conv_3x3", 3),
        ("sep_conv_5x5", 4), ("max_pool_3x3", 3),
    )
    assert g.reduce[:2] == (("avg_pool_3x3", 1), ("max_pool_3x3", 0))
    assert g.normal_concat == (2, 3, 4, 5)


def test_derivation_ties_go_to_lower_index():
    g = derive({"normal": np.zeros((14, 8)), "reduce": np.zeros((14, 8))})
    # All weights equal: edges 0, 1 per node and the first non-none op, as the DARTS code does.
    assert all(op == "max_pool_3x3" for op, _ in g.normal)
    assert [j for _, j in g.normal] == [0, 1] * 4


def test_genotype_json_round_trip():
    for g in (DARTS_V1, DARTS_V2):
        assert Genotype.from_json(g.to_json()) == g
        assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d["normal"].__setitem__(0, ["conv_9x9", 0]), r"unknown op 'conv_9x9'.*valid ops: none, max_pool"),
        (lambda d: d["normal"].__setitem__(0, ["sep_conv_3x3", 5]), r"node 0 takes input 5; valid inputs are 0..1"),
        (lambda d: d.pop("reduce_concat"), r"missing keys \['reduce_concat'\]"),
        (lambda d: d["reduce"].pop(), r"reduce has 7 entries"),
        (lambda d: d["normal"].__setitem__(1, "sep_conv_3x3"), r"not an \(op, input\) pair"),
    ],
)
def test_malformed_genotypes_are_named(mutate, message):
    d = DARTS_V2.to_dict()
    mutate(d)
    with pytest.raises(ValueError, match=message):
        Genotype.from_dict(d)


def test_malformed_json_is_named():
    with pytest.raises(ValueError, match="malformed genotype JSON"):
        Genotype.from_json("{not json")


def test_published_parameter_counts():
    # The DARTS code's "param size" figures: these pin every op definition.
    assert describe("DARTS_V2", dataset="cifar10", channels=36, layers=20)["params"] == 3349342
    assert describe("DARTS_V1", dataset="cifar10", channels=36, layers=20)["params"] == 3169414
    assert describe("DARTS_V2", dataset="imagenet", channels=48, layers=14)["params"] == 4718752
    assert describe(supernet="darts", channels=16, layers=8)["params"] == 1930618


def test_unknown_space_and_option_are_named():
    with pytest.raises(ValueError, match="unknown search space 'enas_space'; valid spaces: darts, nb201, chain"):
        get_space("enas_space")
    with pytest.raises(ValueError, match="unknown option.*'cells'.*valid options: channels, layers, impl"):
        get_space("darts", cells=3)


def test_darts_space_derives_genotypes_from_its_own_alphas():
    space = get_space("darts", channels=4, layers=3)
    alphas = space.init_alphas(jax.random.key(0))
    assert alphas["normal"].shape == (14, 8) and alphas["reduce"].shape == (14, 8)
    assert float(np.abs(alphas["normal"]).max()) < 1e-2  # 1e-3 · N(0, 1)
    assert isinstance(space.derive(alphas), Genotype)

"""DARTS-PT's selection by perturbation (Wang et al., ICLR 2021) on hand-made supernets whose
accuracy is a known function of α: where α's argmax and the op that matters differ, it picks the
op that matters; where cells choose inputs, it keeps the edges whose removal costs most."""

import numpy as np

from jaxnas.search.strategies import darts_pt
from jaxnas.spaces.base import get_space
from jaxnas.vocabulary.darts import edge_inputs
from jaxnas.vocabulary.nb201 import OPS


def softmax(a):
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def linear_score(contribution: dict):
    """A supernet whose accuracy is Σ over edges and ops of contribution · softmax(α)."""

    def score(state, variants):
        return np.array([sum(float(np.sum(contribution[k] * softmax(variants[k][i]))) for k in contribution)
                         for i in range(len(next(iter(variants.values()))))])

    return score


def test_the_op_whose_removal_hurts_most_is_kept_not_the_largest_alpha():
    # One edge of (none, a, b): α favours a, but b carries the accuracy. Removing b leaves
    # 0.1·e²/(1+e²) ≈ 0.088; removing a leaves 1/2: b's removal hurts most.
    alphas = {"cell": np.array([[0.0, 2.0, 0.0]])}
    score = linear_score({"cell": np.array([[0.0, 0.1, 1.0]])})
    decided, chosen = darts_pt.select_ops(score, None, alphas, {"cell": ("none", "a", "b")}, [("cell", 0)])
    assert chosen == {("cell", 0): 2} and np.argmax(alphas["cell"][0]) == 1
    np.testing.assert_array_equal(softmax(decided["cell"])[0], [0, 0, 1])


def test_nb201_cell_by_perturbation_differs_from_the_argmax_cell():
    space = get_space("nb201")
    rng = np.random.default_rng(0)
    alphas = {"cell": rng.normal(0, 0.1, (6, 5)).astype(np.float32)}
    alphas["cell"][:, OPS.index("skip_connect")] += 1.0  # α drifts to skip connections, as in DARTS
    contribution = np.zeros((6, 5))
    contribution[:, OPS.index("nor_conv_3x3")] = 1.0  # but the supernet's accuracy comes from 3x3 convs
    arch, info = darts_pt.perturbation_arch(space, linear_score({"cell": contribution}), None, alphas,
                                            np.random.default_rng(1))
    assert set(space.derive(alphas).ops) == {"skip_connect"}
    assert set(arch.ops) == {"nor_conv_3x3"} and info["pt_changed_ops"] == 6


def test_darts_cells_keep_the_two_edges_per_node_whose_removal_costs_most():
    space = get_space("darts", channels=4, layers=3)
    names = space.op_names()
    edges = {"normal": 14, "reduce": 14}
    alphas = {k: np.zeros((n, len(names[k])), np.float32) for k, n in edges.items()}
    # Every op helps a little; on each node's edges the sep_conv_3x3 helps by a node-specific amount,
    # largest on the edges listed in `important`, which the derivation must keep.
    contribution = {k: np.full((n, len(names[k])), 0.01) for k, n in edges.items()}
    sep = names["normal"].index("sep_conv_3x3")
    important = {0, 1, 3, 4, 6, 8, 10, 13}  # two incoming edges of each of the 4 nodes (2, 3, 4, 5 inputs)
    for k in edges:
        contribution[k][:, names[k].index("none")] = 0.0
        for e in range(14):
            contribution[k][e, sep] = 1.0 if e in important else 0.2
    arch, info = darts_pt.perturbation_arch(space, linear_score(contribution), None, alphas,
                                            np.random.default_rng(0))
    expected = [("sep_conv_3x3", edge_inputs()[e][1]) for e in sorted(important)]  # (node, input) per edge
    assert sorted(arch.normal) == sorted(expected) and sorted(arch.reduce) == sorted(expected), (arch, expected)


def test_a_darts_pt_search_writes_the_perturbation_cell(tmp_path, xla_cache):
    import json
    import subprocess
    import sys

    from helpers import subprocess_env

    flags = ["--config.strategy.name=darts_pt", "--config.space=nb201", "--config.channels=4", "--config.layers=1",
             "--config.batch_size=32", "--config.epochs=1", "--config.train_portion=0.25", "--config.plots=False",
             f"--config.data_dir={tmp_path / 'tfds'}", f"--config.compilation_cache={xla_cache}"]
    r = subprocess.run([sys.executable, "-m", "jaxnas.search", f"--workdir={tmp_path / 'w'}", *flags],
                       env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(tmp_path / "w" / "metrics.jsonl") as f:
        record = json.loads(f.readlines()[-1])
    with open(tmp_path / "w" / "genotype.json") as f:
        genotype = json.load(f)
    assert 0 <= record["pt_changed_ops"] <= 6 and "none" not in genotype["nb201"]

"""Plots: every op label of a drawn cell is readable (off the nodes and the other labels), and the
α history shares one y-scale across panels with labelled axes and edges."""

import itertools
import random

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest

from jaxnas import viz
from jaxnas.spaces import darts
from jaxnas.spaces.base import get_space
from jaxnas.spaces.nb201 import all_archs
from jaxnas.vocabulary.darts import DARTS_V1, DARTS_V2
from jaxnas.vocabulary.nb201 import NB201Arch


def _random_genotypes(n):
    return [darts.derive({k: jax.random.normal(jax.random.key(s), (darts.NUM_EDGES, len(darts.PRIMITIVES)))
                          for k in ("normal", "reduce")}) for s in range(n)]


CELLS = [("DARTS_V1", lambda: viz.genotype_figure(DARTS_V1), None),
         ("DARTS_V2", lambda: viz.genotype_figure(DARTS_V2), None)]
CELLS += [(f"darts random {i}", lambda g=g: viz.genotype_figure(g), None) for i, g in enumerate(_random_genotypes(4))]
CELLS += [(a.to_string(), lambda a=a: viz.nb201_figure(a), a.ops)
          for a in [NB201Arch(("nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "skip_connect",
                               "nor_conv_3x3"))] + random.Random(0).sample(list(all_archs()), 12)]
CELLS += [("chain", lambda: viz.chain_figure(["conv_3x3", "identity", "max_pool_3x3", "conv_5x5"]),
           ("conv_3x3", "identity", "max_pool_3x3", "conv_5x5"))]


@pytest.mark.parametrize("name, make, ops", CELLS, ids=[c[0] for c in CELLS])
def test_every_op_label_is_off_the_nodes_and_the_other_labels(name, make, ops):
    fig = make()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = [t for t in ax.texts if t.get_gid() == "edge-label"]
        nodes = [t for t in ax.texts if t.get_gid() == "node"]
        boxes = [t.get_window_extent(renderer) for t in labels]  # text extents, white box padding aside
        node_boxes = [t.get_bbox_patch().get_window_extent(renderer) for t in nodes]
        for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
            assert not a.overlaps(b), f"{name}: '{labels[i].get_text()}' overlaps '{labels[j].get_text()}'"
        for i, a in enumerate(boxes):
            for k, n in enumerate(node_boxes):
                assert not a.overlaps(n), f"{name}: '{labels[i].get_text()}' overlaps node '{nodes[k].get_text()}'"
            assert ax.bbox.contains(a.x0, a.y0) and ax.bbox.contains(a.x1, a.y1), f"{name}: label outside the axes"
    drawn = sorted(t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "edge-label")
    if ops is not None:  # NB201 draws no `none` edge
        assert drawn == sorted(op for op in ops if op != "none")
    else:
        assert len(drawn) == 16  # two ops per node, 4 nodes, 2 cells
    plt.close(fig)


@pytest.mark.parametrize("space", ["darts", "nb201", "chain"])
def test_alpha_history_shares_one_scale_and_names_the_edges(space):
    sp = get_space(space)
    rng = np.random.default_rng(0)
    history = []
    for t in range(4):  # near-uniform α that drifts: weights 1/#ops ± a few percent
        history.append({k: np.asarray(jax.nn.softmax(0.1 * t * rng.normal(size=(len(sp.edge_names()[k]), len(v))),
                                                     -1)) for k, v in sp.op_names().items()})
    fig = viz.alpha_history_figure(history, sp.op_names(), [0, 1, 2, 3], sp.edge_names())
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    names = [f"{k}: {e}" for k, edges in sp.edge_names().items() for e in edges]
    assert [ax.get_title() for ax in panels] == names
    largest = max(float(np.max(h[k])) for h in history for k in h)
    assert len({ax.get_ylim() for ax in panels}) == 1  # one scale for all panels
    bottom, top = panels[0].get_ylim()
    assert bottom == 0 and largest < top <= min(1.0, largest * 1.1 + 0.05)
    assert any(ax.get_ylabel() == "softmax(α)" for ax in panels) and any(ax.get_xlabel() == "epoch" for ax in panels)
    fig.canvas.draw()
    for ax in panels:
        ticks = [t for t in ax.get_xticks() if 0 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks)  # whole epochs
    plt.close(fig)


def test_edge_names_follow_the_edge_order_of_alpha():
    assert get_space("nb201").edge_names()["cell"][:3] == ("node 0 → node 1", "node 0 → node 2", "node 1 → node 2")
    normal = get_space("darts").edge_names()["normal"]
    assert len(normal) == darts.NUM_EDGES
    assert normal[:5] == ("c_{k-2} → node 0", "c_{k-1} → node 0", "c_{k-2} → node 1", "c_{k-1} → node 1",
                          "node 0 → node 1")
    assert get_space("chain", layers=2).edge_names() == {"layers": ("input → layer 0", "layer 0 → layer 1")}


@pytest.mark.parametrize("space", ["darts", "nb201", "chain"])
def test_ops_of_a_space_have_distinct_colours(space):
    from jaxnas.vocabulary.chain import CHAIN_OPS

    for ops in ([CHAIN_OPS] if space == "chain" else get_space(space).op_names().values()):
        colours = [viz.OP_COLORS[op] for op in ops]
        assert len(set(colours)) == len(colours), ops

"""Plots: cells as graphs (matplotlib only, so it works headless and without graphviz)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.ticker
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402
from matplotlib.path import Path  # noqa: E402

from jaxnas.vocabulary.darts import Genotype  # noqa: E402
from jaxnas.vocabulary.nb201 import EDGES as NB201_EDGES  # noqa: E402
from jaxnas.vocabulary.nb201 import NB201Arch  # noqa: E402

OP_COLORS = {
    "none": "#bbbbbb",
    "max_pool_3x3": "#1f77b4",
    "avg_pool_3x3": "#17becf",
    "skip_connect": "#2ca02c",
    "sep_conv_3x3": "#d62728",
    "sep_conv_5x5": "#ff7f0e",
    "sep_conv_7x7": "#8c564b",
    "dil_conv_3x3": "#9467bd",
    "dil_conv_5x5": "#e377c2",
    "nor_conv_1x1": "#ff7f0e",
    "nor_conv_3x3": "#d62728",
    # the chain space's own ops (distinct from the pools and sep_conv_3x3 it shares with DARTS)
    "conv_3x3": "#e377c2",
    "conv_5x5": "#8c564b",
    "identity": "#2ca02c",
    "zero": "#bbbbbb",
    # the recurrent cell's activations (identity as the chain's)
    "tanh": "#d62728",
    "relu": "#1f77b4",
    "sigmoid": "#9467bd",
}


NODE_STYLE = dict(boxstyle="round", ec="k")
INPUT_COLOR, NODE_COLOR = "#fff5cc", "#ddeeff"
RADS = (0.0, 0.15, -0.15, 0.3, -0.3, 0.5, -0.5)  # candidate curvatures of an edge (matplotlib's arc3)
TS = tuple(np.round(np.linspace(0.2, 0.8, 13), 2))  # candidate label positions along an edge
SAMPLES = 61  # points per edge curve


def _control(p0, p2, rad: float) -> np.ndarray:
    """The control point of matplotlib's `arc3,rad=rad` curve from p0 to p2 (a quadratic Bézier)."""
    p0, p2 = np.asarray(p0, float), np.asarray(p2, float)
    d = p2 - p0
    return (p0 + p2) / 2 + rad * np.array([d[1], -d[0]])


def _bezier(p0, c, p2, t) -> np.ndarray:
    t = np.asarray(t, float)[..., None]
    return (1 - t) ** 2 * np.asarray(p0, float) + 2 * (1 - t) * t * c + t ** 2 * np.asarray(p2, float)


def _curve(p0, p2, rad: float, n: int = SAMPLES) -> np.ndarray:
    return _bezier(p0, _control(p0, p2, rad), p2, np.linspace(0, 1, n))


def _overlap(a, b) -> float:
    """Overlap area of two display-space boxes (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def _inside(points: np.ndarray, box) -> int:
    return int(np.sum((points[:, 0] > box[0]) & (points[:, 0] < box[2]) & (points[:, 1] > box[1])
                      & (points[:, 1] < box[3])))


def _draw_graph(ax, labels: Sequence[str], positions, edges, title: str) -> None:
    """Draw nodes at `positions` and `edges` as (src, dst, op) curved arrows with every op readable.

    A small greedy layout in display space: each edge takes the least curved shape (`RADS`) that
    keeps it off the other nodes and apart from the edges already drawn; then each op label takes
    the place along its edge (`TS`) that keeps it off the nodes, the other labels and, where it
    can, the other edges. Labels are tagged gid='edge-label', nodes gid='node'.
    """
    fig = ax.figure
    xs, ys = [p[0] for p in positions], [p[1] for p in positions]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.set_aspect("equal")  # arc3 curves are then the Bézier `_curve` computes in data space
    ax.axis("off")
    ax.set_title(title)
    ax.apply_aspect()
    renderer = fig.canvas.get_renderer()
    to_display = ax.transData.transform
    node_boxes = []
    for name, (x, y) in zip(labels, positions):
        color = INPUT_COLOR if name.startswith("c_") else NODE_COLOR
        t = ax.text(x, y, name, ha="center", va="center", fontsize=9, zorder=4, gid="node",
                    bbox=dict(fc=color, **NODE_STYLE))
        node_boxes.append(t.get_window_extent(renderer).expanded(1.15, 1.3).extents)
    node_size = np.mean([b[3] - b[1] for b in node_boxes])

    curves, rads = [], []
    for src, dst, _ in edges:
        best = None
        for i, rad in enumerate(RADS):
            curve = to_display(_curve(positions[src], positions[dst], rad))
            crossings = sum(_inside(curve, box) for k, box in enumerate(node_boxes) if k not in (src, dst))
            # Points closer than a node's height to an edge already drawn (edges drawn on top of each other).
            close = sum(int(np.sum(np.min(np.linalg.norm(curve[5:-5, None] - other[None, 5:-5], axis=-1), 1)
                                   < 0.5 * node_size)) for other in curves)
            cost = 100 * crossings + close + 0.5 * i
            if best is None or cost < best[0]:
                best = (cost, rad, curve)
        rads.append(best[1])
        curves.append(best[2])
        # The part of the curve outside both node boxes, so the arrowhead ends on the box's edge.
        p0, p2 = positions[src], positions[dst]
        c = _control(p0, p2, best[1])
        ts = np.linspace(0, 1, 401)
        fine = to_display(_bezier(p0, c, p2, ts))
        out_src = np.nonzero([_inside(q[None], node_boxes[src]) == 0 for q in fine])[0]
        out_dst = np.nonzero([_inside(q[None], node_boxes[dst]) == 0 for q in fine])[0]
        t0, t1 = ts[out_src[0]], ts[out_dst[-1]]
        # The sub-curve on [t0, t1] is the quadratic Bézier with these points (its blossom).
        q1 = (1 - t0) * (1 - t1) * np.asarray(p0) + ((1 - t0) * t1 + t0 * (1 - t1)) * c + t0 * t1 * np.asarray(p2)
        path = Path([_bezier(p0, c, p2, t0), q1, _bezier(p0, c, p2, t1)], [Path.MOVETO, Path.CURVE3, Path.CURVE3])
        op = edges[len(rads) - 1][2]
        ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=11, zorder=2,
                                     color=OP_COLORS.get(op, "0.35") if op else "0.6", lw=1.5 if op else 1.0))

    placed: list = []
    for e, (src, dst, op) in enumerate(edges):
        if not op:
            continue
        label = ax.text(0, 0, op, fontsize=7, ha="center", va="center", color=OP_COLORS.get(op, "k"), zorder=3,
                        gid="edge-label", bbox=dict(fc="white", ec="none", alpha=0.9, pad=0.6))
        b = label.get_window_extent(renderer)
        half = np.array([b.width, b.height]) / 2 + 2.0
        best = None
        for t in TS:
            k = int(round(t * (SAMPLES - 1)))
            center = curves[e][k]
            box = (*(center - half), *(center + half))
            overlaps = sum(_overlap(box, other) > 0 for other in node_boxes + placed)
            cost = 1e3 * overlaps + sum(_inside(c, box) for i, c in enumerate(curves) if i != e) + 4 * abs(t - 0.5)
            if best is None or cost < best[0]:
                best = (cost, k, box)
        _, k, box = best
        label.set_position(_curve(positions[src], positions[dst], rads[e])[k])
        placed.append(box)


def _darts_cell(ax, pairs, concat, title: str) -> None:
    """Inputs on the left, the intermediate nodes in a column (the DARTS paper's drawing), output on the right."""
    steps = len(pairs) // 2
    labels = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(steps)] + ["c_{k}"]
    positions = [(0.0, 1.7), (0.0, -1.7)]
    positions += [(3.4, 2.0 * ((steps - 1) / 2 - i)) for i in range(steps)]
    positions.append((6.4, 0.0))
    edges = [(j, 2 + n // 2, op) for n, (op, j) in enumerate(pairs)]
    edges += [(i, len(labels) - 1, "") for i in concat]
    _draw_graph(ax, labels, positions, edges, title)


def genotype_figure(genotype: Genotype, title: str = ""):
    """The normal and reduction cells of `genotype`, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    _darts_cell(axes[0], genotype.normal, genotype.normal_concat, f"{title} normal cell".strip())
    _darts_cell(axes[1], genotype.reduce, genotype.reduce_concat, f"{title} reduction cell".strip())
    return fig


def plot_genotype(genotype: Genotype, path: str, title: str = "") -> None:
    """Save the normal and reduction cells of `genotype` as a PNG."""
    _save(genotype_figure(genotype, title), path)


def nb201_figure(arch: NB201Arch, title: str = "NAS-Bench-201 cell"):
    fig, ax = plt.subplots(figsize=(9, 4))
    labels = [f"node {i}" for i in range(4)]
    positions = [(0.0, 0.0), (2.8, 1.4), (5.6, -1.4), (8.4, 0.0)]
    edges = [(j, i, op) for (i, j), op in zip(NB201_EDGES, arch.ops) if op != "none"]
    _draw_graph(ax, labels, positions, edges, title)
    return fig


def plot_nb201(arch: NB201Arch, path: str, title: str = "NAS-Bench-201 cell") -> None:
    _save(nb201_figure(arch, title), path)


def recurrent_figure(recurrent: Sequence[tuple[str, int]], concat: Sequence[int], title: str = "recurrent cell"):
    """A recurrent cell: x_t and h_{t-1} into node 0 (tanh), each node from its predecessor through
    its activation, the averaged nodes into h_t."""
    steps = len(recurrent)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * (steps + 3)), 4.2))
    labels = ["c_{x_t, h_t-1}", "0"] + [str(i) for i in range(1, steps + 1)] + ["c_{h_t}"]
    positions = [(0.0, 0.0), (3.0, 0.0)] + [(3.0 + 1.6 * i, 1.2 * (-1) ** i) for i in range(1, steps + 1)]
    positions.append((3.0 + 1.6 * (steps + 1), 0.0))
    edges = [(0, 1, "tanh")] + [(1 + j, 1 + i, op) for i, (op, j) in enumerate(recurrent, start=1)]
    edges += [(1 + i, len(labels) - 1, "") for i in concat]
    _draw_graph(ax, labels, positions, edges, title)
    ax.set_ylim(-3.4, 3.4)  # room for the arcs into h_t
    return fig


def plot_recurrent(recurrent: Sequence[tuple[str, int]], concat: Sequence[int], path: str,
                   title: str = "recurrent cell") -> None:
    _save(recurrent_figure(recurrent, concat, title), path)


def chain_figure(ops: Sequence[str], title: str = "chain"):
    fig, ax = plt.subplots(figsize=(max(4.0, 2.2 * (len(ops) + 1)), 1.8))
    labels = ["input"] + [f"layer {i}" for i in range(len(ops))]
    positions = [(3.0 * i, 0.0) for i in range(len(labels))]
    _draw_graph(ax, labels, positions, [(i, i + 1, op) for i, op in enumerate(ops)], title)
    return fig


def plot_chain(ops: Sequence[str], path: str, title: str = "chain") -> None:
    _save(chain_figure(ops, title), path)


def _save(fig, path: str) -> None:
    fig.savefig(path, dpi=120)
    plt.close(fig)


def alpha_history_figure(history: Sequence[dict], op_names: dict, epochs: Sequence[int] | None = None,
                         edge_names: dict | None = None):
    """softmax(α) per edge over the epochs: one panel per edge (row of α), one line per op, all
    panels on one y-scale (from 0) with the uniform 1/#ops dashed, so a near-uniform α looks flat.

    `history[t][key]` is the (edges, ops) array of softmax weights after epoch `epochs[t]`;
    `edge_names[key][e]` names edge e (which nodes it connects), else `key e`.
    """
    keys = list(op_names)
    epochs = list(epochs) if epochs is not None else list(range(1, len(history) + 1))
    series = {k: np.stack([np.asarray(h[k]) for h in history]) for k in keys}  # (T, edges, ops)
    top = max(float(np.max(v)) for v in series.values())
    top = min(1.0, np.ceil(top * 1.1 * 20) / 20)  # the next 0.05 above the largest weight
    rows = sum(v.shape[1] for v in series.values())
    cols = min(7, rows)
    grid = -(-rows // cols)
    fig, axes = plt.subplots(grid, cols, figsize=(2.4 * cols, 2.0 * grid + 0.9), squeeze=False, sharex=True,
                             sharey=True)
    panel = 0
    for key in keys:
        names = (edge_names or {}).get(key)
        for e in range(series[key].shape[1]):
            ax = axes[panel // cols][panel % cols]
            for o, name in enumerate(op_names[key]):
                ax.plot(epochs, series[key][:, e, o], color=OP_COLORS.get(name), lw=1.2, label=name)
            ax.axhline(1 / len(op_names[key]), color="0.5", ls="--", lw=0.7)
            ax.set_title(f"{key}: {names[e]}" if names else f"{key} {e}", fontsize=7)
            ax.set_ylim(0, top)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.tick_params(labelsize=6, labelbottom=True)
            if panel % cols == 0:
                ax.set_ylabel("softmax(α)", fontsize=7)
            if panel + cols >= rows:  # nothing below it
                ax.set_xlabel("epoch", fontsize=7)
            panel += 1
    for k in range(panel, grid * cols):
        axes[k // cols][k % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(8, len(labels)), fontsize=7, frameon=False)
    fig.suptitle("softmax(α) per edge over epochs (dashed: uniform)", fontsize=10)
    fig.tight_layout(rect=(0, 0.3 / (2.0 * grid + 0.9), 1, 0.97))
    return fig


def plot_alpha_history(history: Sequence[dict], op_names: dict, path: str, epochs: Sequence[int] | None = None,
                       edge_names: dict | None = None) -> None:
    """Save `alpha_history_figure` as a PNG."""
    fig = alpha_history_figure(history, op_names, epochs, edge_names)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_metric_history(records: Sequence[dict], keys: Sequence[str], path: str,
                        references: dict[str, dict[str, float]] | None = None) -> None:
    """One panel per metric `key` of the per-epoch `records` (metrics.jsonl), over whole epochs,
    with each of `references` (name -> {key: value}) as a dashed line: e.g. NB201's benchmark
    accuracy of the derived cell against the best and the all-skip cells."""
    references = references or {}
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.4), squeeze=False)
    epochs = [r["epoch"] for r in records]
    styles = ["--", ":", "-."]
    for ax, key in zip(axes[0], keys):
        values = [np.nan if r.get(key) is None else r[key] for r in records]
        ax.plot(epochs, values, "o-", color="k", lw=1.4, ms=3, label="derived architecture")
        for i, (name, ref) in enumerate(references.items()):
            if key in ref:
                ax.axhline(ref[key], ls=styles[i % len(styles)], color=f"C{i}", lw=1.1, label=name)
                ax.annotate(f"{ref[key]:.2f}", (1.0, ref[key]), xycoords=("axes fraction", "data"), fontsize=6,
                            color=f"C{i}", ha="right", va="bottom")
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(key, fontsize=8)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)

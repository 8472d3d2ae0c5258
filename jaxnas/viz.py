"""Plots: cells as graphs (matplotlib only, so it works headless and without graphviz)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.ticker
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from jaxnas.spaces.darts import Genotype  # noqa: E402
from jaxnas.spaces.nb201 import EDGES as NB201_EDGES  # noqa: E402
from jaxnas.spaces.nb201 import NB201Arch  # noqa: E402

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
}


def _draw_graph(ax, labels: Sequence[str], positions, edges, title: str) -> None:
    """Draw nodes at `positions` and `edges` as (src, dst, label) arrows."""
    for src, dst, label in edges:
        (x0, y0), (x1, y1) = positions[src], positions[dst]
        rad = 0.25 if abs(y1 - y0) < 1e-6 and abs(x1 - x0) > 1.5 else 0.1
        ax.annotate(
            "", xy=(x1, y1), xytext=(x0, y0),
            arrowprops=dict(arrowstyle="-|>", color=OP_COLORS.get(label, "k"), lw=1.6,
                            shrinkA=14, shrinkB=14, connectionstyle=f"arc3,rad={rad}"),
        )
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12, label, fontsize=7, ha="center",
                color=OP_COLORS.get(label, "k"), bbox=dict(fc="white", ec="none", alpha=0.8, pad=0.5))
    for name, (x, y) in zip(labels, positions):
        ax.text(x, y, name, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", fc="#fff5cc" if name.startswith("c_") else "#ddeeff", ec="k"))
    ax.set_title(title)
    ax.set_xlim(-0.8, max(p[0] for p in positions) + 0.8)
    ax.set_ylim(min(p[1] for p in positions) - 0.8, max(p[1] for p in positions) + 0.8)
    ax.axis("off")


def _darts_cell(ax, pairs, concat, title: str) -> None:
    steps = len(pairs) // 2
    labels = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(steps)] + ["c_{k}"]
    positions = [(0.0, 1.0), (0.0, -1.0)]
    positions += [(1.2 + 1.1 * i, 1.2 * (1 if i % 2 == 0 else -1) * (0.5 + 0.25 * i)) for i in range(steps)]
    positions.append((1.4 + 1.1 * steps, 0.0))
    edges = [(j, 2 + n // 2, op) for n, (op, j) in enumerate(pairs)]
    edges += [(i, len(labels) - 1, "") for i in concat]
    _draw_graph(ax, labels, positions, edges, title)


def plot_genotype(genotype: Genotype, path: str, title: str = "") -> None:
    """Save the normal and reduction cells of `genotype` side by side as a PNG."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    _darts_cell(axes[0], genotype.normal, genotype.normal_concat, f"{title} normal cell".strip())
    _darts_cell(axes[1], genotype.reduce, genotype.reduce_concat, f"{title} reduction cell".strip())
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_nb201(arch: NB201Arch, path: str, title: str = "NAS-Bench-201 cell") -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [f"node {i}" for i in range(4)]
    positions = [(0.0, 0.0), (1.5, 1.0), (3.0, -1.0), (4.5, 0.0)]
    edges = [(j, i, op) for (i, j), op in zip(NB201_EDGES, arch.ops) if op != "none"]
    _draw_graph(ax, labels, positions, edges, title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_chain(ops: Sequence[str], path: str, title: str = "chain") -> None:
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * (len(ops) + 1)), 2.2))
    labels = ["input"] + [f"layer {i}" for i in range(len(ops))]
    positions = [(1.5 * i, 0.0) for i in range(len(labels))]
    _draw_graph(ax, labels, positions, [(i, i + 1, op) for i, op in enumerate(ops)], title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_arch(space_name: str, arch, path: str, title: str = "") -> None:
    """Draw whatever `SearchSpace.derive` returned for the space `space_name`."""
    if space_name == "darts":
        plot_genotype(arch, path, title)
    elif space_name == "nb201":
        plot_nb201(arch, path, title or "NAS-Bench-201 cell")
    else:
        plot_chain(arch.ops, path, title or "chain")


def plot_alpha_history(history: Sequence[dict], op_names: dict, path: str, epochs: Sequence[int] | None = None) -> None:
    """softmax(α) per edge over the epochs: one panel per edge (row of α), one line per op.

    `history[t][key]` is the (edges, ops) array of softmax weights after epoch `epochs[t]`.
    """
    keys = list(op_names)
    epochs = list(epochs) if epochs is not None else list(range(1, len(history) + 1))
    rows = sum(int(np.asarray(history[0][k]).shape[0]) for k in keys)
    cols = min(7, rows)
    grid = -(-rows // cols)
    fig, axes = plt.subplots(grid, cols, figsize=(2.3 * cols, 1.9 * grid + 0.6), squeeze=False, sharex=True)
    panel = 0
    for key in keys:
        series = np.stack([np.asarray(h[key]) for h in history])  # (T, edges, ops)
        for e in range(series.shape[1]):
            ax = axes[panel // cols][panel % cols]
            for o, name in enumerate(op_names[key]):
                ax.plot(epochs, series[:, e, o], color=OP_COLORS.get(name), lw=1.2, label=name)
            ax.set_title(f"{key} {e}", fontsize=8)
            ax.tick_params(labelsize=6)
            panel += 1
    for k in range(panel, grid * cols):
        axes[k // cols][k % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(8, len(labels)), fontsize=7, frameon=False)
    fig.suptitle("softmax(α) per edge over epochs", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
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

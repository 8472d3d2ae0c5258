"""Write docs/fidelity.md and its plots from committed study results.

    python benchmarks/fidelity_report.py                       # every study under benchmarks/results/
    python benchmarks/fidelity_report.py --out=docs/fidelity.md

A study's folder under `benchmarks/results/` holds what `python -m jaxnas.study` wrote (`study.csv`),
`meta.json` (the command, date, machine, versions, commit and the search's total steps) and
`findings.md` (what the numbers say, written by whoever ran it). Everything else in the page is
computed here from those files, so rerunning this script after a new study run updates it: each
study (the convolutional DARTS supernet on the digits, the recurrent cell on the pydoc corpus, ...)
gets its own section, and a table up front sets them side by side.
`benchmarks/results/fidelity_notes.md` (hand-written sections that need no study, e.g. where an
original implementation departs from its paper) ends the page.
"""

from __future__ import annotations

import argparse
import csv
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.environ.get("JAXNAS_RESULTS", os.path.join(ROOT, "benchmarks", "results"))
WHOLE = ("cosine", "rel_l2", "mixed_cosine", "mixed_rel_l2")
OTHER = ("sign_agreement", "genotype_agrees", "seconds", "peak_memory_mb")


def read_rows(path: str) -> list[dict]:
    with open(path) as f:
        return [{"step": int(r["step"]), "batch_size": int(r["batch_size"]), "estimator": r["estimator"],
                 "metric": r["metric"], "value": float(r["value"])} for r in csv.DictReader(f)]


def number(x: float) -> str:
    """Three significant digits, but a value just below 1 (a cosine) to its first digit other than
    9, up to five decimals, so 0.9995 does not print as 1."""
    if 0.99 <= x < 0.999995:
        return f"{x:.{int(-np.floor(np.log10(1 - x)))}f}"
    return f"{x:.3g}"


def quartiles(values: list[float]) -> str:
    v = np.asarray([x for x in values if np.isfinite(x)])
    if not len(v):
        return "–"
    q25, q50, q75 = np.percentile(v, [25, 50, 75])
    return f"{number(q50)} [{number(q25)}, {number(q75)}]"


def single(values: list[float]) -> str:
    """One measurement (a point at one batch size), or – where the study has none."""
    return number(values[0]) if len(values) == 1 else quartiles(values)


def estimators(rows: list[dict]) -> list[str]:
    seen = []
    for r in rows:
        if not r["estimator"].startswith("mixed_") and r["estimator"] not in seen:
            seen.append(r["estimator"])
    return seen


def values(rows, **match) -> list[float]:
    return [r["value"] for r in rows if all(r[k] == v for k, v in match.items())]


def table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|", *("| " + " | ".join(b) + " |" for b in body)]


def study_section(name: str, folder: str, plots_dir: str) -> list[str]:
    rows = read_rows(os.path.join(folder, "study.csv"))
    with open(os.path.join(folder, "meta.json")) as f:
        meta = json.load(f)
    total = meta["total_steps"]
    names = estimators(rows)
    steps = sorted({r["step"] for r in rows})
    batches = sorted({r["batch_size"] for r in rows})
    progress = {s: f"{100 * s / total:.0f} %" for s in steps}
    out = [f"## {meta['title']}", "", meta["setting"], "",
           f"Measured {meta['date']} on {meta['machine']} ({meta['versions']}), commit {meta['commit']}:",
           f"`{meta['command']}`. Points: steps {', '.join(map(str, steps))} of {total}; batch sizes "
           f"{', '.join(map(str, batches))}; reference `{meta['reference']}`. Cells: median [25th, 75th percentile] "
           "over the points and batch sizes unless a column says otherwise.", ""]
    findings = os.path.join(folder, "findings.md")
    if os.path.exists(findings):
        with open(findings) as f:
            out += ["### What it shows", "", f.read().strip(), ""]

    out += ["### Whole hypergradient and second-order term, against the reference", "",
            "`mixed_*` compares the estimate minus its first-order part (∇α L_val at the weights where the "
            "estimator evaluates it) with the reference's; the first-order estimate has none.", ""]
    out += table(["estimator", *WHOLE, *OTHER],
                 [[n, *(quartiles(values(rows, estimator=n, metric=m)) for m in WHOLE + OTHER)] for n in names])
    bench = sorted({r["metric"] for r in rows if r["metric"].startswith("benchmark_acc_")})
    if bench:
        out += ["", "NAS-Bench-201 test accuracy (%) of the cell derived after one α step:", ""]
        out += table(["estimator", *bench], [[n, *(quartiles(values(rows, estimator=n, metric=m)) for m in bench)]
                                             for n in names])

    for metric in ("cosine", "mixed_cosine"):
        for b in batches:
            out += ["", f"### `{metric}` by training progress, batch {b}", ""]
            out += table(["estimator", *(progress[s] for s in steps)],
                         [[n, *(single(values(rows, estimator=n, metric=metric, step=s, batch_size=b)) for s in steps)]
                          for n in names])
        if len(batches) == 1:  # one batch size (a language model's study): nothing to compare across sizes
            continue
        # Only the points every batch size has, so the columns compare like with like.
        shared = sorted(set.intersection(*({r["step"] for r in rows if r["batch_size"] == b} for b in batches)))
        over = "over points" if shared == steps else "over the points every batch size has: " + ", ".join(
            progress[s] for s in shared)
        out += ["", f"### `{metric}` by batch size ({over})", ""]
        out += table(["estimator", *(f"batch {b}" for b in batches)],
                     [[n, *(quartiles([v for s in shared for v in values(rows, estimator=n, metric=metric, step=s,
                                                                          batch_size=b)]) for b in batches)]
                      for n in names])

    mixed = sorted({r["estimator"] for r in rows if r["estimator"].startswith("mixed_fd_eps")},
                   key=lambda n: -float(n[len("mixed_fd_eps"):]))
    if mixed:
        out += ["", "### The second-order term alone: DARTS's finite difference against the exact jvp", "",
                "‖M‖ of the exact term: " + quartiles(values(rows, estimator="mixed_exact", metric="norm"))
                + ". Per ε scale r (ε = r/‖v‖):", ""]
        out += table(["ε scale", "cosine", "rel-L2", "‖M_fd‖"],
                     [[n[len("mixed_fd_eps"):], *(quartiles(values(rows, estimator=n, metric=m))
                                                  for m in ("cosine", "rel_l2", "norm"))] for n in mixed])
    out += ["", *plots(name, rows, names, steps, batches, total, mixed, plots_dir)]
    return out


def plots(name: str, rows, names, steps, batches, total, mixed, plots_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(plots_dir, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    styles = dict(zip(batches, ("-", "--", ":", "-.")))
    colors = {n: f"C{i % 10}" for i, n in enumerate(names)}
    for ax, metric in zip(axes, ("cosine", "mixed_cosine")):
        for n in names:
            for b in batches:  # a line per estimator and batch size, at the points measured at that size
                pts = [(100 * s / total, values(rows, estimator=n, metric=metric, step=s, batch_size=b)) for s in steps]
                pts = [(x, v[0]) for x, v in pts if v and np.isfinite(v[0])]
                if pts:
                    ax.plot(*zip(*pts), marker="o", ms=3, color=colors[n], ls=styles.get(b, "-"),
                            label=n if b == batches[0] and metric == "cosine" else None)
        ax.set(xlabel="% of the search", ylabel=f"{metric} to the reference",
               title="whole hypergradient" if metric == "cosine" else "second-order term", ylim=(-1.05, 1.05))
        ax.axhline(0, color="0.7", lw=0.5)
    for b in batches:
        axes[1].plot([], [], color="0.3", ls=styles.get(b, "-"), label=f"batch {b}")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7, handlelength=3)
    fig.tight_layout()
    progress_png = f"{name}_cosine_over_search.png"
    fig.savefig(os.path.join(plots_dir, progress_png), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if mixed:
        r = [float(n[len("mixed_fd_eps"):]) for n in mixed]
        for ax, metric, label in ((axes[0], "cosine", "cosine to the exact term"),
                                  (axes[1], "rel_l2", "relative L2 error")):
            med = [np.nanmedian(values(rows, estimator=n, metric=metric)) for n in mixed]
            q = [np.nanpercentile(values(rows, estimator=n, metric=metric), [25, 75]) for n in mixed]
            ax.plot(r, med, marker="o")
            ax.fill_between(r, [a for a, _ in q], [b for _, b in q], alpha=0.2)
            ax.set(xscale="log", xlabel="ε scale r (ε = r / ‖∇w' L_val‖)", ylabel=f"{label} (median, quartiles)")
        axes[0].set(ylim=(-1.05, 1.05), title="does the finite difference converge?")
        axes[0].axhline(1, color="0.7", lw=0.5)
        axes[1].set(yscale="log", title="its error")
    fig.tight_layout()
    eps_png = f"{name}_eps_convergence.png"
    fig.savefig(os.path.join(plots_dir, eps_png), dpi=110)
    plt.close(fig)
    rel = os.path.basename(plots_dir)  # beside the page: <out dir>/fidelity/
    return [f"![cosine over the search]({rel}/{progress_png})", "", f"![ε convergence]({rel}/{eps_png})", ""]


def overview_section(folders: list[str]) -> list[str]:
    """One row per study folder: its reference and the median [quartiles] cosine of DARTS's first
    order and second order (the paper's ε; also its second-order part alone), over all its points
    and batch sizes, so the supernets compare at a glance; the sections below break them down."""
    body = []
    for folder in folders:
        rows = read_rows(os.path.join(folder, "study.csv"))
        with open(os.path.join(folder, "meta.json")) as f:
            meta = json.load(f)
        points = len({(r["step"], r["batch_size"]) for r in rows})
        cells = [quartiles(values(rows, estimator=n, metric=m))
                 for n, m in (("first_order", "cosine"), ("darts_fd", "cosine"), ("darts_fd", "mixed_cosine"))]
        body.append([meta["title"], f"`{meta['reference']}`", str(points), *cells])
    return ["## The studies side by side", "",
            "Median [25th, 75th percentile] over each study's points (× batch sizes); `mixed_cosine` compares "
            "the second-order part alone. Details in each study's section.", "",
            *table(["study", "reference", "points × batch sizes", "first_order cosine", "darts_fd cosine",
                    "darts_fd mixed_cosine"], body), ""]


# What the fidelity issue reported for the same setting with the PyTorch code's initial weights:
# ε scale -> (‖M_fd‖, cosine to M), and the exact ‖M‖ and darts_fd-vs-unrolled(1) cosine.
ISSUE_FD = {1e-2: (8.10, 0.34), 1e-3: (24.5, None), 1e-4: (67.2, None)}
ISSUE_EXACT_NORM, ISSUE_WHOLE_COSINE = 1.1087, 0.66


def init_section(path: str) -> list[str]:
    """The second-order term at initialisation in the issue's setting (`benchmarks/mixed_term_init.py`),
    beside the figures the issue reported."""
    with open(path) as f:
        r = json.load(f)
    out = ["## At initialisation, in the issue's setting", "", r["setting"] + ".", "",
           f"Measured {r['date']} on {r['device_kind']} (jax {r['jax']}), commit {r['commit']}: `{r['command']}`. "
           f"Exact ‖M‖ = {r['exact_norm']:.4g} (the issue: {ISSUE_EXACT_NORM} with the PyTorch code's weights); "
           f"cosine of the whole `darts_fd` hypergradient to `unrolled_k1`: "
           f"{r['darts_fd_vs_unrolled_k1_cosine']:.3f} (the issue: {ISSUE_WHOLE_COSINE}).", ""]
    body = []
    for d in r["finite_difference"]:
        norm, cos = ISSUE_FD.get(d["eps_scale"], (None, None))
        issue = " / ".join(x for x in (f"{norm}" if norm else "", f"cos {cos}" if cos else "") if x) or "–"
        body.append([f"{d['eps_scale']:g}", f"{d['norm']:.4g}", f"{d['norm'] / r['exact_norm']:.3g}",
                     f"{d['cosine']:.3f}", f"{d['rel_l2']:.3g}", issue])
    out += table(["ε scale", "‖M_fd‖", "‖M_fd‖ / ‖M‖", "cosine to M", "rel-L2", "the issue (PyTorch weights)"], body)
    return out + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "fidelity.md"))
    args = parser.parse_args()
    studies = sorted(d for d in os.listdir(RESULTS) if os.path.exists(os.path.join(RESULTS, d, "study.csv")))
    lines = ["# Hypergradient fidelity on the DARTS supernets", "",
             "Generated by `python benchmarks/fidelity_report.py` from the study results under "
             "`benchmarks/results/`; do not edit by hand.", ""]
    if studies:
        lines += overview_section([os.path.join(RESULTS, name) for name in studies])
    init = os.path.join(RESULTS, "mixed_term_init.json")
    if os.path.exists(init):
        lines += init_section(init)
    for name in studies:
        lines += study_section(name, os.path.join(RESULTS, name), os.path.join(os.path.dirname(args.out), "fidelity"))
    notes = os.path.join(RESULTS, "fidelity_notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            lines += [f.read().rstrip(), ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    print(f"wrote {args.out} ({len(studies)} studies)")


if __name__ == "__main__":
    main()

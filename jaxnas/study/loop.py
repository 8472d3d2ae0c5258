"""How good are the hypergradient approximations? Every configured estimator evaluated on the same
state and batches at each checkpoint of a search trajectory, against a reference estimator.

The trajectory is a search (run into `<workdir>/search`, resumable like any search, or an existing
`search_workdir`); its checkpoint at step s is the state before step s, and the batches are the
ones step s uses. Rows go to `study.csv` as they are computed, so a rerun continues where it
stopped; `summary.md` and the plots are rewritten from the CSV at the end.
"""

from __future__ import annotations

import csv
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from jaxnas import xla_workarounds
from jaxnas.checkpoint import Checkpointer
from jaxnas.compilation import enable_compilation_cache
from jaxnas.preflight import log_preflight
from jaxnas.search import config as search_config
from jaxnas.search import hypergrad
from jaxnas.search import loop as search_loop
from jaxnas.search.config import ConfigError
from jaxnas.search.state import inner_optimizer
from jaxnas.search.step import supernet_loss
from jaxnas.spaces.base import get_space
from jaxnas.study import config as config_lib

METRICS = ("cosine", "rel_l2", "sign_agreement", "genotype_agrees", "seconds", "peak_memory_mb")
CSV_FIELDS = ("step", "estimator", "metric", "value")


def _flat(tree) -> np.ndarray:
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)])


def compare(estimate, reference) -> dict[str, float]:
    """Cosine similarity, relative ℓ2 error and the fraction of α entries whose sign agrees."""
    e, r = _flat(estimate), _flat(reference)
    denom = np.linalg.norm(e) * np.linalg.norm(r)
    return {"cosine": float(e @ r / denom) if denom > 0 else float("nan"),
            "rel_l2": float(np.linalg.norm(e - r) / max(np.linalg.norm(r), 1e-300)),
            "sign_agreement": float(np.mean(np.sign(e) == np.sign(r)))}


def _cast(tree, dtype):
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _load_search_config(path: str) -> ml_collections.ConfigDict:
    with open(os.path.join(path, "config.json")) as f:
        saved = json.load(f)
    config = search_config.get_config()
    unknown = sorted(set(saved) - set(config.keys()))
    if unknown:
        raise ConfigError(f"search workdir {path} has config keys this version does not know: {unknown}")
    config.update(saved)
    return config


def _read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [{**r, "step": int(r["step"]), "value": float(r["value"])} for r in csv.DictReader(f)]


class _Estimators:
    """One jitted, compiled function per estimator name (compiled on first use, reused at every step)."""

    def __init__(self, config, net, schedule, momentum, weight_decay):
        self.config, self.net = config, net
        self.inner = inner_optimizer(schedule, momentum, weight_decay)
        self.compiled: dict[str, Any] = {}

    def _fn(self, name: str):
        kind, options = config_lib.parse_estimator(name, self.config)
        estimate = hypergrad.get_estimator(kind, **options)
        net, inner = self.net, self.inner

        def run(params, batch_stats, alphas, inner_state, train_batches, val_batch, xi):
            d_alpha, _ = estimate(supernet_loss(net, batch_stats), params, alphas, inner, inner_state, train_batches,
                                  val_batch, xi=xi)
            return d_alpha

        return xla_workarounds.jit(run)

    def __call__(self, name: str, *args) -> tuple[Any, float, float]:
        """(dα, seconds of one call after compilation, compiled peak memory in MB)."""
        if name not in self.compiled:
            self.compiled[name] = self._fn(name).lower(*args).compile()
        fn = self.compiled[name]
        jax.block_until_ready(fn(*args))  # warm
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        seconds = time.perf_counter() - t0
        mem = fn.memory_analysis()
        peak = (mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes) / 2**20 if mem else 0.0
        return out, seconds, peak


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Run (or resume) the study `config` in `workdir`; returns the summary {estimator: {metric: median}}."""
    log_preflight(None)  # the study computes in float32 or float64 on purpose
    config_lib.validate(config, jax.device_count(), jax.process_count())
    workdir = os.path.abspath(os.path.expanduser(workdir))
    os.makedirs(workdir, exist_ok=True)
    enable_compilation_cache(config.compilation_cache)
    if config.search_workdir:
        search_dir = os.path.abspath(os.path.expanduser(config.search_workdir))
        s_config = _load_search_config(search_dir)
    else:
        search_dir, s_config = os.path.join(workdir, "search"), config.search
        s_config = s_config.copy_and_resolve_references()
        s_config.compilation_cache = config.compilation_cache
        logging.info("running the search trajectory into %s", search_dir)
        search_loop.run(s_config, search_dir)
    if config.float64:
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float64 if config.float64 else jnp.float32

    space = get_space(s_config.space, **search_config.space_options(s_config))
    data = search_loop.search_data(s_config)
    setup = search_loop.search_setup(s_config, space, data.num_classes, data.image_shape,
                                        data.steps_per_epoch, axis_name=None)
    target = setup.init()
    ckpt = Checkpointer(os.path.join(search_dir, "checkpoints"), keep=10**6)
    steps = ckpt.steps()
    if not steps:
        raise ConfigError(f"no checkpoints to study in {search_dir}; set search.checkpoint_every_steps")
    names = config_lib.estimator_names(config)
    estimators = _Estimators(config, space.supernet(data.num_classes), setup.schedule, s_config.momentum,
                             s_config.weight_decay)
    k_max = max([config_lib.parse_estimator(n, config)[1].get("steps", 1) for n in names + [config.reference]])
    csv_path = os.path.join(workdir, "study.csv")
    rows = _read_rows(csv_path)
    done = {r["step"] for r in rows}
    new_file = not os.path.exists(csv_path)
    with open(csv_path, "a", newline="") as f:
        out = csv.DictWriter(f, CSV_FIELDS)
        if new_file:
            out.writeheader()
        for step in steps:
            if step in done or step >= data.steps_per_epoch * s_config.epochs:
                continue
            state, _ = ckpt.restore(step, target)
            epoch, s = divmod(step, data.steps_per_epoch)
            train = tuple(_cast(data.train.batch(epoch, s + i), dtype) for i in range(k_max))
            val = _cast(data.val.batch(epoch, s), dtype)
            cosines = {}
            for row in _evaluate_step(config, names, estimators, setup, space, state, train, val, dtype):
                out.writerow({**row, "step": step})
                rows.append({**row, "step": step})
                if row["metric"] == "cosine":
                    cosines[row["estimator"]] = row["value"]
            f.flush()
            logging.info("study step %d, cosine to %s: %s", step, config.reference,
                         ", ".join(f"{n} {c:.4f}" for n, c in cosines.items()))
    summary = summarize(rows, names)
    write_summary(summary, names, config.reference, os.path.join(workdir, "summary.md"))
    plot_study(rows, names, config, os.path.join(workdir))
    return summary


def _evaluate_step(config, names, estimators, setup, space, state, train, val, dtype) -> list[dict]:
    """Rows {estimator, metric, value} of every estimator at one state, against the reference."""
    params, stats, alphas = _cast(state.params, dtype), _cast(state.batch_stats, dtype), _cast(state.alphas, dtype)
    inner_state = _cast(state.inner_opt_state, dtype)
    a_state = _cast(state.alpha_opt_state, dtype)
    xi = jnp.asarray(setup.schedule(state.step - state.nonfinite_steps), dtype)

    def evaluate(name):
        kind, options = config_lib.parse_estimator(name, config)
        batches = train[:options["steps"]] if kind == "unrolled" else train[:1]
        return estimators(name, params, stats, alphas, inner_state, batches, val, xi)

    def genotype_after(d_alpha):
        updates, _ = setup.alpha_opt.update(d_alpha, a_state, alphas)
        return space.derive(jax.device_get(optax.apply_updates(alphas, updates)))

    ref, _, _ = evaluate(config.reference)
    ref_genotype = genotype_after(ref)
    rows = []
    for name in names:
        d_alpha, seconds, peak = evaluate(name)
        values = {**compare(d_alpha, ref), "genotype_agrees": float(genotype_after(d_alpha) == ref_genotype),
                  "seconds": seconds, "peak_memory_mb": peak}
        rows += [{"estimator": name, "metric": m, "value": values[m]} for m in METRICS]
    return rows


def summarize(rows: list[dict], names: list[str]) -> dict:
    """{estimator: {metric: (median, q25, q75)}} over the studied steps."""
    out = {}
    for name in names:
        out[name] = {}
        for metric in METRICS:
            v = np.array([r["value"] for r in rows if r["estimator"] == name and r["metric"] == metric])
            if len(v):
                out[name][metric] = tuple(float(x) for x in np.percentile(v, [50, 25, 75]))
    return out


def write_summary(summary: dict, names: list[str], reference: str, path: str) -> None:
    lines = [f"Hypergradient estimators against `{reference}`: median [25th, 75th percentile] over the studied steps.",
             "", "| estimator | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name in names:
        cells = []
        for metric in METRICS:
            m = summary[name].get(metric)
            cells.append(f"{m[0]:.4g} [{m[1]:.3g}, {m[2]:.3g}]" if m else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot_study(rows: list[dict], names: list[str], config, workdir: str) -> None:
    """cosine over the search, cost against fidelity, and cosine against darts_fd's ε."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(name, metric):
        pts = sorted((r["step"], r["value"]) for r in rows if r["estimator"] == name and r["metric"] == metric)
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, ax = plt.subplots(figsize=(7, 4))
    for name in names:
        ax.plot(*series(name, "cosine"), marker="o", ms=3, label=name)
    ax.set(xlabel="search step", ylabel=f"cosine to {config.reference}", title="hypergradient fidelity over the search")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "cosine_over_search.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in names:
        t, c = np.median(series(name, "seconds")[1]), np.median(series(name, "cosine")[1])
        ax.scatter(t, c)
        ax.annotate(name, (t, c), fontsize=6)
    ax.set(xscale="log", xlabel="seconds per estimate (median)", ylabel="cosine (median)", title="cost vs fidelity")
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "cost_vs_fidelity.png"), dpi=110)
    plt.close(fig)

    eps = [(config_lib.parse_estimator(n, config)[1]["eps_scale"], n) for n in names if n.startswith("darts_fd")]
    fig, ax = plt.subplots(figsize=(6, 4))
    if eps:
        eps.sort()
        ax.plot([e for e, _ in eps], [np.median(series(n, "cosine")[1]) for _, n in eps], marker="o")
    ax.set(xscale="log", xlabel="ε scale of darts_fd (ε = scale / ‖∇w' L_val‖)", ylabel="cosine (median)",
           title="finite-difference step")
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "cosine_vs_eps.png"), dpi=110)
    plt.close(fig)

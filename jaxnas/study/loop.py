"""How good are the hypergradient approximations? Every configured estimator evaluated on the same
state and batches at each checkpoint of a search trajectory, against a reference estimator.

The trajectory is a search (run into `<workdir>/search`, resumable like any search, or an existing
`search_workdir`); its checkpoint at step s is the state before step s, and the batches are the
ones step s uses. Rows go to `study.csv` as they are computed, so a rerun continues where it
stopped; `summary.md` and the plots are rewritten from the CSV at the end.
"""

from __future__ import annotations

import csv
import dataclasses
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
from jaxnas.compilation import FAST_COMPILE, enable_compilation_cache
from jaxnas.errors import ConfigError
from jaxnas.preflight import log_preflight
from jaxnas.runs import StopSignal
from jaxnas.search import config as search_config
from jaxnas.search import hypergrad
from jaxnas.search import loop as search_loop
from jaxnas.search.state import inner_optimizer
from jaxnas.search.step import alpha_step_loss, step_inputs
from jaxnas.study import config as config_lib
from jaxnas.study import mixed as mixed_lib
from jaxnas.tasks import get_task
from jaxnas.tasks.image import ImageClassification

# Per estimator, against the reference: the whole hypergradient, its mixed (second-order) part, the
# genotype after one α step, the cost.
METRICS = ("cosine", "rel_l2", "sign_agreement", "mixed_cosine", "mixed_rel_l2", "genotype_agrees", "seconds",
           "peak_memory_mb")
MIXED_METRICS = ("cosine", "rel_l2", "norm")  # the finite-difference mixed term against the exact one
CSV_FIELDS = ("step", "batch_size", "estimator", "metric", "value")


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
        saved = search_config.upgrade_flat_keys(json.load(f))
    config = search_config.get_config()
    unknown = sorted(set(saved) - set(config.keys()))
    if unknown:
        raise ConfigError(f"search workdir {path} has config keys this version does not know: {unknown}")
    with config.unlocked():
        config.update(saved)
    return search_config.resolve(config)


def _read_rows(path: str, batch_size: int) -> list[dict]:
    """The rows written so far (a file from before the batch_size column holds `batch_size` rows)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [{**r, "step": int(r["step"]), "batch_size": int(r.get("batch_size") or batch_size),
                 "value": float(r["value"])} for r in csv.DictReader(f)]


def study_steps(checkpoints: list[int], total: int, points: list[float]) -> list[int]:
    """The checkpoints nearest to each fraction of the search's `total` steps (every checkpoint
    before the end when `points` is empty)."""
    if not points:
        return [s for s in checkpoints if s < total]
    return sorted({min(checkpoints, key=lambda s: (abs(s - p * total), s)) for p in points})


class _Estimators:
    """One jitted, compiled function per estimator name and input shapes (compiled on first use,
    reused at every step), and the functions the mixed-term metrics need. Every one differentiates
    the search step's α-step loss (`step.alpha_step_loss`: a language model's NLL without TAR) with
    the point's apply options (`forward`: its dropout rngs), so all see the same dropout masks."""

    def __init__(self, config, net, schedule, momentum, weight_decay, task=None):
        self.config, self.net = config, net
        task = task or ImageClassification()
        self.inner = inner_optimizer(schedule, momentum, weight_decay)
        self.compiled: dict[Any, Any] = {}
        self.on_cpu = jax.default_backend() == "cpu"
        self.eps_scales = tuple(config_lib.floats(config, "mixed_eps"))
        self.compiler_options = FAST_COMPILE if config.fast_compile else {}

        def first_order_part(params, batch_stats, alphas, inner_state, batches, forward):
            """∇_α L_val(w_k, α) at the weights after the given virtual steps (a partial derivative)."""
            (train_batches, val_batch), w, state = batches, params, inner_state
            loss_fn = alpha_step_loss(task, net, batch_stats, forward)
            for batch in train_batches:
                w, state, _ = hypergrad.virtual_step(loss_fn, w, alphas, self.inner, state, batch)
            return jax.grad(lambda a: loss_fn(w, a, val_batch)[0])(alphas)

        def mixed(params, batch_stats, alphas, inner_state, batches, forward):
            (train_batch, val_batch), loss_fn = batches, alpha_step_loss(task, net, batch_stats, forward)
            return mixed_lib.mixed_terms(loss_fn, params, alphas, self.inner, inner_state, train_batch, val_batch,
                                         self.eps_scales)

        self.task = task
        self.first_order_part = xla_workarounds.jit(first_order_part, compiler_options=self.compiler_options)
        self.mixed = xla_workarounds.jit(mixed, compiler_options=self.compiler_options)

    def _fn(self, name: str, options: dict):
        estimate = hypergrad.get_estimator(name, **options)
        net, inner, task = self.net, self.inner, self.task

        def run(params, batch_stats, alphas, inner_state, train_batches, val_batch, xi, extra):
            """`extra`: the point's apply options (`forward`) and the estimator's traced options (`runtime`)."""
            loss_fn = alpha_step_loss(task, net, batch_stats, extra["forward"])
            d_alpha, _ = estimate(loss_fn, params, alphas, inner, inner_state, train_batches, val_batch, xi=xi,
                                  **extra["runtime"])
            return d_alpha

        return xla_workarounds.jit(run, compiler_options=self.compiler_options)

    def _release(self) -> None:
        """On a CPU, drop every compiled function and jax's caches of them before another estimator
        is compiled, so one estimator's executables (and the first-order parts and mixed term used
        with it) are alive at a time. XLA:CPU holds each executable's machine code and thousands of
        memory maps (a float64 second-order DARTS step: gigabytes, about 7,000 maps), so a study
        keeping all of them was killed for memory; the persistent compilation cache brings one back
        in seconds when it is needed again. Dropping the references alone frees nothing: jax's
        caches hold them. `keep_compiled` keeps them all (small functions: no retracing at each point)."""
        if self.on_cpu and not self.config.keep_compiled:
            self.compiled.clear()
            jax.clear_caches()

    def __call__(self, spec: config_lib.EstimatorSpec, *args, forward: dict | None = None) -> tuple[Any, float, float]:
        """(dα, seconds of one call after compilation, compiled peak memory in MB); `args` are
        (params, batch_stats, α, inner state, train batches, val batch, ξ), `forward` the α step's
        apply options (`step.step_inputs`)."""
        options = spec.kwargs
        # darts_fd's ε scale is an argument, so one compile serves the whole ε sweep.
        runtime = {k: jnp.asarray(options.pop(k), jnp.float64 if self.config.float64 else jnp.float32)
                   for k in ("eps_scale",) if k in options}
        args = (*args, {"forward": forward or {}, "runtime": runtime})
        key = (spec.name, tuple(sorted(options.items())), tuple(np.shape(x) for x in jax.tree.leaves(args)))
        if key not in self.compiled:
            self._release()
            self.compiled[key] = self._fn(spec.name, options).lower(*args).compile()
        fn = self.compiled[key]
        if not self.on_cpu:
            # An accelerator's first call still loads and autotunes. On a CPU it runs as fast as the
            # next one, and a float64 implicit estimator at batch 64 takes minutes a call there.
            jax.block_until_ready(fn(*args))
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
        search_dir, s_config = os.path.join(workdir, "search"), search_config.resolve(config.search)
        s_config.compilation_cache = config.compilation_cache
        logging.info("running the search trajectory into %s", search_dir)
        searched = search_loop.run(s_config, search_dir)
        if searched.get("stopped"):
            return searched
    dtype = jnp.float64 if config.float64 else jnp.float32

    config_lib.check_batch_sizes(config, s_config)  # a search_workdir's own config may differ from config.search
    trajectory = _trajectory(s_config, search_dir)
    if config.float64:
        jax.config.update("jax_enable_x64", True)
    space, data, setup, steps = trajectory.space, trajectory.data, trajectory.setup, trajectory.steps
    specs, reference = config_lib.estimator_specs(config), config_lib.reference_spec(config)
    names = [spec.label for spec in specs]
    estimators = _Estimators(config, space.supernet(data.num_classes), setup.schedule, s_config.momentum,
                             s_config.weight_decay, trajectory.task)
    k_max = max(spec.train_batches for spec in [*specs, reference])
    total = data.steps_per_epoch * s_config.epochs
    batch_sizes = [int(b) for b in config_lib.floats(config, "batch_sizes")] or [s_config.batch_size]
    csv_path = os.path.join(workdir, "study.csv")
    rows = _read_rows(csv_path, s_config.batch_size)
    done = {(r["step"], r["batch_size"]) for r in rows}
    new_file = not os.path.exists(csv_path) or os.path.getsize(csv_path) == 0  # a run killed before its first row
    # SIGTERM / Ctrl-C: finish the point, write the summary of what is done, exit (a rerun continues).
    with StopSignal() as stop, open(csv_path, "a", newline="") as f:
        stop.step_done()
        out = csv.DictWriter(f, CSV_FIELDS)
        if new_file:
            out.writeheader()
            f.flush()
        points = config_lib.floats(config, "points")
        # Batch size by batch size: each size compiles every estimator anew, so a study cut short
        # has every point at the sizes it finished.
        chosen = study_steps(sorted({0, *steps}) if points else steps, total, points)
        for b in batch_sizes:
            for step in [s for s in chosen if (s, b) not in done]:
                cosines = {}
                point = trajectory.point(step, b, k_max, dtype)
                for row in _evaluate_step(specs, reference, estimators, setup, space, point):
                    out.writerow({**row, "step": step, "batch_size": b})
                    rows.append({**row, "step": step, "batch_size": b})
                    if row["metric"] == "cosine" and not row["estimator"].startswith("mixed_"):
                        cosines[row["estimator"]] = row["value"]
                f.flush()
                logging.info("study step %d (%.0f %% of the search), batch %d, cosine to %s: %s", step,
                             100 * step / total, b, reference.label,
                             ", ".join(f"{n} {c:.4f}" for n, c in cosines.items()))
                if stop.requested:
                    break
            if stop.requested:
                logging.warning("%s received: study stopped; %s keeps every point done, rerun the same command to "
                                "continue", stop.requested, csv_path)
                break
    summary = summarize(rows, names, METRICS)
    mixed_names = ["mixed_exact"] + [f"mixed_fd_eps{r:g}" for r in estimators.eps_scales]
    summary.update(summarize(rows, mixed_names, MIXED_METRICS))
    write_summary(summary, names, mixed_names, reference.label, os.path.join(workdir, "summary.md"))
    plot_study(rows, specs, reference.label, estimators.eps_scales, workdir)
    return {"stopped": stop.requested} if stop.requested else summary


@dataclasses.dataclass(frozen=True)
class _Point:
    """One study point: the search state, the batches its step uses (with the task's carried state
    attached), the study's precision, and the α step's apply options (a language model's dropout rngs)."""

    state: Any
    train: tuple
    val: Any
    dtype: Any
    forward: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Trajectory:
    """The studied search: its space and task, data streams, setup (schedule, optimizers, the
    strategy's per-step inputs) and checkpoints; `point` rebuilds what its step at a checkpoint reads."""

    config: ml_collections.ConfigDict  # the search's
    space: Any
    task: Any
    data: Any
    setup: Any
    ckpt: Checkpointer
    target: Any  # the initial state, in the search's precision (the checkpoints' dtypes)
    steps: list[int]  # the checkpointed steps

    def point(self, step: int, batch_size: int, k_max: int, dtype: Any) -> _Point:
        """The state before `step` and the inputs of its α step: `k_max` train batches and the val
        batch at `batch_size`, hidden state attached and dropout rngs drawn as the search step does
        (`step.step_inputs`), so every estimator sees the losses the search differentiated."""
        # Step 0 is the initial state, which the search's seed determines (no checkpoint is saved there).
        state = self.target if step == 0 and step not in self.steps else self.ckpt.restore(step, self.target)[0]
        epoch, s = divmod(step, self.data.steps_per_epoch)
        train_data, val_data = self.data.train, self.data.val
        if batch_size != self.config.batch_size:  # (a task with a carried state is studied at the search's only)
            train_data, val_data = (dataclasses.replace(d, batch_size=batch_size) for d in (train_data, val_data))
        train = tuple(train_data.batch(epoch, s + i) for i in range(k_max))
        forward, _, train, val = step_inputs(self.task, state, train, val_data.batch(epoch, s), self.setup.forward)
        return _Point(state, _cast(train, dtype), _cast(val, dtype), dtype, _cast(forward, dtype))


def _trajectory(s_config: ml_collections.ConfigDict, search_dir: str) -> _Trajectory:
    """The search `s_config` whose checkpoints are in `search_dir`, set up as the search loop sets it
    up (its task's data, `search_setup` on one device)."""
    space, strategy = search_config.space_and_strategy(s_config)
    task = get_task(s_config.task)
    data = task.search_data(s_config)
    setup = search_loop.search_setup(s_config, space, strategy, data.num_classes, getattr(data, "image_shape", None),
                                     data.steps_per_epoch, axis_name=None, task=task)
    target = setup.init()  # in the search's own precision: the checkpoints' dtypes (and checksums) match it
    ckpt = Checkpointer(os.path.join(search_dir, "checkpoints"), keep=10**6)
    steps = ckpt.steps()
    if not steps:
        raise ConfigError(f"no checkpoints to study in {search_dir}; set search.checkpoint_every_steps")
    return _Trajectory(s_config, space, task, data, setup, ckpt, target, steps)


def _evaluate_step(specs, reference, estimators: _Estimators, setup, space, point: _Point) -> list[dict]:
    """Rows {estimator, metric, value} of every estimator at one point, against the reference."""
    state, train, val, dtype, forward = point.state, point.train, point.val, point.dtype, point.forward
    params, stats, alphas = _cast(state.params, dtype), _cast(state.batch_stats, dtype), _cast(state.alphas, dtype)
    inner_state = _cast(state.inner_opt_state, dtype)
    a_state = _cast(state.alpha_opt_state, dtype)
    xi = jnp.asarray(setup.schedule(state.step - state.nonfinite_steps), dtype)

    def evaluate(spec):
        return estimators(spec, params, stats, alphas, inner_state, train[:spec.train_batches], val, xi,
                          forward=forward)

    def mixed_part(spec, d_alpha):
        """The estimate minus its first-order part: what it says the second-order term is."""
        first = estimators.first_order_part(params, stats, alphas, inner_state, (train[:spec.weight_steps], val),
                                            forward)
        return jax.tree.map(jnp.subtract, d_alpha, first)

    def genotype_after(d_alpha):
        updates, _ = setup.alpha_opt.update(d_alpha, a_state, alphas)
        return space.derive(jax.device_get(optax.apply_updates(alphas, updates)))

    ref, _, _ = evaluate(reference)
    ref_genotype, ref_mixed = genotype_after(ref), mixed_part(reference, ref)
    rows = []
    for spec in specs:
        name = spec.label
        d_alpha, seconds, peak = evaluate(spec)
        mixed = {f"mixed_{k}": v for k, v in compare(mixed_part(spec, d_alpha), ref_mixed).items()}
        arch = genotype_after(d_alpha)
        values = {**compare(d_alpha, ref), **mixed, "genotype_agrees": float(arch == ref_genotype),
                  "seconds": seconds, "peak_memory_mb": peak}
        rows += [{"estimator": name, "metric": m, "value": values[m]} for m in METRICS]
        # What the space knows of the derived cell (NB201: its benchmark test accuracy).
        rows += [{"estimator": name, "metric": m, "value": v} for m, v in space.arch_metrics(arch).items()]
    # The second-order term alone: DARTS's difference quotient at each ε scale against the exact jvp.
    exact, fds = estimators.mixed(params, stats, alphas, inner_state, (train[0], val), forward)
    rows.append({"estimator": "mixed_exact", "metric": "norm", "value": float(np.linalg.norm(_flat(exact)))})
    for r, fd in zip(estimators.eps_scales, fds):
        values = {**compare(fd, exact), "norm": float(np.linalg.norm(_flat(fd)))}
        rows += [{"estimator": f"mixed_fd_eps{r:g}", "metric": m, "value": values[m]} for m in MIXED_METRICS]
    return rows


def summarize(rows: list[dict], names: list[str], metrics: tuple[str, ...] = METRICS) -> dict:
    """{estimator: {metric: (median, q25, q75)}} over the studied steps and batch sizes."""
    out = {}
    for name in names:
        out[name] = {}
        for metric in metrics:
            v = np.array([r["value"] for r in rows if r["estimator"] == name and r["metric"] == metric])
            v = v[np.isfinite(v)]  # the first-order estimate has no mixed term to compare
            if len(v):
                out[name][metric] = tuple(float(x) for x in np.percentile(v, [50, 25, 75]))
    return out


def _table(summary: dict, names: list[str], metrics: tuple[str, ...]) -> list[str]:
    lines = ["| estimator | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for name in names:
        cells = []
        for metric in metrics:
            m = summary[name].get(metric)
            cells.append(f"{m[0]:.4g} [{m[1]:.3g}, {m[2]:.3g}]" if m else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_summary(summary: dict, names: list[str], mixed_names: list[str], reference: str, path: str) -> None:
    lines = [f"Hypergradient estimators against `{reference}`: median [25th, 75th percentile] over the studied "
             "steps and batch sizes. `mixed_*`: the estimate minus its first-order part, against the reference's.",
             "", *_table(summary, names, METRICS), "",
             "The second-order term alone, DARTS's central difference at each ε scale against the exact jvp:", "",
             *_table(summary, mixed_names, MIXED_METRICS)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot_study(rows: list[dict], specs: list, reference: str, mixed_eps: tuple[float, ...], workdir: str) -> None:
    """cosine over the search, cost against fidelity, and cosine against darts_fd's ε."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(name, metric):
        """(steps, the median over batch sizes at each step)."""
        by_step: dict[int, list[float]] = {}
        for r in rows:
            if r["estimator"] == name and r["metric"] == metric:
                by_step.setdefault(r["step"], []).append(r["value"])
        steps = sorted(by_step)
        return steps, [float(np.median(by_step[s])) for s in steps]

    names = [spec.label for spec in specs]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in names:
        ax.plot(*series(name, "cosine"), marker="o", ms=3, label=name)
    ax.set(xlabel="search step", ylabel=f"cosine to {reference}", title="hypergradient fidelity over the search")
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

    eps = [(spec.kwargs["eps_scale"], spec.label) for spec in specs if spec.name == "darts_fd"]
    fig, ax = plt.subplots(figsize=(6, 4))
    if eps:
        eps.sort()
        ax.plot([e for e, _ in eps], [np.median(series(n, "cosine")[1]) for _, n in eps], marker="o",
                label="whole hypergradient (darts_fd)")
    scales = sorted(mixed_eps)
    if scales:
        ax.plot(scales, [np.median(series(f"mixed_fd_eps{r:g}", "cosine")[1]) for r in scales], marker="s",
                label="second-order term alone")
    ax.set(xscale="log", xlabel="ε scale (ε = scale / ‖∇w' L_val‖)", ylabel="cosine to exact (median)",
           title="finite-difference step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "cosine_vs_eps.png"), dpi=110)
    plt.close(fig)


def closing_lines(config: ml_collections.ConfigDict, workdir: str, summary: dict) -> list[str]:
    """What a finished study ends with: the closest estimator, where its outputs are, what to run next."""
    reference = config_lib.reference_spec(config).label
    names = [name for name in summary if not name.startswith("mixed_")]  # mixed_*: the second-order term alone
    ranked = sorted(((summary[name]["cosine"][0], name) for name in names
                     if name != reference and np.isfinite(summary[name]["cosine"][0])), reverse=True)
    best = f"; closest to {reference}: {ranked[0][1]} (median cosine {ranked[0][0]:.4f})" if ranked else ""
    return [f"study done: {len(names)} estimators{best}",
            f"outputs in {workdir}: summary.md, study.csv, and the plots",
            "next: more points or batch sizes: rerun with --config.points=... or --config.batch_sizes=... "
            "(study.csv is continued)"]

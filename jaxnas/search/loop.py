"""The search run: config → data → state → step → epochs → outputs. It owns every side effect
(files, logs, checkpoints, signals); the step it drives is pure.

Each global step's batches are a function of (seed, step), and the checkpoint holds the whole state
plus the epoch's running sums, so a run resumed from any checkpoint (after SIGKILL, SIGTERM or a
damaged newest checkpoint) writes the same α, genotypes and metrics as one that never stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxnas import viz
from jaxnas.compilation import FAST_COMPILE, enable_compilation_cache
from jaxnas.driver import EpochEnd, RunHooks, drive
from jaxnas.errors import ConfigError
from jaxnas.nn.precision import COMPUTE_DTYPES, ComputeDtype, MatmulPrecision
from jaxnas.parallel import (
    DATA_AXIS,
    data_mesh,
    data_parallel,
    data_parallel_sum,
    host_batch,
    on_host_cpu,
    replicate,
)
from jaxnas.preflight import log_preflight
from jaxnas.runs import (
    StopSignal,
    check_workdir,
    open_workdir,
    skipped_note,
)
from jaxnas.search import config as config_lib
from jaxnas.search import hypergrad
from jaxnas.search.state import cosine_lr, search_optimizers
from jaxnas.search.step import StepOptions, init_state, make_search_step
from jaxnas.search.strategies import make_sampled_step
from jaxnas.search.strategies.base import DeriveContext
from jaxnas.spaces import cost as cost_lib
from jaxnas.spaces.base import arch_metric_names
from jaxnas.tasks import get_task
from jaxnas.tasks.image import ImageClassification, SearchData, search_data  # noqa: F401  (their old home)
from jaxnas.writers import read_metrics

# Keys that only change how a run is watched or stored, not what it computes: a resumed run may
# change them. Any other difference from the workdir's saved config is an error.
RUNTIME_KEYS = ("data_dir", "log_every_steps", "checkpoint_every_steps", "keep_checkpoints", "compilation_cache",
                "plots", "max_nonfinite_steps", "eval_batch_size")
def step_metrics(task, strategy) -> tuple[str, ...]:
    """The per-step metrics summed over an epoch: the loss, the task's (images: train_acc), the α
    step's, then the strategy's own."""
    return ("train_loss", *task.step_metrics, "val_loss", "hypergrad_norm", *strategy.step_metrics)
SCORE_CHUNK = 8  # candidate architectures scored per call (one compile for any number of them)


def _softmax(alphas: dict) -> dict:
    return {k: np.asarray(jax.nn.softmax(jnp.asarray(v), axis=-1)) for k, v in alphas.items()}


def alpha_entropy(alphas: dict) -> float:
    """Mean entropy (nats) of softmax(α) over all edges: log(#ops) at the start, 0 when decided.
    Only the op choices count (2-d entries), not PC-DARTS's per-edge β."""
    ents = [-(p * np.log(np.maximum(p, 1e-30))).sum(-1) for p in _softmax(alphas).values() if p.ndim >= 2]
    return float(np.mean(np.concatenate([e.ravel() for e in ents])))


@dataclasses.dataclass(frozen=True)
class SearchSetup:
    net: Any  # the supernet, with BN statistics synchronised over DATA_AXIS
    step: Any  # the search step, for one device's shard
    init: Any  # () -> the initial SearchState (jitted for the stacked-layout DARTS supernets)
    schedule: Any
    weight_opt: Any
    alpha_opt: Any
    costs: Any = None  # the cost tables of a resource-aware search (cost_weight > 0), else None
    forward: Any = None  # the strategy's per-step supernet inputs (`Strategy.forward_options`), or None
    strategy: Any = None  # the strategy object the step was built for


def _weighted_cost(weight, costs, alphas):
    return weight * cost_lib.expected_cost(alphas, costs)


def search_setup(config: ml_collections.ConfigDict, space, strategy, num_classes: int, image_shape: tuple | None,
                 steps_per_epoch: int, axis_name=DATA_AXIS, task=None) -> SearchSetup:
    """The supernet, the search step and the initial state the config describes, for `space` and
    `strategy` (`config_lib.space_and_strategy`) learning `task` (default: image classification),
    with `num_classes` outputs, on images of `image_shape` (None for other inputs); the schedules
    count `steps_per_epoch` steps per epoch."""
    task = task or ImageClassification()
    schedule = cosine_lr(config.lr, config.lr_min, config.epochs, steps_per_epoch)
    net = space.supernet(num_classes, axis_name=axis_name)
    if config.compute_dtype != "float32":
        net = ComputeDtype(net, COMPUTE_DTYPES[config.compute_dtype])
    net = MatmulPrecision(net, config.matmul_precision)
    costs = penalty = None
    if config.cost_weight > 0:
        costs = cost_lib.space_costs(space, image_shape, config.cost_metric)
        penalty = functools.partial(_weighted_cost, config.cost_weight, costs)
    forward = strategy.forward_options(config, steps_per_epoch)
    own_step = strategy.make_step(config, space, net, schedule, axis_name, image_shape, task)
    if own_step is not None:
        step_fn, w_opt, a_opt = own_step
    else:
        optimizers = search_optimizers(config, schedule)
        estimate = hypergrad.get_estimator(config.estimator.name, **config_lib.estimator_options(config))
        step_fn = make_search_step(net, estimate, optimizers, StepOptions(
            axis_name=axis_name, alpha_penalty=penalty, forward_options=forward,
            alpha_warmup_steps=config.alpha_warmup_epochs * steps_per_epoch, task=task))
        w_opt, a_opt = optimizers.weight, optimizers.alpha

    def init_fn():
        alpha_rng, weight_rng = jax.random.split(jax.random.key(config.seed))
        return init_state(space.supernet(num_classes), strategy.init_alphas(config, space, alpha_rng),
                          task.sample_inputs(config, image_shape), weight_rng, w_opt, a_opt,
                          net_alphas=space.init_alphas(alpha_rng), carry=task.init_carry(config))

    # Initialisation runs once: compiled without XLA's optimisation passes where the space says it is
    # worth it (the DARTS supernets' stacked layouts), else run eagerly (`SearchSpace.compiled_init`).
    init = jax.jit(init_fn, compiler_options=FAST_COMPILE) if space.compiled_init else init_fn
    if jax.default_backend() != "cpu":  # see `on_host_cpu`; the same threefry bits on every backend
        init = on_host_cpu(init)
    return SearchSetup(net, step_fn, init, schedule, w_opt, a_opt, costs, forward, strategy)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Run (or resume, or just report) the search `config` in `workdir`; returns the last epoch record
    (plus `stopped` when a signal ended it early)."""
    pid, pcount = jax.process_index(), jax.process_count()
    devices = jax.device_count()
    # Everything cheap is checked before data is read or anything compiles.
    log_preflight(config.compute_dtype)
    config_lib.validate(config, devices, pcount)
    config = config_lib.resolve(config)  # the blocks complete: what config.json records
    space, strategy = config_lib.space_and_strategy(config)  # the names resolved once, passed down from here
    try:
        if config.cost_weight > 0 and config.cost_metric not in cost_lib.METRICS:
            cost_lib.read_latency_table(config.cost_metric, next(iter(space.op_names().values())))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    task = get_task(config.task)
    task.check_data(config)
    workdir = os.path.abspath(os.path.expanduser(workdir))
    check_workdir(workdir, config, RUNTIME_KEYS, defaults=config_lib.get_config(),
                  upgrade=config_lib.upgrade_flat_keys)
    enable_compilation_cache(config.compilation_cache)
    with StopSignal() as stop:
        data = task.search_data(config, pid, pcount)  # before the workdir exists: a failed start leaves nothing
        with open_workdir(workdir, config, RUNTIME_KEYS, config_lib.get_config(), pid, writer=pid == 0,
                          upgrade=config_lib.upgrade_flat_keys):
            return _search(config, workdir, (space, strategy, task), data, stop)


def _search(config: ml_collections.ConfigDict, workdir: str, resolved: tuple, data, stop: StopSignal) -> dict[str, Any]:
    """The search in a locked workdir holding this config, from its newest checkpoint or the start;
    `resolved` is the config's (space, strategy, task)."""
    space, strategy, task = resolved
    pid, pcount = jax.process_index(), jax.process_count()
    devices = jax.device_count()
    if pid == 0:
        for sub in ("genotypes", "alphas"):
            os.makedirs(os.path.join(workdir, sub), exist_ok=True)
    logging.info("search %s/%s/%s on %s: %d device(s) (%s), %d process(es); workdir %s", config.space,
                 config.strategy.name, config.estimator.name, config.dataset, devices, jax.devices()[0].platform,
                 pcount, workdir)

    spe, k = data.steps_per_epoch, config_lib.train_batches_per_step(config)
    setup = search_setup(config, space, strategy, data.num_classes, getattr(data, "image_shape", None),
                         data.steps_per_epoch, task=task)
    mesh = data_mesh()
    train_step = data_parallel(setup.step, mesh)
    context = _derive_context(config, setup, mesh, data, task) if strategy.needs_derive_context else None
    run = SearchRun(config, space, strategy, workdir, task.evaluator(setup.net, mesh, strategy.eval_train_mode),
                    context, data, mesh, setup.costs, task)

    def step(state, global_step):
        epoch, s = divmod(global_step, spe)
        train_batches = tuple(host_batch(data.train.batch(epoch, s + i), mesh) for i in range(k))
        return train_step(state, train_batches, host_batch(data.val.batch(epoch, s), mesh))

    def start(state):  # the starting point of the α plot
        np.savez(os.path.join(workdir, "alphas", "epoch_000.npz"), **strategy.alpha_view(config, space, state.alphas))

    hooks = RunHooks("search", step_metrics(task, strategy), "lr or alpha_lr", setup.init, step,
                     functools.partial(_end_epoch, run), start, task.throughput(config))
    driven = drive(hooks, config, workdir, spe, mesh, stop)
    if driven.stopped:
        return {"stopped": driven.stopped, "step": driven.step}
    _write_final(config, space, strategy, workdir, driven.state, pid == 0)
    return driven.last or {"step": driven.step}


@dataclasses.dataclass(frozen=True)
class SearchRun:
    """What every epoch end of one search uses."""

    config: ml_collections.ConfigDict
    space: Any
    strategy: Any
    workdir: str
    evaluate: Any  # (state, α of the net, data) -> the task's search-val metrics (`Task.evaluator`)
    context: Any  # the strategy's DeriveContext, or None
    data: Any  # the task's search data
    mesh: Any
    costs: Any = None  # the cost tables of a resource-aware search, else None
    task: Any = None  # what is learned (`jaxnas.tasks`)


def _derive_context(config, setup: SearchSetup, mesh, data, task=None):
    """Scoring of candidate architectures (or any α) on the task's scoring batch (images: the first
    search-val batch, by accuracy; BN as the strategy's `eval_train_mode`), and short training of
    one architecture from the initial weights (PNAS's scratch evaluator): built for every strategy
    that `needs_derive_context`."""
    task = task or ImageClassification()
    net, train_data = setup.net, data.train
    train_mode = setup.strategy.eval_train_mode
    batch = host_batch(task.score_batch(data), mesh)

    def score_totals(state_and_paths, *batch):
        state, paths = state_and_paths
        variables = {"params": state.params, "batch_stats": state.batch_stats}
        totals = jax.lax.map(lambda path: jnp.stack(task.score(net, variables, path, batch, train_mode)), paths)
        return jax.lax.psum(totals, DATA_AXIS)  # (paths, 2): each path's summed score and count

    score_chunk = data_parallel_sum(score_totals, mesh)

    def score(state, paths):
        paths = {k: np.asarray(v) for k, v in paths.items()}
        n = len(next(iter(paths.values())))
        pad = -n % SCORE_CHUNK
        paths = {k: np.concatenate([v, np.repeat(v[:1], pad, 0)]) for k, v in paths.items()}
        out = []
        for i in range(0, n + pad, SCORE_CHUNK):
            totals = np.asarray(jax.device_get(score_chunk((state, {k: v[i:i + SCORE_CHUNK] for k, v in paths.items()}),
                                                           *batch)))
            out.append(totals[:, 0] / totals[:, 1])
        return np.concatenate(out)[:n]

    fresh_step = initial = None

    def train_fresh(path, steps):
        nonlocal fresh_step, initial
        if fresh_step is None:
            initial = setup.init()
            optimizers = search_optimizers(config, lambda count: config.lr)
            step_fn = make_sampled_step(net, optimizers, lambda alphas, key: alphas, None, DATA_AXIS, task)
            fresh_step = data_parallel(step_fn, mesh)
        state = replicate(initial.replace(alphas=path, alpha_opt_state=setup.alpha_opt.init(path)), mesh)
        for s in range(steps):  # the first batches of search-train, the same for every candidate
            batch = host_batch(train_data.batch(*divmod(s, train_data.steps_per_epoch)), mesh)
            state, _ = fresh_step(state, (batch,), batch)  # the second batch feeds only a logged metric
        return state

    return DeriveContext(score, train_fresh)


def _end_epoch(run: SearchRun, end: EpochEnd) -> dict:
    """Derive the genotype, evaluate it (gradient strategies: the supernet) on search-val, write this
    epoch's record, α and plots."""
    config, space, strategy, workdir = run.config, run.space, run.strategy, run.workdir
    state, epoch, sums, seconds = end.state, end.epoch, end.sums, end.seconds
    alphas = strategy.alpha_view(config, space, state.alphas)
    arch, info = strategy.derive(config, space, state, run.context, epoch)
    net_alphas = strategy.eval_alphas(space, state, arch)
    pid = jax.process_index()
    means = sums.means()
    arch_metrics = space.arch_metrics(arch)  # e.g. NB201's benchmark accuracy of the derived cell
    record = {"epoch": epoch, "step": end.step, **run.task.epoch_metrics(means),
              **run.evaluate(state, net_alphas, run.data),
              "alpha_step_val_loss": means["val_loss"], "hypergrad_norm": means["hypergrad_norm"],
              "lr": float(cosine_lr(config.lr, config.lr_min, config.epochs, 1)(epoch - 1)),
              "alpha_entropy": alpha_entropy(alphas), "nonfinite_steps": sums.steps - sums.finite_steps,
              "seconds": seconds, "devices": jax.device_count(), "genotype": space.arch_to_dict(arch),
              **{k: means[k] for k in strategy.step_metrics}, **info, **arch_metrics}
    if run.costs is not None:  # what the penalty trades: the relaxed cost and the derived cell's
        record["expected_cost"] = float(cost_lib.expected_cost(alphas, run.costs))
        record["derived_cost"] = cost_lib.arch_cost(space, arch, run.costs)
    record = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in record.items()}
    logging.info("epoch %d/%d: %s | α entropy %.3f | %.1f s%s", epoch, config.epochs, run.task.progress(record),
                 record["alpha_entropy"], seconds, skipped_note(sums))
    if pid != 0:
        return record
    with open(os.path.join(workdir, "genotypes", f"epoch_{epoch:03d}.json"), "w") as f:
        json.dump(space.arch_to_dict(arch), f, indent=1)
    np.savez(os.path.join(workdir, "alphas", f"epoch_{epoch:03d}.npz"), **alphas)
    end.writer.write(record, end.step)
    if config.plots:
        space.plot(arch, os.path.join(workdir, "cells.png"), f"epoch {epoch}")
        history, epochs = [], []
        for e in range(0, epoch + 1):
            path = os.path.join(workdir, "alphas", f"epoch_{e:03d}.npz")
            if os.path.exists(path):
                with np.load(path) as z:
                    history.append(_softmax(dict(z)))
                epochs.append(e)
        viz.plot_alpha_history(history, space.op_names(), os.path.join(workdir, "alphas.png"), epochs,
                               space.edge_names())
        if arch_metrics:
            viz.plot_metric_history(read_metrics(end.writer.path), list(arch_metrics),
                                    os.path.join(workdir, "arch_metrics.png"), space.arch_metric_references())
    return record


def _write_final(config, space, strategy, workdir: str, state, enabled: bool) -> None:
    """alphas.npz (the final α view) and genotype.json: the last epoch's derivation (for a sampling
    strategy, candidates scored with the final weights)."""
    alphas = strategy.alpha_view(config, space, state.alphas)
    if not enabled:
        return
    np.savez(os.path.join(workdir, "alphas.npz"), **alphas)
    with open(os.path.join(workdir, "genotypes", f"epoch_{config.epochs:03d}.json")) as f:
        arch_dict = json.load(f)
    with open(os.path.join(workdir, "genotype.json"), "w") as f:
        json.dump(arch_dict, f, indent=1)


def closing_lines(config: ml_collections.ConfigDict, workdir: str, result: dict) -> list[str]:
    """What a finished search ends with: its result, where its outputs are, what to run next."""
    last = read_metrics(os.path.join(workdir, "metrics.jsonl"))[-1]
    space, _ = config_lib.space_and_strategy(config)
    known = "".join(f", {k} {last[k]:.2f}" for k in arch_metric_names(space) if last.get(k) is not None)
    return [f"search done: {get_task(config.task).headline(last)} after epoch {last['epoch']}{known}; genotype in "
            f"{os.path.join(workdir, 'genotype.json')}",
            f"outputs in {workdir}: genotype.json, metrics.jsonl, cells.png, alphas.png, tensorboard/",
            f"next: {space.follow_up(workdir)}"]

"""The one epoch/step driver of every long run (search, train): restore or initialise the state,
run global steps until the last epoch ends, and around each step do what a run does the same
way whatever it trains: time the first step (and from then on let a signal mean "finish this
step, save, exit"), sum the per-step metrics of the epoch (`EpochSums`; a run of non-finite
steps raises `NonFiniteError`), report progress every `log_every_steps`, end each epoch (the
run's own hook writes its record) and checkpoint after it and every `checkpoint_every_steps`
(a full disk becomes `DiskFullError`), and stop on a signal or a preemption notice.

What differs between runs is a `RunHooks`: the step for global step `s`, the end-of-epoch record
and the names its log lines and messages use. The step is a function of (state, s) only, and the
checkpoint holds the state plus the epoch's running sums, so a run resumed from any checkpoint
computes what one that never stopped does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
from absl import logging

from jaxnas.checkpoint import Checkpointer
from jaxnas.parallel import replicate, replicated_shapes
from jaxnas.runs import EpochSums, NonFiniteError, StopSignal, keep_old_metrics, nonfinite_message, save_checkpoint
from jaxnas.writers import MetricsWriter, Progress, json_safe, read_metrics


@dataclasses.dataclass(frozen=True)
class EpochEnd:
    """What an epoch's end hands the run: the state after its last step and the epoch's sums."""

    state: Any
    epoch: int  # 1-based: the epoch that just ended
    step: int  # global steps done
    sums: EpochSums
    seconds: float
    writer: MetricsWriter  # metrics.jsonl / TensorBoard (disabled on processes other than 0)


@dataclasses.dataclass(frozen=True)
class RunHooks:
    """What one kind of run (search, train) brings to `drive`."""

    name: str  # what the log lines call its step: "search", "training"
    metrics: tuple[str, ...]  # the per-step metrics summed over an epoch (each step also returns `finite`)
    knobs: str  # what to lower when it diverges, e.g. "lr or alpha_lr"
    init: Callable[[], Any]  # () -> the initial state (on the host; `drive` replicates it)
    step: Callable[[Any, int], tuple[Any, dict]]  # (state, global step s) -> (state after step s, its metrics)
    end_epoch: Callable[[EpochEnd], dict]  # writes the epoch's outputs; returns its record
    start: Callable[[Any], None] | None = None  # called on process 0 with the state of a run starting at step 0
    throughput: tuple[int, str] | None = None  # (what one step reads, its unit); None: (batch_size, "images")
    # (state, every epoch record so far) -> the state the next epoch starts from, before the epoch's
    # checkpoint: a decision taken between epochs (NT-ASGD's switch) is part of the saved state.
    after_epoch: Callable[[Any, list[dict]], Any] | None = None


@dataclasses.dataclass(frozen=True)
class Driven:
    """Where `drive` left the run."""

    state: Any
    step: int
    last: dict | None  # the record of the last epoch this call ended (None: the run was already complete)
    stopped: str | None = None  # the signal (or "preemption") that stopped it early


def drive(hooks: RunHooks, config: ml_collections.ConfigDict, workdir: str, steps_per_epoch: int, mesh,
          stop: StopSignal) -> Driven:
    """Run `config.epochs` epochs of `steps_per_epoch` steps in `workdir`, from its newest checkpoint
    or the start. The checkpoints and the metrics writer are closed when it returns."""
    writer_enabled = jax.process_index() == 0
    spe, total = steps_per_epoch, steps_per_epoch * config.epochs
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints)
    state, record = ckpt.restore_or_init(hooks.init, lambda s: replicate(s, mesh),
                                         lambda: replicated_shapes(hooks.init, mesh))
    sums, history = EpochSums.empty(hooks.metrics), []  # history: every epoch record so far, kept in the checkpoints
    if record is not None:
        sums, history = EpochSums(**record["sums"]), record.get("epochs")
        logging.info("resumed from checkpoint at step %d (epoch %d, step %d of %d)", record["step"],
                     record["step"] // spe + 1, record["step"] % spe, spe)
    step = int(jax.device_get(state.step))
    if step == 0 and writer_enabled:
        keep_old_metrics(workdir)
    writer = MetricsWriter(workdir, enabled=writer_enabled)
    writer.keep_epochs_before(step // spe + 1, history)
    if history is None:  # a checkpoint saved before the records were kept in it: the file's are the history
        history = read_metrics(writer.path) if writer_enabled else []
    if step == 0 and writer_enabled and hooks.start is not None:
        hooks.start(state)
    per_step, unit = hooks.throughput or (config.batch_size, "images")
    progress = Progress(total, spe, config.epochs, per_step, enabled=writer_enabled, unit=unit)
    pending: list[dict] = []

    def flush() -> None:
        for m in jax.device_get(pending):
            sums.add(m)
            if sums.consecutive_nonfinite >= config.max_nonfinite_steps:
                raise NonFiniteError(nonfinite_message(sums.consecutive_nonfinite, step, ckpt.directory, ckpt.steps(),
                                                       hooks.knobs))
        if pending:
            progress.update(step, float(jax.device_get(pending[-1]["train_loss"])))
        pending.clear()

    def save() -> None:
        flush()
        save_checkpoint(ckpt, workdir, step, state, {"step": step, "sums": dataclasses.asdict(sums), "epochs": history},
                        healthy=sums.consecutive_nonfinite == 0)

    last = None
    t_epoch = time.perf_counter()
    first = True
    if step < total:
        logging.info("compiling the %s step (minutes on a CPU; cached for reruns)", hooks.name)
    while step < total:
        state, metrics = hooks.step(state, step)
        step += 1
        pending.append(metrics)
        if first:
            jax.block_until_ready(metrics)
            logging.info("first step done in %.1f s (compilation included)", time.perf_counter() - t_epoch)
            first = False
            stop.step_done()
            flush()
        elif step % config.log_every_steps == 0:
            flush()
        if step % spe == 0:
            flush()
            last = hooks.end_epoch(EpochEnd(state, step // spe, step, sums, time.perf_counter() - t_epoch, writer))
            history.append(json.loads(json.dumps(json_safe(last), allow_nan=False)))
            if hooks.after_epoch is not None:
                state = hooks.after_epoch(state, history)
            # A run of non-finite steps goes on across the epoch's end (`healthy`, max_nonfinite_steps).
            sums = dataclasses.replace(EpochSums.empty(hooks.metrics), consecutive_nonfinite=sums.consecutive_nonfinite)
            save()
            t_epoch = time.perf_counter()
        elif config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0:
            save()
        if stop.requested or ckpt.reached_preemption(step):
            save()
            stopped = stop.requested or "preemption"
            logging.warning("stopped at step %d of %d (%s); checkpoint saved; rerun the same command to resume",
                            step, total, stopped)
            writer.close()
            ckpt.close()
            return Driven(state, step, last, stopped)
    if last is None:
        logging.info("the run in %s is already complete (%d steps)", workdir, total)
    writer.close()
    ckpt.close()
    return Driven(state, step, last)

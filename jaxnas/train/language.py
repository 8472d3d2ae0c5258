"""Train a recurrent cell (or an LSTM of its size) as a language model from scratch, with DARTS's
recipe (Liu et al., ICLR 2019; the authors' `rnn/train.py`, which follows AWD-LSTM, Merity et al.,
ICLR 2018):

- windows of drawn length (around `bptt`, `task.length_sd`), the hidden state carried between them
  and reset at each epoch's start; SGD on NLL + TAR with the gradient clipped, the step scaled by
  the window's length over `bptt`;
- NT-ASGD: after each epoch, valid perplexity (batch `eval_batch_size`, no dropout); once it is
  worse than the best of all but the last `asgd_nonmono` epochs, the steps go on with the same SGD
  and the weights are also averaged (uniformly, from the switch on); evaluation then uses the
  average. The best evaluated weights are kept, and the test split (batch `test_batch_size`) is
  scored with them at the end.

Where the authors' code departs from this plain definition (docs/design.md, "NT-ASGD"): PyTorch's
ASGD there takes each step's length scaling one step late, and its average leaves out the first
iterate after the switch. jaxnas follows the definition.

Everything the rule needs lives in the checkpointed state (the average, the switch, the best
weights), so a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnas.compilation import FAST_COMPILE
from jaxnas.counting import count_params
from jaxnas.data.errors import DataError
from jaxnas.data.text import batchify, check_corpus, load_corpus
from jaxnas.driver import EpochEnd, RunHooks, drive
from jaxnas.nn.precision import MatmulPrecision
from jaxnas.nn.rnn import LstmNetwork, matching_lstm, rnn_network
from jaxnas.parallel import DATA_AXIS, cross_device_mean, data_mesh, data_parallel, host_batch
from jaxnas.runs import StopSignal, skipped_note
from jaxnas.search.step import all_finite, scale_updates
from jaxnas.spaces.resolve import resolve_kind
from jaxnas.tasks.language import LanguageModel, all_rows, eval_windows
from jaxnas.train.step import lr_schedule, optimizer
from jaxnas.vocabulary.darts_rnn import RecurrentGenotype
from jaxnas.writers import read_metrics

NETWORKS = ("cell", "lstm")  # the genotype's cell, or two LSTM layers with as many weights
STEP_METRICS = ("train_loss", "train_nll")


class LmTrainState(flax.struct.PyTreeNode):
    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    nonfinite_steps: jax.Array
    hidden: jax.Array  # (batch, state size): the train stream's hidden state, whole on every device
    average: Any  # the averaged weights (equal to params until the switch)
    averaged_steps: jax.Array  # steps averaged so far
    averaging: jax.Array  # bool: NT-ASGD has switched
    best: Any  # the weights with the lowest valid loss so far (the average once averaging)
    best_val: jax.Array


def resolve_cell(spec: str) -> RecurrentGenotype:
    """A recurrent constant (DARTS_V1, DARTS_V2, ENAS), a genotype.json or a darts_rnn search workdir."""
    return resolve_kind(spec, RecurrentGenotype, "a recurrent cell; a language model trains one (DARTS_V1, "
                        "DARTS_V2, ENAS, a genotype.json or a darts_rnn search workdir)", recurrent=True)


def build_network(config: ml_collections.ConfigDict, task: LanguageModel, cell: RecurrentGenotype, vocab: int,
                  axis_name: str | None = None):
    """The cell's network, or (`network="lstm"`) the LSTM whose weights outside the embedding and
    decoder bias are as many as the cell's."""
    dropouts = task.network_options()
    net = rnn_network(cell, vocab, config.channels, axis_name=axis_name, **dropouts)
    if config.network == "cell":
        return net
    shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), *_sample(config.channels, task.bptt)))
    cell_weights = count_params(shapes["params"]) - vocab * config.channels - vocab
    return LstmNetwork(vocab_size=vocab, dim=config.channels, hidden=matching_lstm(config.channels, cell_weights),
                       axis_name=axis_name, **dropouts)


def _sample(state_size: int, bptt: int) -> tuple:
    return jnp.zeros((bptt, 2), jnp.int32), jnp.zeros((2, state_size), jnp.float32)


@dataclasses.dataclass(frozen=True)
class LmTrainData:
    windows: Any  # tasks.language.Windows over train, this process's columns
    valid: np.ndarray  # (T, eval_batch_size)
    test: np.ndarray  # (T, test_batch_size)
    vocab: int

    @property
    def steps_per_epoch(self) -> int:
        return self.windows.steps_per_epoch


def check(config: ml_collections.ConfigDict) -> RecurrentGenotype:
    """What a start checks before it touches the workdir: the cell and the data set."""
    cell = resolve_cell(config.genotype)
    check_corpus(config.dataset)
    return cell


def load(config: ml_collections.ConfigDict, task: LanguageModel, pid: int, pcount: int) -> LmTrainData:
    corpus = load_corpus(config.dataset, config.data_dir)
    windows = task.windows(batchify(corpus.train, config.batch_size), config.seed, 0, pid, pcount)
    if (len(windows.data) - 1) < task.bptt:
        raise DataError(f"the {config.dataset} train split at batch size {config.batch_size} is shorter than one "
                        f"window of {task.bptt} tokens")
    test_batch = config.test_batch_size or config.eval_batch_size
    return LmTrainData(windows, batchify(corpus.valid, config.eval_batch_size), batchify(corpus.test, test_batch),
                       corpus.vocab_size)


def init_state(net, rng: jax.Array, opt, batch_size: int) -> LmTrainState:
    init_rng, rng = jax.random.split(rng)
    params = net.init(init_rng, *_sample(net.state_size, 2))["params"]
    return LmTrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt.init(params), rng=rng,
                        nonfinite_steps=jnp.zeros((), jnp.int32),
                        hidden=jnp.zeros((batch_size, net.state_size), jnp.float32), average=params,
                        averaged_steps=jnp.zeros((), jnp.int32), averaging=jnp.zeros((), bool), best=params,
                        best_val=jnp.full((), jnp.inf, jnp.float32))


def make_train_step(net, task: LanguageModel, opt, axis_name: str | None = None):
    """step(state, (x, y, length, reset)) -> (state, {train_loss, train_nll, finite}): one window."""

    def step(state: LmTrainState, batch):
        rng, key = jax.random.split(state.rng)  # the same key on every device: masks are drawn per global batch
        x, y, length, reset, hidden = task.attach({"train": state.hidden}, batch, axis_name, "train")
        loss_fn = task.loss(net, {}, task.rngs(key), regularised=True)
        (loss, (aux, _)), g = jax.value_and_grad(
            lambda w: loss_fn(w, None, (x, y, length, reset, hidden)), has_aux=True)(state.params)
        loss, g = cross_device_mean(loss, axis_name), cross_device_mean(g, axis_name)
        updates, opt_state = opt.update(g, state.opt_state, state.params)
        params = optax.apply_updates(state.params, scale_updates(task, batch, updates))
        ok = jnp.isfinite(loss) & all_finite(g)
        live = length[0] > 0  # a window past the stream's end changes nothing
        averaged = state.averaging & live
        count = state.averaged_steps + averaged.astype(jnp.int32)
        average = jax.tree.map(
            lambda a, p: jnp.where(averaged, a + (p - a) / jnp.maximum(count, 1).astype(p.dtype),
                                   jnp.where(state.averaging, a, p)), state.average, params)
        new = state.replace(params=params, opt_state=opt_state, average=average, averaged_steps=count,
                            hidden=all_rows(aux["hidden"], axis_name).astype(state.hidden.dtype))
        new = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state)
        new = new.replace(step=state.step + 1, rng=rng, nonfinite_steps=state.nonfinite_steps + (~ok).astype(jnp.int32))
        return new, {"train_loss": loss, "train_nll": cross_device_mean(aux["nll"], axis_name), "finite": ok}

    return step


def make_evaluator(net, task: LanguageModel, state_size: int):
    """evaluate(params, stream (T, B)) -> mean NLL per token over the whole stream in `bptt` windows,
    hidden state carried, no dropout (the authors' `evaluate`); every device computes it whole."""

    @jax.jit
    def window(params, hidden, batch):
        return task.window_nll(net, {"params": params}, None, (*batch, hidden), False, with_hidden=True)

    def evaluate(params, stream: np.ndarray) -> float:
        windows = eval_windows(stream, task.bptt)
        hidden = jnp.zeros((stream.shape[1], state_size), jnp.float32)
        nll = count = 0.0
        for batch in windows:
            s, n, hidden = window(params, hidden, batch)
            nll, count = nll + float(s), count + float(n)
        return nll / count

    return evaluate


def should_switch(history: list[dict], nonmono: int) -> bool:
    """NT-ASGD's trigger after the last epoch of `history`: not yet averaging, and its valid loss
    worse than the best of the earlier epochs but the last `nonmono` (0: never)."""
    if nonmono <= 0 or not history or history[-1]["averaged"]:
        return False
    earlier = [r["val_loss"] for r in history[:-1]]
    return len(earlier) > nonmono and history[-1]["val_loss"] > min(earlier[:-nonmono])


def epoch_update(state: LmTrainState, val_loss: jax.Array, switch: jax.Array) -> LmTrainState:
    """Keep the evaluated weights if they are the best so far; switch to averaging if told."""
    evaluated = jax.tree.map(lambda a, p: jnp.where(state.averaging, a, p), state.average, state.params)
    better = val_loss < state.best_val
    best = jax.tree.map(lambda e, b: jnp.where(better, e, b), evaluated, state.best)
    return state.replace(best=best, best_val=jnp.where(better, val_loss, state.best_val),
                         averaging=state.averaging | switch)


def _ppl(loss: float) -> float:
    return math.exp(min(loss, 50.0))


def train(config: ml_collections.ConfigDict, workdir: str, task: LanguageModel, cell: RecurrentGenotype,
          data: LmTrainData, stop: StopSignal) -> dict[str, Any]:
    """The training in a locked workdir holding this config, from its newest checkpoint or the start."""
    pid, devices = jax.process_index(), jax.device_count()
    logging.info("train %s (%s) on %s: %d device(s) (%s), %d process(es); workdir %s", config.genotype,
                 config.network, config.dataset, devices, jax.devices()[0].platform, jax.process_count(), workdir)
    spe = data.steps_per_epoch
    schedule = lr_schedule(config.lr, config.lr_schedule, config.epochs, spe, config.lr_decay)
    opt = optimizer(schedule, config.momentum, config.weight_decay, config.clip_norm)
    plain = build_network(config, task, cell, data.vocab)
    net = MatmulPrecision(build_network(config, task, cell, data.vocab, axis_name=DATA_AXIS), config.matmul_precision)
    eval_net = MatmulPrecision(plain, config.matmul_precision)
    init = jax.jit(lambda: init_state(plain, jax.random.key(config.seed), opt, config.batch_size),
                   compiler_options=FAST_COMPILE)
    mesh = data_mesh()
    train_step = data_parallel(make_train_step(net, task, opt, DATA_AXIS), mesh)
    evaluate = make_evaluator(eval_net, task, plain.state_size)
    update = jax.jit(epoch_update, out_shardings=NamedSharding(mesh, P()))

    def step(state, global_step):
        epoch, s = divmod(global_step, spe)
        return train_step(state, host_batch(data.windows.batch(epoch, s), mesh))

    def end_epoch(end: EpochEnd) -> dict:
        averaged = bool(jax.device_get(end.state.averaging))
        val_loss = evaluate(end.state.average if averaged else end.state.params, data.valid)
        means = end.sums.means()
        record = {"epoch": end.epoch, "step": end.step, "train_loss": means["train_loss"],
                  "train_ppl": _ppl(means["train_nll"]), "val_loss": val_loss, "val_ppl": _ppl(val_loss),
                  "averaged": averaged, "lr": float(schedule(end.step - 1)),
                  "nonfinite_steps": end.sums.steps - end.sums.finite_steps, "seconds": end.seconds,
                  "devices": devices}
        record = {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in record.items()}
        logging.info("epoch %d/%d: train loss %.4f ppl %.2f | valid ppl %.2f%s | %.1f s%s", record["epoch"],
                     config.epochs, record["train_loss"], record["train_ppl"], record["val_ppl"],
                     " (averaged weights)" if averaged else "", record["seconds"], skipped_note(end.sums))
        end.writer.write(record, end.step)
        return record

    def after_epoch(state, history: list[dict]):
        switch = should_switch(history, config.asgd_nonmono)
        if switch:
            logging.info("valid loss %.4f is worse than the best before the last %d epochs: averaging the weights "
                         "from now on (NT-ASGD)", history[-1]["val_loss"], config.asgd_nonmono)
        return update(state, np.float32(history[-1]["val_loss"]), np.bool_(switch))

    hooks = RunHooks("training", STEP_METRICS, "lr", init, step, end_epoch, throughput=task.throughput(config),
                     after_epoch=after_epoch)
    driven = drive(hooks, config, workdir, spe, mesh, stop)
    if driven.stopped:
        return {"stopped": driven.stopped, "step": driven.step}
    state = driven.state
    best = jax.device_get(state.best)
    test_loss = evaluate(best, data.test)
    history = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    switched = [r["epoch"] for r in history if r.get("averaged")]
    best_val = float(jax.device_get(state.best_val))
    result = {"valid_ppl": _ppl(best_val), "valid_loss": best_val,
              "test_ppl": _ppl(test_loss), "test_loss": test_loss, "params": count_params(best),
              "network": config.network, "epochs": config.epochs, "steps": driven.step,
              "averaging_from_epoch": switched[0] if switched else None, "dataset": config.dataset,
              "genotype": cell.to_dict()}
    if config.network == "lstm":
        result["lstm_hidden"] = int(plain.hidden)
    if pid == 0:
        with open(os.path.join(workdir, "result.json"), "w") as f:
            json.dump(result, f, indent=1)
    logging.info("test perplexity %.2f (valid %.2f) | %s parameters", result["test_ppl"], result["valid_ppl"],
                 f"{result['params']:,}")
    return result


def closing_lines(workdir: str, result: dict) -> list[str]:
    return [f"training done: test perplexity {result['test_ppl']:.2f} (valid {result['valid_ppl']:.2f}) after "
            f"{result['epochs']} epochs, {result['params']:,} parameters ({result['network']})",
            f"outputs in {workdir}: result.json, metrics.jsonl, tensorboard/",
            f"next: tensorboard --logdir {workdir}"]

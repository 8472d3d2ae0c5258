"""Train a genotype from scratch: config → data → state → step → epochs → outputs, with the same
machinery as the search (deterministic batches, Orbax checkpoints with exact resume, signals,
metrics.jsonl, TensorBoard, progress). The step it drives is pure."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxnas.compilation import FAST_COMPILE, enable_compilation_cache
from jaxnas.counting import count_params, multiply_adds
from jaxnas.data.pipeline import Batcher, DataError, channel_stats, check_dataset, eval_batches, load_split
from jaxnas.data.streaming import StreamingBatcher, open_split, streaming_eval_batches
from jaxnas.driver import EpochEnd, RunHooks, drive
from jaxnas.errors import ConfigError
from jaxnas.nn.network import NETWORKS as IMAGE_NETWORKS
from jaxnas.nn.network import trained_network
from jaxnas.nn.precision import COMPUTE_DTYPES, MatmulPrecision
from jaxnas.parallel import (
    DATA_AXIS,
    data_mesh,
    data_parallel,
    data_parallel_sum,
    host_batch,
)
from jaxnas.preflight import log_preflight
from jaxnas.runs import (
    StopSignal,
    check_workdir,
    open_workdir,
    skipped_note,
)
from jaxnas.spaces.resolve import resolve_kind
from jaxnas.tasks import get_task
from jaxnas.tasks.image import ImageClassification
from jaxnas.tasks.language import LanguageModel
from jaxnas.train import config as config_lib
from jaxnas.train import language
from jaxnas.train.step import init_state, lr_schedule, make_eval_totals, make_train_step, optimizer
from jaxnas.vocabulary.darts import Genotype

STEP_METRICS = ("train_loss", "train_acc")


def resolve_genotype(spec: str) -> Genotype:
    """A constant name, a genotype.json, or a search workdir -> a DARTS Genotype (one-line errors)."""
    return resolve_kind(spec, Genotype, "a DARTS genotype; training builds DARTS networks (constants DARTS_V1, "
                        "DARTS_V2, a genotype.json or a DARTS search workdir)")


def build_network(config: ml_collections.ConfigDict, genotype: Genotype, num_classes: int, axis_name=None):
    return trained_network(genotype, num_classes, config, axis_name)


def drop_rate(config: ml_collections.ConfigDict, epoch: int) -> float:
    """DARTS ramps drop path linearly: rate · epoch / epochs during epoch `epoch` (0-based)."""
    return config.drop_path * epoch / config.epochs


def _data(config: ml_collections.ConfigDict, pid: int, pcount: int):
    """(train batcher, test-batches factory, classes, image shape): in memory at the stored size
    (CIFAR, digits), or streamed with random-resized crops to `image_size` (ImageNet)."""
    if config.image_size:
        train = open_split(config.dataset, config.train_split, config.data_dir)
        test = open_split(config.dataset, config.test_split, config.data_dir)
        batcher = StreamingBatcher(train, config.batch_size, config.seed, config.image_size, config.flip, pid, pcount)

        def test_batches():
            return streaming_eval_batches(test, config.eval_batch_size, config.image_size, config.eval_resize, pid,
                                          pcount)

        return batcher, test_batches, train.num_classes, (config.image_size, config.image_size, 3)
    train = load_split(config.dataset, config.train_split, config.data_dir)
    test = load_split(config.dataset, config.test_split, config.data_dir)
    mean, std = channel_stats(train.images)
    batcher = Batcher(train, config.batch_size, config.seed, mean, std, crop_padding=config.crop_padding,
                      flip=config.flip, cutout=config.cutout, process_index=pid, process_count=pcount)

    def test_batches():
        return eval_batches(test, config.eval_batch_size, mean, std, pid, pcount)

    return batcher, test_batches, train.num_classes, train.images.shape[1:]


@dataclasses.dataclass(frozen=True)
class Trainer:
    """What training one task takes: `check(config) -> architecture` (before the workdir is touched),
    `load(config, task, pid, pcount) -> data` (with `steps_per_epoch`), `train(config, workdir,
    task, architecture, data, stop) -> result`, and the lines a finished run ends with."""

    networks: tuple[str, ...]
    split_keys: tuple[str, ...]
    check: Callable[[ml_collections.ConfigDict], Any]
    load: Callable[..., Any]
    train: Callable[..., dict[str, Any]]
    closing_lines: Callable[[str, dict], list[str]]


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Train (or resume, or report) `config` in `workdir`; returns result.json's content (or
    `{"stopped": True, ...}` when a signal ended it early)."""
    pid, pcount, devices = jax.process_index(), jax.process_count(), jax.device_count()
    log_preflight(config.compute_dtype)
    config = config_lib.resolve(config)
    task = get_task(config.task)
    trainer = trainer_of(task)
    config_lib.validate(config, devices, pcount)
    architecture = trainer.check(config)
    workdir = os.path.abspath(os.path.expanduser(workdir))
    check_workdir(workdir, config, config_lib.RUNTIME_KEYS, defaults=config_lib.get_config())
    enable_compilation_cache(config.compilation_cache)
    with StopSignal() as stop:
        data = trainer.load(config, task, pid, pcount)  # before the workdir exists: a failed start leaves nothing
        if data.steps_per_epoch < 1:
            raise DataError(f"batch_size {config.batch_size} is larger than the train split")
        with open_workdir(workdir, config, config_lib.RUNTIME_KEYS, config_lib.get_config(), pid, writer=pid == 0):
            return trainer.train(config, workdir, task, architecture, data, stop)


def _image_check(config: ml_collections.ConfigDict) -> Genotype:
    genotype = resolve_genotype(config.genotype)
    check_dataset(config.dataset, config.data_dir)
    return genotype


def _image_load(config: ml_collections.ConfigDict, task, pid: int, pcount: int) -> _ImageData:
    return _ImageData(*_data(config, pid, pcount))


@dataclasses.dataclass(frozen=True)
class _ImageData:
    batcher: Any
    test_batches: Callable
    num_classes: int
    image_shape: tuple

    @property
    def steps_per_epoch(self) -> int:
        return self.batcher.steps_per_epoch


def _image_train(config, workdir, task, genotype, data: _ImageData, stop) -> dict[str, Any]:
    return _train(config, workdir, genotype, (data.batcher, data.test_batches, data.num_classes, data.image_shape),
                  stop)


def _train(config: ml_collections.ConfigDict, workdir: str, genotype: Genotype, data: tuple,
           stop: StopSignal) -> dict[str, Any]:
    """The training in a locked workdir holding this config, from its newest checkpoint or the start."""
    pid, pcount, devices = jax.process_index(), jax.process_count(), jax.device_count()
    writer_enabled = pid == 0
    logging.info("train %s on %s: %d device(s) (%s), %d process(es); workdir %s", config.genotype, config.dataset,
                 devices, jax.devices()[0].platform, pcount, workdir)

    batcher, test_batches, num_classes, image_shape = data
    spe = batcher.steps_per_epoch

    compute_dtype = COMPUTE_DTYPES[config.compute_dtype]
    schedule = lr_schedule(config.lr, config.lr_schedule, config.epochs, spe, config.lr_decay)
    opt = optimizer(schedule, config.momentum, config.weight_decay, config.clip_norm)
    net = MatmulPrecision(build_network(config, genotype, num_classes, axis_name=DATA_AXIS), config.matmul_precision)
    sample = jnp.zeros((2, *image_shape), jnp.float32)
    init = jax.jit(lambda: init_state(build_network(config, genotype, num_classes), sample,
                                      jax.random.key(config.seed), opt), compiler_options=FAST_COMPILE)
    mesh = data_mesh()
    train_step = data_parallel(
        make_train_step(net, opt, num_classes, config.auxiliary_weight, config.label_smoothing, compute_dtype,
                        DATA_AXIS), mesh, replicated_tail=1)
    evaluate = data_parallel_sum(make_eval_totals(net, num_classes, compute_dtype, DATA_AXIS), mesh)

    def test_totals(state) -> np.ndarray:
        totals = np.zeros(3)
        for x, y, mask in test_batches():
            totals += np.asarray(jax.device_get(evaluate(state, *host_batch((x, y, mask), mesh))), np.float64)
        return totals

    def step(state, global_step):
        epoch, s = divmod(global_step, spe)
        return train_step(state, host_batch(batcher.batch(epoch, s), mesh), np.float32(drop_rate(config, epoch)))

    def end_epoch(end: EpochEnd) -> dict:
        totals, means = test_totals(end.state), end.sums.means()
        record = {"epoch": end.epoch, "step": end.step, "train_loss": means["train_loss"],
                  "train_acc": means["train_acc"], "test_loss": totals[0] / totals[2],
                  "test_acc": totals[1] / totals[2], "lr": float(schedule(end.step - 1)),
                  "drop_path": float(np.float32(drop_rate(config, end.epoch - 1))),
                  "nonfinite_steps": end.sums.steps - end.sums.finite_steps, "seconds": end.seconds,
                  "devices": devices}
        record = {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in record.items()}
        logging.info("epoch %d/%d: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.1f s%s",
                     record["epoch"], config.epochs, record["train_loss"], record["train_acc"],
                     record["test_loss"], record["test_acc"], record["seconds"], skipped_note(end.sums))
        end.writer.write(record, end.step)
        return record

    driven = drive(RunHooks("training", STEP_METRICS, "lr", init, step, end_epoch), config, workdir, spe, mesh, stop)
    if driven.stopped:
        return {"stopped": driven.stopped, "step": driven.step}
    state, step = driven.state, driven.step
    totals = test_totals(state)
    params = jax.device_get(state.params)
    madds = multiply_adds(build_network(config, genotype, num_classes), image_shape, train=False)
    result = {"test_acc": float(totals[1] / totals[2]), "test_loss": float(totals[0] / totals[2]),
              "params": count_params(params), "params_with_aux": count_params(params, include_auxiliary=True),
              "multiply_adds": int(sum(madds.values())), "epochs": config.epochs, "steps": step,
              "dataset": config.dataset, "genotype": genotype.to_dict()}
    if writer_enabled:
        with open(os.path.join(workdir, "result.json"), "w") as f:
            json.dump(result, f, indent=1)
    logging.info("test accuracy %.4f | %s parameters | %.1f M multiply-adds", result["test_acc"],
                 f"{result['params']:,}", result["multiply_adds"] / 1e6)
    return result


def closing_lines(config: ml_collections.ConfigDict, workdir: str, result: dict) -> list[str]:
    """What a finished training ends with: its result, where its outputs are, what to run next."""
    with open(os.path.join(workdir, "result.json")) as f:
        result = json.load(f)
    return trainer_of(get_task(config_lib.resolve(config).task)).closing_lines(workdir, result)


def _image_closing_lines(workdir: str, result: dict) -> list[str]:
    return [f"training done: test acc {result['test_acc']:.4f} after {result['epochs']} epochs, "
            f"{result['params']:,} parameters, {result['multiply_adds'] / 1e6:.1f} M multiply-adds",
            f"outputs in {workdir}: result.json, metrics.jsonl, tensorboard/",
            f"next: tensorboard --logdir {workdir}"]


IMAGE_TRAINER = Trainer(tuple(IMAGE_NETWORKS), ("batch_size", "eval_batch_size"),
                        _image_check, _image_load, _image_train, _image_closing_lines)
LANGUAGE_TRAINER = Trainer(language.NETWORKS, ("batch_size",), language.check, language.load, language.train,
                           language.closing_lines)
# Each task's trainer, by the task's type (the task objects of `jaxnas.tasks`).
TRAINERS = {ImageClassification: IMAGE_TRAINER, LanguageModel: LANGUAGE_TRAINER}


def trainer_of(task: Any) -> Trainer:
    if type(task) not in TRAINERS:
        raise ConfigError(f"task {task.name!r} has no trainer; python -m jaxnas.train trains "
                          f"{', '.join(t.name for t in map(lambda c: c(), TRAINERS))}")
    return TRAINERS[type(task)]

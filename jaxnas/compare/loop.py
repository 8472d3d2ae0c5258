"""Compare search strategies on equal terms: the same space, data, seed and number of epochs.

Each strategy's search runs into `<workdir>/<strategy>` (resumable like any search; a finished one
is only read back), and, with `train_epochs > 0`, its derived genotype is trained from scratch
into `<workdir>/<strategy>/train`. One table (`comparison.md`, `comparison.json`) lists per
strategy the derived architecture's search-val accuracy (as its own search evaluates it), its
parameters at the training network's size, the search seconds, and the test accuracy after training.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging

from jaxnas.compare import config as config_lib
from jaxnas.counting import count_params
from jaxnas.data.pipeline import image_shape_and_classes
from jaxnas.describe import resolve_architecture
from jaxnas.search import loop as search_loop
from jaxnas.spaces.base import get_space
from jaxnas.train import loop as train_loop

COLUMNS = ("strategy", "search_val_acc", "params", "search_seconds", "test_acc", "genotype")


def _metrics(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _params(space: Any, search_workdir: str, train: ml_collections.ConfigDict, image_shape: tuple,
            num_classes: int) -> int | None:
    """Parameters of the derived architecture's discrete network: for DARTS genotypes the network
    `jaxnas.train` builds with `train`'s settings, for NB201 cells the search space's own network."""
    if space.name not in ("darts", "nb201"):
        return None
    arch = resolve_architecture(search_workdir)
    if space.name == "darts":
        net = train_loop.build_network(train, arch, num_classes)
        args = ()
    else:
        net, args = space.network(arch, num_classes), (None,)
    x = jnp.zeros((1, *image_shape))
    variables = jax.eval_shape(lambda: net.init(jax.random.key(0), x, *args, train=False))
    return count_params(variables["params"])


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
    config_lib.validate(config, jax.device_count(), jax.process_count())
    workdir = os.path.abspath(os.path.expanduser(workdir))
    os.makedirs(workdir, exist_ok=True)
    rows = []
    for name in config_lib.strategy_names(config):
        search = config_lib.strategy_config(config, name)
        space = get_space(search.space, **search_loop.config_lib.space_options(search))
        logging.info("comparison: %s", name)
        out = os.path.join(workdir, name)
        result = search_loop.run(search, out)
        if result.get("stopped"):
            logging.warning("stopped during %s; rerun the same command to continue the comparison", name)
            return rows
        metrics = _metrics(out)
        with open(os.path.join(out, "genotype.json")) as f:
            genotype = json.load(f)
        row = {"strategy": name, "search_val_acc": metrics[-1]["val_acc"],
               "params": _params(space, out, config.train, *image_shape_and_classes(search.dataset, search.data_dir)),
               "search_seconds": sum(m["seconds"] for m in metrics), "test_acc": None, "genotype": genotype}
        if config.train_epochs:
            train = config.train.copy_and_resolve_references()
            train.genotype, train.dataset, train.data_dir = out, search.dataset, search.data_dir
            train.seed, train.epochs = search.seed, config.train_epochs
            trained = train_loop.run(train, os.path.join(out, "train"))
            if trained.get("stopped"):
                return rows
            row["test_acc"] = trained["test_acc"]
        rows.append(row)
        write_table(rows, config, workdir)
    return rows


def write_table(rows: list[dict], config: ml_collections.ConfigDict, workdir: str) -> None:
    if jax.process_index() != 0:
        return
    with open(os.path.join(workdir, "comparison.json"), "w") as f:
        json.dump(rows, f, indent=1)
    s = config.search
    lines = [f"Search: space {s.space} (C={s.channels}, {s.layers} layers), {s.dataset}, {s.epochs} epochs, "
             f"batch {s.batch_size}, seed {s.seed}."
             + (f" Test accuracy after {config.train_epochs} epochs of training from scratch." if config.train_epochs
                else ""), "",
             "| strategy | search-val acc | params | search s | test acc |", "|---|---|---|---|---|"]
    for r in rows:
        params = f"{r['params']:,}" if r["params"] is not None else "–"
        test = f"{r['test_acc']:.4f}" if r["test_acc"] is not None else "–"
        lines.append(f"| {r['strategy']} | {r['search_val_acc']:.4f} | {params} | {r['search_seconds']:.0f} | {test} |")
    with open(os.path.join(workdir, "comparison.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    logging.info("comparison table:\n%s", "\n".join(lines))

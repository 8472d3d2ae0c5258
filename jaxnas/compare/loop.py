"""Compare search strategies on equal terms: the same space, data, seeds and number of epochs.

Each strategy's search runs into `<workdir>/<strategy>` (`<workdir>/<strategy>/seed<k>` with several
seeds; resumable like any search, a finished one is only read back), and, with `train_epochs > 0`,
its derived genotype is trained from scratch into `.../train`. One table (`comparison.md`,
`comparison.json`) lists per strategy the derived architecture's search-val accuracy (as its own
search evaluates it), what the space knows of it (NAS-Bench-201: the benchmark's test accuracy),
its parameters at the training network's size, the search seconds, and the test accuracy after
training; with several seeds, as mean ± standard deviation, as the NAS-Bench-201 paper reports.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxnas.compare import config as config_lib
from jaxnas.counting import count_params
from jaxnas.data.pipeline import image_shape_and_classes
from jaxnas.search import loop as search_loop
from jaxnas.spaces.base import arch_metric_names, get_space
from jaxnas.tasks import get_task
from jaxnas.train import loop as train_loop
from jaxnas.writers import read_metrics

COLUMNS = ("strategy", "search_val_acc", "params", "search_seconds", "test_acc", "genotype")


def _params(space: Any, search_workdir: str, train: ml_collections.ConfigDict, search) -> int | None:
    """Parameters of the derived architecture's discrete network (`SearchSpace.params_network`: for
    DARTS genotypes the network `jaxnas.train` builds with `train`'s settings, for NB201 cells the
    search space's own network), or None where the space reports none."""
    with open(os.path.join(search_workdir, "genotype.json")) as f:
        arch = space.arch_from_dict(json.load(f))
    if space.params_network(arch, 10, train) is None:
        return None
    image_shape, num_classes = image_shape_and_classes(search.dataset, search.data_dir)
    net, args = space.params_network(arch, num_classes, train)
    x = jnp.zeros((1, *image_shape))
    variables = jax.eval_shape(lambda: net.init(jax.random.key(0), x, *args, train=False))
    return count_params(variables["params"])


def _search_once(config, name: str, seed: int, out: str) -> dict[str, Any]:
    """One strategy's search (and training) at one seed: its row, or `{"stopped": signal}`."""
    search = config_lib.strategy_config(config, name)
    search.seed = seed
    space, _ = search_loop.config_lib.space_and_strategy(search)
    result = search_loop.run(search, out)
    if result.get("stopped"):
        return result
    metrics = read_metrics(os.path.join(out, "metrics.jsonl"))
    with open(os.path.join(out, "genotype.json")) as f:
        genotype = json.load(f)
    metric = get_task(search.task).ranking[0]
    row = {f"search_{metric}": metrics[-1][metric],  # search_val_acc; a language model's search_val_ppl
           # what the space knows of the derived cell (NB201: its benchmark accuracies), as the search logged it
           **{k: metrics[-1][k] for k in arch_metric_names(space) if k in metrics[-1]},
           "params": _params(space, out, config.train, search),
           "search_seconds": sum(m["seconds"] for m in metrics), "test_acc": None, "genotype": genotype}
    if config.train_epochs:
        train = config.train.copy_and_resolve_references()
        train.genotype, train.dataset, train.data_dir = out, search.dataset, search.data_dir
        train.seed, train.epochs = seed, config.train_epochs
        trained = train_loop.run(train, os.path.join(out, "train"))
        if trained.get("stopped"):
            return trained
        row["test_acc"] = trained["test_acc"]
    return row


def aggregate(name: str, per_seed: list[dict]) -> dict[str, Any]:
    """One row per strategy: numbers as (mean, std over seeds), genotypes as the list of them."""
    row: dict[str, Any] = {"strategy": name, "seeds": len(per_seed)}
    for key in per_seed[0]:
        values = [r[key] for r in per_seed]
        if key == "genotype":
            row["genotypes"] = values
        elif any(v is None for v in values):
            row[key] = None
        else:
            row[key] = (float(np.mean(values)), float(np.std(values)))
    return row


def _run_dir(workdir: str, name: str, seed: int, seeds: list[int]) -> str:
    """Where one strategy's search at one seed runs: `<workdir>/<name>`, or `.../seed<seed>` with several seeds."""
    return os.path.join(workdir, name) if len(seeds) == 1 else os.path.join(workdir, name, f"seed{seed}")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Run (or continue) the comparison `config` in `workdir`: `{"rows": one per strategy}` (and
    `stopped`, the signal, when one ended it early)."""
    config_lib.validate(config, jax.device_count(), jax.process_count())
    workdir = os.path.abspath(os.path.expanduser(workdir))
    os.makedirs(workdir, exist_ok=True)
    seeds = config_lib.seeds(config)
    rows = []
    for name in config_lib.strategy_names(config):
        per_seed = []
        for seed in seeds:
            logging.info("comparison: %s, seed %d", name, seed)
            row = _search_once(config, name, seed, _run_dir(workdir, name, seed, seeds))
            if row.get("stopped"):
                logging.warning("stopped during %s; rerun the same command to continue the comparison", name)
                return {"rows": rows, "stopped": row["stopped"]}
            per_seed.append(row)
        rows.append(aggregate(name, per_seed))
        write_table(rows, config, workdir)
    return {"rows": rows}


def closing_lines(config: ml_collections.ConfigDict, workdir: str, result: dict) -> list[str]:
    """What a finished comparison ends with: the best strategy, where the tables are, what to run next."""
    rows, seeds = result["rows"], config_lib.seeds(config)
    metric, name, higher = get_task(config.search.task).ranking
    key, what = ("test_acc", "test acc") if config.train_epochs else (f"search_{metric}", name)
    sign = 1.0 if higher or config.train_epochs else -1.0
    best = max(rows, key=lambda r: sign * r[key][0] if r[key] else -float("inf"))
    score = f"{best[key][0]:.4f}" if best[key] else "–"
    return [f"comparison done: {len(rows)} strategies; best {what}: {best['strategy']} ({score})",
            f"outputs in {workdir}: comparison.md, comparison.json, one workdir per strategy",
            f"next: {get_space(config.search.space).follow_up(_run_dir(workdir, best['strategy'], seeds[0], seeds))}"]


def _cell(value, fmt: str) -> str:
    if value is None:
        return "–"
    mean, std = value
    return format(mean, fmt) + (f" ± {format(std, fmt)}" if std else "")


def write_table(rows: list[dict], config: ml_collections.ConfigDict, workdir: str) -> None:
    if jax.process_index() != 0:
        return
    with open(os.path.join(workdir, "comparison.json"), "w") as f:
        json.dump(rows, f, indent=1)
    s, seeds = config.search, config_lib.seeds(config)
    extra = sorted({k for r in rows for k in r if k.startswith("benchmark_acc_")})
    metric, name, higher = get_task(s.task).ranking
    header = ["strategy", name, *(k.replace("benchmark_acc_", "NB201 ") + " %" for k in extra),
              "params", "search s", "test acc"]
    lines = [f"Search: space {s.space} (C={s.channels}, {s.layers} layers), {s.dataset}, {s.epochs} epochs, "
             f"batch {s.batch_size}, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
             + (" (mean ± std over seeds)." if len(seeds) > 1 else ".")
             + (f" Test accuracy after {config.train_epochs} epochs of training from scratch." if config.train_epochs
                else ""), "",
             "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for r in rows:
        cells = [r["strategy"], _cell(r[f"search_{metric}"], ".4f" if higher else ".2f"),
                 *(_cell(r.get(k), ".2f") for k in extra),
                 _cell(r["params"], ",.0f"), _cell(r["search_seconds"], ".0f"), _cell(r["test_acc"], ".4f")]
        lines.append("| " + " | ".join(cells) + " |")
    with open(os.path.join(workdir, "comparison.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    logging.info("comparison table:\n%s", "\n".join(lines))

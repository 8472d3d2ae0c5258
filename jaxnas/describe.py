"""`python -m jaxnas.describe`: parameters and multiply-adds of a genotype, an NB201 arch or a supernet.

    python -m jaxnas.describe DARTS_V2 --dataset cifar10 --channels 36 --layers 20 --json
    python -m jaxnas.describe --supernet darts --channels 16 --layers 8
    python -m jaxnas.describe workdir/genotype.json --plot cells.png
    python -m jaxnas.describe '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|...|' --dataset cifar10
    python -m jaxnas.describe DARTS_V2 --dataset ptb --channels 850          # the recurrent cell's language model

An NB201 arch also gets its NAS-Bench-201 test accuracies (`jaxnas.benchmarks.nb201`). On a text
corpus (pydoc, ptb, wikitext2) a name is a recurrent cell (DARTS_V1, DARTS_V2, ENAS), `--channels`
the embedding and hidden size (default 850, the paper's PTB model), and `--supernet darts_rnn`
the search network (default 300); the decoder is tied to the embedding.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import jax
import jax.numpy as jnp

from jaxnas.counting import count_params, multiply_adds
from jaxnas.spaces.resolve import resolve_architecture
from jaxnas.vocabulary.darts import Genotype
from jaxnas.vocabulary.darts_rnn import RecurrentGenotype
from jaxnas.vocabulary.nb201 import NB201Arch

# name: (input shape, classes, network family)
DATASETS: dict[str, tuple[tuple[int, int, int], int, str]] = {
    "cifar10": ((32, 32, 3), 10, "cifar"),
    "cifar100": ((32, 32, 3), 100, "cifar"),
    "imagenet2012": ((224, 224, 3), 1000, "imagenet"),
    "digits": ((8, 8, 1), 10, "cifar"),
}
DATASET_ALIASES = {"imagenet": "imagenet2012"}
DEFAULTS = {"cifar": (36, 20), "imagenet": (48, 14)}
SUPERNETS = ("darts", "nb201", "chain", "darts_rnn")
TEXT_DEFAULTS = {"network": 850, "supernet": 300}  # the DARTS paper's PTB model and search sizes


def _describe_text(arch: str | None, supernet: str | None, corpus: str, channels: int | None) -> dict[str, Any]:
    """Counts of a recurrent cell's language model (or the search supernet) on `corpus`."""
    from jaxnas.data.text import vocab_size
    from jaxnas.nn.rnn import RnnSupernet, rnn_network

    vocab = vocab_size(corpus)
    if supernet is not None:
        if supernet != "darts_rnn":
            raise ValueError(f"supernet {supernet!r} is an image network; on text use --supernet darts_rnn")
        dim = channels or TEXT_DEFAULTS["supernet"]
        model, architecture, label = RnnSupernet(vocab_size=vocab, dim=dim), None, "darts_rnn supernet"
        alphas = {"recurrent": jnp.zeros((36, 5))}
    else:
        architecture = resolve_architecture(arch, recurrent=True)
        if not isinstance(architecture, RecurrentGenotype):
            raise ValueError(f"{arch!r} is not a recurrent cell; on text give DARTS_V1, DARTS_V2, ENAS or a darts_rnn "
                             "search's genotype.json")
        dim = channels or TEXT_DEFAULTS["network"]
        model, alphas, label = rnn_network(architecture, vocab, dim), None, arch
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((2, 1), jnp.int32),
                                                  jnp.zeros((1, dim)), alphas))
    params = count_params(variables["params"])
    return {"name": label, "dataset": corpus, "params": params, "params_with_aux": params,
            "multiply_adds": None, "architecture": architecture.to_dict() if architecture else None,
            "benchmark_test_acc": None, "vocab_size": vocab, "dim": dim}


def _dataset(name: str):
    from jaxnas.data.text import CORPORA

    name = DATASET_ALIASES.get(name, name)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join((*DATASETS, *CORPORA))}")
    return DATASETS[name]


def describe(
    arch: str | None = None,
    supernet: str | None = None,
    dataset: str = "cifar10",
    channels: int | None = None,
    layers: int | None = None,
) -> dict[str, Any]:
    """Counts for a discrete architecture (`arch`) or a search supernet (`supernet`)."""
    from jaxnas.data.text import CORPORA

    if (arch is None) == (supernet is None):
        raise ValueError("give either an architecture or --supernet NAME")
    if dataset in CORPORA:
        return _describe_text(arch, supernet, dataset, channels)
    shape, classes, family = _dataset(dataset)
    x = jnp.zeros((1,) + shape)
    if (arch is None) == (supernet is None):
        raise ValueError("give either an architecture or --supernet NAME")
    if supernet is not None:
        from jaxnas.spaces.base import SPACES, get_space

        if supernet not in SUPERNETS or supernet == "darts_rnn":
            raise ValueError(f"unknown supernet {supernet!r} on {dataset}; valid supernets: darts, nb201, chain "
                             "(darts_rnn on a text corpus)")
        cls = SPACES[supernet]
        space = get_space(supernet, **cls.sized(channels, layers), **cls.counting_options)
        model = space.supernet(classes)
        alphas = space.init_alphas(jax.random.key(0))
        args, kwargs = (alphas,), {"train": False}
        init_args = (x, alphas)
        label = f"{supernet} supernet"
    else:
        architecture = resolve_architecture(arch)
        if isinstance(architecture, NB201Arch):
            from jaxnas.nn.nb201 import NB201Network

            model = NB201Network(channels or 16, layers or 5, classes, arch=architecture)
            args, kwargs, init_args = (None,), {"train": False}, (x, None)
        else:
            from jaxnas.nn.network import NetworkCIFAR, NetworkImageNet

            c_default, l_default = DEFAULTS[family]
            cls = NetworkImageNet if family == "imagenet" else NetworkCIFAR
            model = cls(architecture, channels or c_default, layers or l_default, classes, auxiliary=True)
            args, kwargs, init_args = (), {"train": False}, (x,)
        label = arch
    # Build with train=True where an auxiliary head exists, so its parameters can be reported too.
    init_kwargs = {"train": True} if not args else {"train": False}
    variables = jax.eval_shape(
        lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, *init_args, **init_kwargs)
    )
    madds = multiply_adds(model, shape, *args, **kwargs)
    benchmark = None
    if supernet is None and isinstance(architecture, NB201Arch):
        from jaxnas.benchmarks import nb201 as nb201_benchmark

        benchmark = nb201_benchmark.accuracies(architecture)
    return {
        "name": label,
        "dataset": DATASET_ALIASES.get(dataset, dataset),
        "params": count_params(variables["params"]),
        "params_with_aux": count_params(variables["params"], include_auxiliary=True),
        "multiply_adds": sum(madds.values()),
        "architecture": architecture.to_dict() if supernet is None and isinstance(architecture, Genotype)
        else (architecture.to_string() if supernet is None else None),
        "benchmark_test_acc": benchmark,  # NB201: the benchmark's 200-epoch test accuracy (%) per data set
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxnas.describe", description=__doc__.split("\n")[0])
    parser.add_argument("arch", nargs="?", help="DARTS_V1 | DARTS_V2 | genotype.json | search workdir | NB201 string")
    parser.add_argument("--supernet", choices=SUPERNETS, help="describe a search supernet instead")
    parser.add_argument("--dataset", default="cifar10", help=f"one of {', '.join(DATASETS)}")
    parser.add_argument("--channels", type=int, help="initial channels C")
    parser.add_argument("--layers", type=int, help="cells (DARTS, chain layers) or cells per stage (NB201)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the cells of the architecture")
    args = parser.parse_args(argv)
    try:
        info = describe(args.arch, args.supernet, args.dataset, args.channels, args.layers)
        if args.plot:
            if args.supernet:
                raise ValueError("--plot draws a discrete architecture; give one instead of --supernet")
            from jaxnas import viz

            architecture = resolve_architecture(args.arch, recurrent=info["multiply_adds"] is None)
            if isinstance(architecture, NB201Arch):
                viz.plot_nb201(architecture, args.plot)
            elif isinstance(architecture, RecurrentGenotype):
                viz.plot_recurrent(architecture.recurrent, architecture.concat, args.plot, args.arch[:20])
            else:
                viz.plot_genotype(architecture, args.plot, title=args.arch if len(args.arch) < 20 else "")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        keys = ("params",) if info["multiply_adds"] is None else ("params", "params_with_aux", "multiply_adds")
        keys += ("benchmark_test_acc",) if info["benchmark_test_acc"] else ()
        print(json.dumps({k: info[k] for k in keys}))
    else:
        print(f"{info['name']} on {info['dataset']}")
        if info["multiply_adds"] is None:  # a language model
            print(f"  parameters: {info['params']:,} ({info['vocab_size']:,} words, {info['dim']} dimensions, "
                  f"decoder tied to the embedding)")
        else:
            print(f"  parameters (without auxiliary head): {info['params']:,}")
            print(f"  parameters (with auxiliary head):    {info['params_with_aux']:,}")
            print(f"  multiply-adds (conv + linear):       {info['multiply_adds'] / 1e6:.1f} M")
        if info["benchmark_test_acc"]:
            accs = ", ".join(f"{d} {a:.2f} %" for d, a in info["benchmark_test_acc"].items())
            print(f"  NAS-Bench-201 test accuracy (200 epochs): {accs}")
        if args.plot:
            print(f"  cells drawn to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

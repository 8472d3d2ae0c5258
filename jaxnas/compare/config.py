"""The comparison configuration: one search config (space, data, seed, budget) run once per
strategy, and optionally a short training from scratch of every derived DARTS genotype."""

from __future__ import annotations

import ml_collections

from jaxnas import config_blocks
from jaxnas.errors import ConfigError
from jaxnas.search import config as search_config
from jaxnas.search.strategies import STRATEGIES, STRATEGY_OPTIONS, get_strategy
from jaxnas.train import config as train_config


def get_config() -> ml_collections.ConfigDict:
    """Offline default: every strategy on the digits DARTS-space search, 4 epochs each."""
    c = ml_collections.ConfigDict()
    # --- search --- one search config, run once per strategy
    s = search_config.get_config()
    s.epochs = 4
    c.search = s  # the search config (any key of `python -m jaxnas.search --help`, as --config.search.<key>)
    c.strategies = "random_ws,darts,pcdarts,gdas,enas,pnas"  # the strategies compared, in this order
    # each strategy's options (its `strategy` block less the name), e.g. --config.strategy_options.enas.hidden=50
    c.strategy_options = {name: dict(options) for name, options in STRATEGY_OPTIONS.items() if options}
    c.seeds = ""  # "" = search.seed once; "0,1,2": every strategy once per seed, reported as mean ± std
    # --- training --- of each derived genotype
    c.train_epochs = 0  # > 0 (darts space): train each derived genotype from scratch this long, report test accuracy
    t = train_config.get_config()
    t.channels = 8
    c.train = t  # the training run's settings (its genotype, dataset, seed and epochs are set per strategy)
    return c


def strategy_names(config: ml_collections.ConfigDict) -> list[str]:
    names = [n.strip() for n in config.strategies.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        problem = f"unknown strategy {unknown[0]!r} in strategies" if unknown else "strategies is empty"
        raise ConfigError(f"{problem}; valid strategies: {', '.join(STRATEGIES)}")
    return names


def strategy_config(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    """The search config of one strategy: the shared one with the `strategy` block of `name` and its
    `strategy_options`; the keys only the gradient strategies read go back to their defaults for the
    sampling ones (`Strategy.ignored_keys`)."""
    s = search_config.resolve(config.search)
    s.strategy = search_config.strategy_block(name, **config_blocks.plain(config.strategy_options.get(name, {})))
    defaults = search_config.get_config()
    for key in get_strategy(name).ignored_keys:
        s[key] = defaults[key]
    return s


def seeds(config: ml_collections.ConfigDict) -> list[int]:
    """The seeds every strategy runs with."""
    try:
        values = [int(x) for x in config.seeds.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"seeds must be comma-separated whole numbers, got {config.seeds!r}") from None
    if len(set(values)) != len(values):
        raise ConfigError(f"seeds repeats a seed: {config.seeds!r}")
    return values or [config.search.seed]


def validate(config: ml_collections.ConfigDict, device_count: int = 1, process_count: int = 1) -> None:
    valid = set(get_config().keys())
    extra = sorted(set(config.keys()) - valid)
    if extra:
        raise ConfigError(f"unknown config key(s) {', '.join(extra)}; valid keys: {', '.join(sorted(valid))}")
    if config.train_epochs < 0:
        raise ConfigError(f"train_epochs must be >= 0, got {config.train_epochs}")
    if config.train_epochs and config.search.space != "darts":
        raise ConfigError("train_epochs > 0 needs space 'darts' (jaxnas.train trains DARTS genotypes)")
    seeds(config)
    unknown = sorted(set(config.strategy_options) - set(STRATEGIES))
    if unknown:
        raise ConfigError(f"strategy_options names unknown strategies {', '.join(unknown)}; valid strategies: "
                          f"{', '.join(STRATEGIES)}")
    for name in strategy_names(config):
        search_config.validate(strategy_config(config, name), device_count, process_count)

"""jaxnas: gradient-based neural architecture search in JAX/Flax.

    import jaxnas as jn
    space = jn.get_space("darts", channels=8, layers=5)
    net, alphas = space.supernet(num_classes=10), space.init_alphas(jax.random.key(0))
    d_alpha, info = jn.unrolled(jn.supernet_loss(net, batch_stats), w, alphas, inner, inner_state,
                                train_batches, val_batch, xi=lr)

Names resolve on first use (PEP 562), so `import jaxnas` is cheap and changes no process state:
no XLA flags, no backend, no logging set-up.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that holds it
_EXPORTS = {
    # Search spaces, their architectures and the networks built from them.
    "get_space": "jaxnas.spaces.base",
    "SPACES": "jaxnas.spaces.base",
    "SearchSpace": "jaxnas.spaces.base",
    "Genotype": "jaxnas.vocabulary.darts",
    "DARTS_V1": "jaxnas.vocabulary.darts",
    "DARTS_V2": "jaxnas.vocabulary.darts",
    "NB201Arch": "jaxnas.vocabulary.nb201",
    "ChainArch": "jaxnas.vocabulary.chain",
    "DartsSupernet": "jaxnas.nn.supernet",
    "NetworkCIFAR": "jaxnas.nn.network",
    "NetworkImageNet": "jaxnas.nn.network",
    # Hypergradients: one signature, estimate(loss_fn, w, α, inner_opt, inner_state, train_batches,
    # val_batch, *, xi, axis_name, **options) -> (dα, diagnostics).
    "first_order": "jaxnas.search.hypergrad",
    "darts_fd": "jaxnas.search.hypergrad",
    "unrolled": "jaxnas.search.hypergrad",
    "implicit": "jaxnas.search.hypergrad",
    "get_estimator": "jaxnas.search.hypergrad",
    "ESTIMATORS": "jaxnas.search.hypergrad",
    # The search step and its state.
    "make_search_step": "jaxnas.search.step",
    "StepOptions": "jaxnas.search.step",
    "SearchOptimizers": "jaxnas.search.state",
    "supernet_loss": "jaxnas.search.step",
    "init_state": "jaxnas.search.step",
    "SearchState": "jaxnas.search.state",
    "cosine_lr": "jaxnas.search.state",
    "inner_optimizer": "jaxnas.search.state",
    "weight_optimizer": "jaxnas.search.state",
    "alpha_optimizer": "jaxnas.search.state",
    "get_strategy": "jaxnas.search.strategies",
    "STRATEGIES": "jaxnas.search.strategies",
    # Counting, as the DARTS papers report it.
    "count_params": "jaxnas.counting",
    "multiply_adds": "jaxnas.counting",
    # The runs behind the command lines: run_search(search_config(), workdir), and so on.
    "search_config": ("jaxnas.search.config", "get_config"),
    "strategy_block": "jaxnas.search.config",
    "estimator_block": "jaxnas.search.config",
    "run_search": ("jaxnas.search.loop", "run"),
    "train_config": ("jaxnas.train.config", "get_config"),
    "run_train": ("jaxnas.train.loop", "run"),
    "study_config": ("jaxnas.study.config", "get_config"),
    "run_study": ("jaxnas.study.loop", "run"),
    "compare_config": ("jaxnas.compare.config", "get_config"),
    "run_compare": ("jaxnas.compare.loop", "run"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'jaxnas' has no attribute {name!r}")
    module, attr = _EXPORTS[name] if isinstance(_EXPORTS[name], tuple) else (_EXPORTS[name], name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

"""The study configuration: the search whose trajectory is studied (`search`, a full search config),
the estimators compared at each of its checkpoints, and the reference they are compared with.

Estimators are config blocks, as the search's `estimator` is: `{"name": "darts_fd", "eps_scale": 0.1}`
(options left out take the search's defaults). Tables name each by its label (`hypergrad.label`):
first_order, darts_fd (the paper's ε scale 0.01), darts_fd_eps0.1, unrolled_k2, implicit_cg_k20.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from jaxnas import config_blocks
from jaxnas.errors import ConfigError
from jaxnas.search import config as search_config
from jaxnas.search import hypergrad
from jaxnas.search.strategies import get_strategy
from jaxnas.tasks import get_task

BLOCKS = {"reference": hypergrad.ESTIMATOR_OPTIONS}  # a config block ({name, ...options}) of the study's own


def get_config() -> ml_collections.ConfigDict:
    """Offline default: a chain-space search on digits, studied at 5 points, in float64; minutes on 2 cores."""
    c = ml_collections.ConfigDict()
    # --- trajectory --- the search whose checkpoints are studied
    s = search_config.get_config()
    s.space = "chain"
    s.channels = 8
    s.layers = 3
    s.epochs = 3
    s.batch_size = 32
    s.estimator = search_config.estimator_block("first_order")  # drives the trajectory; all are compared on it
    s.checkpoint_every_steps = 11  # every checkpoint is a study point
    s.keep_checkpoints = 1000
    s.plots = False
    c.search = s  # the search config (any key of `python -m jaxnas.search --help`, as --config.search.<key>)
    c.search_workdir = ""  # study this search's checkpoints instead of running `search` in <workdir>/search
    # --- estimators --- compared at every checkpoint of the trajectory
    # [{name, ...options}] as the search's `estimator` block (darts_fd at ε scales 0.01 (the paper's),
    # 0.001, 0.1 and 1; unrolled through 1, 2, 4 steps; Neumann and CG inverse-Hessian solves)
    c.estimators = estimator_grid(fd_eps=(0.01, 0.001, 0.1, 1.0), unroll_steps=(1, 2, 4),
                                  implicit_iterations=(5, 20))
    # the quantity DARTS approximates; e.g. {"name": "implicit", "method": "cg", "iterations": 100}
    c.reference = {"name": "unrolled", "steps": 1}
    c.mixed_eps = "0.1,0.01,0.001,0.0001"  # the second-order term alone: DARTS's difference at these ε scales
    # --- points --- where along the trajectory, at which batch sizes, how precisely
    c.points = ""  # "" = every checkpoint before the end; or fractions of the search, e.g. "0,0.01,0.5,1"
    c.batch_sizes = ""  # "" = the search's batch size; "8,32,64" studies each point at each size
    c.float64 = True  # compare estimators in float64, so approximation error is not rounding
    c.fast_compile = False  # XLA's cheapest optimisation: compiles about 2x faster, `seconds` then slower
    # On a CPU, keep every estimator's compiled function from point to point. Off: one at a time,
    # which a float64 DARTS-space study needs (all of them exhausted the memory); on: no retracing
    # at each point, about 3x faster where they are small (the recurrent cell's offline study).
    c.keep_compiled = False
    # --- run ---
    c.compilation_cache = "~/.cache/jaxnas/xla"  # persistent XLA cache ("" to turn off)
    return c


def estimator_grid(fd_eps=(0.01,), unroll_steps=(1,), implicit_methods=("neumann", "cg"),
                   implicit_iterations=(10,), neumann_step_size: float = 0.01,
                   cg_tol: float = 1e-12) -> list[dict[str, Any]]:
    """The usual study list: first_order, darts_fd at each ε scale, unrolled at each step count,
    each implicit solver at each iteration count."""
    return [{"name": "first_order"},
            *({"name": "darts_fd", "eps_scale": e} for e in fd_eps),
            *({"name": "unrolled", "steps": k} for k in unroll_steps),
            *({"name": "implicit", "method": m, "iterations": k, "step_size": neumann_step_size, "tol": cg_tol}
              for m in implicit_methods for k in implicit_iterations)]


@dataclasses.dataclass(frozen=True)
class EstimatorSpec:
    """One compared estimator: its table label, its `hypergrad` name and options."""

    label: str
    name: str
    options: tuple[tuple[str, Any], ...]

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def weight_steps(self) -> int:
        """Virtual weight steps before L_val is evaluated: its first-order part is ∇_α L_val there."""
        return hypergrad.weight_steps(self.name, self.kwargs)

    @property
    def train_batches(self) -> int:
        return hypergrad.train_batches_needed(self.name, self.kwargs)


def _spec(block: Any, where: str) -> EstimatorSpec:
    full = config_blocks.complete(block, hypergrad.ESTIMATOR_OPTIONS, where)
    options = {k: v for k, v in full.items() if k != "name"}
    problem = hypergrad.check_options(full.name, options)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return EstimatorSpec(hypergrad.label(full.name, options), full.name, tuple(sorted(options.items())))


def estimator_specs(config: ml_collections.ConfigDict) -> list[EstimatorSpec]:
    """The compared estimators, in the config's order; ConfigError for a bad block or a repeated label."""
    specs = [_spec(b, f"estimators[{i}]") for i, b in enumerate(config.estimators)]
    labels = [s.label for s in specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if not specs or repeated:
        raise ConfigError(f"estimators must list each estimator once; repeated: {', '.join(repeated)}" if specs
                          else "estimators is empty; e.g. [{'name': 'first_order'}, {'name': 'darts_fd'}]")
    return specs


def reference_spec(config: ml_collections.ConfigDict) -> EstimatorSpec:
    return _spec(config.reference, "reference")


def _floats(text: str, key: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{key} must be comma-separated numbers, got {text!r}") from None


def validate(config: ml_collections.ConfigDict, device_count: int = 1, process_count: int = 1) -> None:
    valid = set(get_config().keys())
    extra = sorted(set(config.keys()) - valid)
    if extra:
        raise ConfigError(f"unknown config key(s) {', '.join(extra)}; valid keys: {', '.join(sorted(valid))}")
    search_config.validate(config.search, device_count, process_count)
    strategy = search_config.resolve(config.search).strategy.name
    if not get_strategy(strategy).studiable:
        raise ConfigError(f"search.strategy {strategy!r} cannot be studied: its loss is a random draw per pass (or it "
                          "has no hypergradient), so estimators have no common target; use darts or pcdarts")
    estimator_specs(config)
    reference_spec(config)
    if any(not 0 <= p <= 1 for p in _floats(config.points, "points")):
        raise ConfigError(f"points must be fractions of the search in [0, 1], got {config.points!r}")
    if any(b < 1 or b != int(b) for b in _floats(config.batch_sizes, "batch_sizes")):
        raise ConfigError(f"batch_sizes must be positive whole numbers, got {config.batch_sizes!r}")
    check_batch_sizes(config, search_config.resolve(config.search))
    if any(e <= 0 for e in _floats(config.mixed_eps, "mixed_eps")):
        raise ConfigError(f"mixed_eps must be positive, got {config.mixed_eps!r}")


def check_batch_sizes(config: ml_collections.ConfigDict, search: ml_collections.ConfigDict) -> None:
    """ConfigError if `batch_sizes` names another size than the search's (`search`, resolved) while
    its task carries a state from batch to batch (a language model's hidden states, one row per
    column of the search's batch): a point at another size has no state to start from."""
    sizes = _floats(config.batch_sizes, "batch_sizes")
    if any(b != search.batch_size for b in sizes) and get_task(search.task).init_carry(search) is not None:
        raise ConfigError(f"batch_sizes {config.batch_sizes!r}: the search's task carries a state from batch to batch "
                          f"(shaped for its batch size {search.batch_size}), so it is studied at that size only; "
                          "set batch_sizes=\"\"")


def floats(config: ml_collections.ConfigDict, key: str) -> list[float]:
    """A comma-separated key as numbers."""
    return _floats(config[key], key)

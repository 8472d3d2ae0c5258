"""The study configuration: the search whose trajectory is studied (`search`, a full search config),
the estimators compared at each of its checkpoints, and the reference they are compared with.

Estimator names: `first_order`; `darts_fd` (the paper's ε scale 0.01) and `darts_fd_eps<x>` for
the other values of `fd_eps`; `unrolled_k<k>`; `implicit_<method>_k<k>` (method `neumann` or `cg`).
"""

from __future__ import annotations

import re

import ml_collections

from jaxnas.errors import ConfigError
from jaxnas.search import config as search_config
from jaxnas.search.strategies import get_strategy

PAPER_EPS = 0.01


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
    s.estimator = "first_order"  # what drives the trajectory; the study compares all estimators on it
    s.checkpoint_every_steps = 11  # every checkpoint is a study point
    s.keep_checkpoints = 1000
    s.plots = False
    c.search = s  # the search config (any key of `python -m jaxnas.search --help`, as --config.search.<key>)
    c.search_workdir = ""  # study this search's checkpoints instead of running `search` in <workdir>/search
    # --- estimators --- compared at every checkpoint of the trajectory
    c.fd_eps = "0.01,0.001,0.1,1.0"  # darts_fd: the ε scales compared (0.01: the paper's)
    c.unroll_ks = "1,2,4"  # unrolled: the inner step counts compared
    c.implicit_methods = "neumann,cg"  # implicit: the inverse-Hessian solvers compared
    c.implicit_ks = "5,20"  # implicit: the solver iteration counts compared
    c.neumann_step_size = 0.01  # implicit neumann: step size
    c.cg_tol = 1e-12  # implicit cg: tolerance
    c.reference = "unrolled_k1"  # the quantity DARTS approximates; e.g. implicit_cg_k100 for the implicit one
    c.mixed_eps = "0.1,0.01,0.001,0.0001"  # the second-order term alone: DARTS's difference at these ε scales
    # --- points --- where along the trajectory, at which batch sizes, how precisely
    c.points = ""  # "" = every checkpoint before the end; or fractions of the search, e.g. "0,0.01,0.5,1"
    c.batch_sizes = ""  # "" = the search's batch size; "8,32,64" studies each point at each size
    c.float64 = True  # compare estimators in float64, so approximation error is not rounding
    c.fast_compile = False  # XLA's cheapest optimisation: compiles about 2x faster, `seconds` then slower
    # --- run ---
    c.compilation_cache = "~/.cache/jaxnas/xla"  # persistent XLA cache ("" to turn off)
    return c


def _floats(text: str, key: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{key} must be comma-separated numbers, got {text!r}") from None


def estimator_names(config: ml_collections.ConfigDict) -> list[str]:
    names = ["first_order"]
    for eps in _floats(config.fd_eps, "fd_eps"):
        names.append("darts_fd" if eps == PAPER_EPS else f"darts_fd_eps{eps:g}")
    names += [f"unrolled_k{int(k)}" for k in _floats(config.unroll_ks, "unroll_ks")]
    for method in [m.strip() for m in config.implicit_methods.split(",") if m.strip()]:
        names += [f"implicit_{method}_k{int(k)}" for k in _floats(config.implicit_ks, "implicit_ks")]
    return names


def parse_estimator(name: str, config: ml_collections.ConfigDict) -> tuple[str, dict]:
    """An estimator name -> (hypergrad estimator, its options); unknown names list the forms."""
    if name == "first_order":
        return "first_order", {}
    if name == "darts_fd":
        return "darts_fd", {"eps_scale": PAPER_EPS}
    if m := re.fullmatch(r"darts_fd_eps([0-9.eE+-]+)", name):
        return "darts_fd", {"eps_scale": float(m.group(1))}
    if m := re.fullmatch(r"unrolled_k(\d+)", name):
        return "unrolled", {"steps": int(m.group(1))}
    if m := re.fullmatch(r"implicit_(neumann|cg)_k(\d+)", name):
        return "implicit", {"method": m.group(1), "iterations": int(m.group(2)),
                            "step_size": config.neumann_step_size, "tol": config.cg_tol}
    raise ConfigError(f"unknown estimator name {name!r}; valid forms: first_order, darts_fd, darts_fd_eps<x>, "
                      "unrolled_k<k>, implicit_neumann_k<k>, implicit_cg_k<k>")


def validate(config: ml_collections.ConfigDict, device_count: int = 1, process_count: int = 1) -> None:
    valid = set(get_config().keys())
    extra = sorted(set(config.keys()) - valid)
    if extra:
        raise ConfigError(f"unknown config key(s) {', '.join(extra)}; valid keys: {', '.join(sorted(valid))}")
    search_config.validate(config.search, device_count, process_count)
    if not get_strategy(config.search.strategy).studiable:
        raise ConfigError(f"search.strategy {config.search.strategy!r} cannot be studied: its loss is a random draw "
                          "per pass (or it has no hypergradient), so estimators have no common target; use darts or "
                          "pcdarts")
    for name in estimator_names(config) + [config.reference]:
        parse_estimator(name, config)
    if any(not 0 <= p <= 1 for p in _floats(config.points, "points")):
        raise ConfigError(f"points must be fractions of the search in [0, 1], got {config.points!r}")
    if any(b < 1 or b != int(b) for b in _floats(config.batch_sizes, "batch_sizes")):
        raise ConfigError(f"batch_sizes must be positive whole numbers, got {config.batch_sizes!r}")
    if any(e <= 0 for e in _floats(config.mixed_eps, "mixed_eps")):
        raise ConfigError(f"mixed_eps must be positive, got {config.mixed_eps!r}")


def floats(config: ml_collections.ConfigDict, key: str) -> list[float]:
    """A comma-separated key as numbers."""
    return _floats(config[key], key)


def weights_steps(name: str, config: ml_collections.ConfigDict) -> int:
    """How many virtual weight steps an estimator takes before it evaluates L_val: its first-order
    part is ∇_α L_val at those weights (0: at w; darts_fd and unrolled_k1: at w')."""
    kind, options = parse_estimator(name, config)
    return {"darts_fd": 1, "unrolled": options.get("steps", 1)}.get(kind, 0)

"""Hypergradient estimators for the bilevel problem min_α L_val(w*(α), α), as pure functions.

Every estimator has the signature

    estimate(loss_fn, w, alphas, inner_opt, inner_state, train_batches, val_batch, *, xi, axis_name,
             **hp) -> (dα, aux)

with `loss_fn(w, alphas, batch) -> (loss, aux)`, `xi` the current weight learning rate (every
estimator takes it, so a loop can switch estimators; `darts_fd` uses it), and `inner_opt` the optax
transformation of the
weights *without* gradient clipping (as in DARTS): the second-order estimators differentiate
through its real update (momentum and weight decay), not through a re-implementation.
`train_batches` is a sequence (only `unrolled` uses more than the first). Hessian-vector products
are forward-over-reverse (`jvp` of `grad`); no Hessian is ever materialised. With `axis_name`,
every gradient is averaged across devices right where it is taken, so a virtual step uses the
global gradient exactly as a one-device run would.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxnas.parallel import cross_device_mean as _mean

LossFn = Callable[[Any, Any, Any], tuple[jax.Array, Any]]
Estimate = tuple[Any, dict[str, jax.Array]]  # (dα, diagnostics: val_loss, hypergrad_norm, ...)


def tree_dot(a, b) -> jax.Array:
    """Σ <a_i, b_i> in full float32 on every backend (a TPU's default would round to bfloat16, and
    DARTS's ε = eps_scale/‖∇‖ and the CG solves read these sums)."""
    return sum(jnp.vdot(x, y, precision=jax.lax.Precision.HIGHEST)
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def tree_norm(a) -> jax.Array:
    return jnp.sqrt(tree_dot(a, a))


def _grad(loss_fn: LossFn, argnum: int, axis_name: str | None):
    """(loss, grad w.r.t. argument `argnum`) of loss_fn, averaged across devices."""

    def f(w, alphas, batch):
        (loss, _), g = jax.value_and_grad(loss_fn, argnums=argnum, has_aux=True)(w, alphas, batch)
        return _mean(loss, axis_name), _mean(g, axis_name)

    return f


def virtual_step(loss_fn, w, alphas, inner_opt, inner_state, batch, axis_name=None):
    """One step of the real weight optimizer: w' = w + update(∇_w L_train(w, α))."""
    loss, g = _grad(loss_fn, 0, axis_name)(w, alphas, batch)
    updates, new_state = inner_opt.update(g, inner_state, w)
    return optax.apply_updates(w, updates), new_state, loss


def first_order(loss_fn: LossFn, w, alphas, inner_opt: optax.GradientTransformation, inner_state,
                train_batches: Sequence, val_batch, *, xi=None, axis_name: str | None = None) -> Estimate:
    """∇_α L_val(w, α): DARTS first order (w treated as constant; `xi` unused)."""
    val_loss, d_alpha = _grad(loss_fn, 1, axis_name)(w, alphas, val_batch)
    return d_alpha, {"val_loss": val_loss, "hypergrad_norm": tree_norm(d_alpha)}


def darts_fd(loss_fn: LossFn, w, alphas, inner_opt: optax.GradientTransformation, inner_state,
             train_batches: Sequence, val_batch, *, xi, eps_scale: float = 0.01,
             axis_name: str | None = None) -> Estimate:
    """DARTS second order (paper eq. 7–8): the mixed second derivative by central differences.

    dα = ∇_α L_val(w', α) − ξ·[∇_α L_train(w⁺, α) − ∇_α L_train(w⁻, α)] / (2ε),
    w' one virtual step of the real optimizer, w± = w ± ε·∇_{w'} L_val(w', α),
    ε = eps_scale / ‖∇_{w'} L_val(w', α)‖. `xi` is the current weight learning rate.
    """
    train = train_batches[0]
    w1, _, train_loss = virtual_step(loss_fn, w, alphas, inner_opt, inner_state, train, axis_name)
    (val_loss, (g_w1, g_alpha)) = _grad(loss_fn, (0, 1), axis_name)(w1, alphas, val_batch)
    eps = eps_scale / tree_norm(g_w1)
    w_plus = jax.tree.map(lambda p, g: p + eps * g, w, g_w1)
    w_minus = jax.tree.map(lambda p, g: p - eps * g, w, g_w1)
    _, g_plus = _grad(loss_fn, 1, axis_name)(w_plus, alphas, train)
    _, g_minus = _grad(loss_fn, 1, axis_name)(w_minus, alphas, train)
    d_alpha = jax.tree.map(lambda g, p, n: g - xi * (p - n) / (2 * eps), g_alpha, g_plus, g_minus)
    aux = {"val_loss": val_loss, "train_loss": train_loss, "eps": eps, "hypergrad_norm": tree_norm(d_alpha)}
    return d_alpha, aux


def unrolled(loss_fn: LossFn, w, alphas, inner_opt: optax.GradientTransformation, inner_state,
             train_batches: Sequence, val_batch, *, xi=None, steps: int = 1,
             axis_name: str | None = None) -> Estimate:
    """Exact: `jax.grad` of α ↦ L_val(w_k(α), α), w_k after `steps` real optimizer steps (their
    learning rates come from `inner_opt`'s schedule; `xi` unused)."""
    if len(train_batches) < steps:
        raise ValueError(f"unrolled({steps}) needs {steps} train batches, got {len(train_batches)}")

    def val_after_steps(a):
        wk, state = w, inner_state
        for batch in train_batches[:steps]:
            wk, state, _ = virtual_step(loss_fn, wk, a, inner_opt, state, batch, axis_name)
        loss, _ = loss_fn(wk, a, val_batch)
        return loss  # this device's loss: the cross-device mean is taken of the gradient below

    # Reverse mode through the virtual steps' gradient means hands every device the mean
    # cotangent; each device's α-gradient is then its share, and their mean is the global one.
    val_loss, d_alpha = jax.value_and_grad(val_after_steps)(alphas)
    val_loss, d_alpha = _mean(val_loss, axis_name), _mean(d_alpha, axis_name)
    return d_alpha, {"val_loss": val_loss, "hypergrad_norm": tree_norm(d_alpha)}


def _inverse_hvp(hvp: Callable, v, method: str, iterations: int, step_size: float, tol: float):
    """Approximately H⁻¹v: Neumann series η Σ_j (I − ηH)^j v, or conjugate gradients."""
    if method == "neumann":
        def body(_, carry):
            term, total = carry
            term = jax.tree.map(lambda t, h: t - step_size * h, term, hvp(term))
            return term, jax.tree.map(jnp.add, total, term)

        _, total = lax.fori_loop(0, iterations, body, (v, v))
        return jax.tree.map(lambda t: step_size * t, total)
    if method == "cg":
        solution, _ = jax.scipy.sparse.linalg.cg(hvp, v, tol=tol, maxiter=iterations)
        return solution
    raise ValueError(f"unknown implicit method {method!r}; valid methods: neumann, cg")


def implicit(loss_fn: LossFn, w, alphas, inner_opt: optax.GradientTransformation, inner_state,
             train_batches: Sequence, val_batch, *, xi=None, method: str = "cg", iterations: int = 10,
             step_size: float = 0.01, tol: float = 1e-10, axis_name: str | None = None) -> Estimate:
    """Implicit-function-theorem hypergradient at w (taken as ≈ w*(α)):

    dα = ∇_α L_val − ∇²_{αw} L_train · H⁻¹ ∇_w L_val, H = ∇²_w L_train,
    H⁻¹ applied by a Neumann series (`iterations` terms, `step_size`) or CG (`iterations`, `tol`);
    `xi` unused.
    """
    train = train_batches[0]
    val_loss, (g_w, g_alpha) = _grad(loss_fn, (0, 1), axis_name)(w, alphas, val_batch)
    grad_w_train = lambda p, a: _grad(loss_fn, 0, axis_name)(p, a, train)[1]  # noqa: E731
    hvp = lambda v: jax.jvp(lambda p: grad_w_train(p, alphas), (w,), (v,))[1]  # noqa: E731
    p = _inverse_hvp(hvp, g_w, method, iterations, step_size, tol)
    mixed = _mean(jax.grad(lambda a: tree_dot(grad_w_train(w, a), p))(alphas), axis_name)
    d_alpha = jax.tree.map(jnp.subtract, g_alpha, mixed)
    return d_alpha, {"val_loss": val_loss, "hypergrad_norm": tree_norm(d_alpha)}


_TABLE = {"first_order": first_order, "darts_fd": darts_fd, "unrolled": unrolled, "implicit": implicit}
ESTIMATORS = tuple(_TABLE)
IMPLICIT_METHODS = ("cg", "neumann")
# Each estimator's options as a config block `{name, ...}` holds them, with the search's defaults.
ESTIMATOR_OPTIONS: dict[str, dict[str, Any]] = {
    "first_order": {},
    "darts_fd": {"eps_scale": 0.01},  # ε = eps_scale / ‖∇w' L_val‖ (the paper's 0.01)
    "unrolled": {"steps": 1},  # inner optimizer steps differentiated through
    "implicit": {"method": "cg", "iterations": 5, "step_size": 0.01, "tol": 1e-10},  # solver; neumann step; cg tol
}


def check_options(name: str, options: dict[str, Any]) -> str | None:
    """The first problem with an estimator block's options, as one line, or None."""
    if name == "darts_fd" and not options["eps_scale"] > 0:
        return f"estimator.eps_scale must be > 0, got {options['eps_scale']!r}"
    if name == "unrolled" and (int(options["steps"]) != options["steps"] or options["steps"] < 1):
        return f"estimator.steps must be a positive integer, got {options['steps']!r}"
    if name == "implicit":
        if options["method"] not in IMPLICIT_METHODS:
            return f"unknown estimator.method {options['method']!r}; valid choices: {', '.join(IMPLICIT_METHODS)}"
        if int(options["iterations"]) != options["iterations"] or options["iterations"] < 1:
            return f"estimator.iterations must be a positive integer, got {options['iterations']!r}"
    return None


def label(name: str, options: dict[str, Any]) -> str:
    """A short name of an estimator with its options, for tables: darts_fd (the paper's ε),
    darts_fd_eps0.1, unrolled_k2, implicit_cg_k10."""
    if name == "darts_fd":
        scale = options.get("eps_scale", ESTIMATOR_OPTIONS["darts_fd"]["eps_scale"])
        return "darts_fd" if scale == ESTIMATOR_OPTIONS["darts_fd"]["eps_scale"] else f"darts_fd_eps{scale:g}"
    if name == "unrolled":
        return f"unrolled_k{int(options.get('steps', 1))}"
    if name == "implicit":
        full = {**ESTIMATOR_OPTIONS["implicit"], **options}
        return f"implicit_{full['method']}_k{int(full['iterations'])}"
    return name


def weight_steps(name: str, options: dict[str, Any]) -> int:
    """How many virtual weight steps an estimator takes before it evaluates L_val, so its
    first-order part is ∇_α L_val at those weights (0: at w; darts_fd and unrolled k=1: at w')."""
    return {"darts_fd": 1, "unrolled": int(options.get("steps", 1))}.get(name, 0)


def train_batches_needed(name: str, options: dict[str, Any]) -> int:
    """How many train batches one estimate reads (`unrolled`: one per inner step)."""
    return int(options.get("steps", 1)) if name == "unrolled" else 1


def get_estimator(name: str, **hp: Any) -> Callable[..., Estimate]:
    """The estimator `name` with its hyperparameters bound; unknown names list the valid ones."""
    if name not in _TABLE:
        raise ValueError(f"unknown estimator {name!r}; valid estimators: {', '.join(ESTIMATORS)}")
    return functools.partial(_TABLE[name], **hp)

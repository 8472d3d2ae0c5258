"""The second-order term of DARTS's hypergradient on its own, exactly and by DARTS's finite difference.

DARTS (Liu et al., ICLR 2019, eq. 7-8) approximates the mixed second derivative
M = ∇²_{α,w} L_train(w, α) · v, with v = ∇_{w'} L_val(w', α) and w' one virtual weight step, by
[∇_α L_train(w + εv, α) − ∇_α L_train(w − εv, α)] / (2ε), ε = r / ‖v‖. The whole hypergradient is
dominated by its first-order part, so comparing whole hypergradients hides how good this term is.
Here M is the jvp of ∇_α L_train along v (forward over reverse, no difference step), which the
difference quotient approaches as ε → 0 where ∇_α L_train is differentiable in w.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from jaxnas.search.hypergrad import LossFn, tree_norm, virtual_step


def val_direction(loss_fn: LossFn, w, alphas, inner_opt, inner_state, train, val):
    """v = ∇_{w'} L_val(w', α) at w' = one step of the real weight optimizer on `train`."""
    w1, _, _ = virtual_step(loss_fn, w, alphas, inner_opt, inner_state, train)
    return jax.grad(lambda p: loss_fn(p, alphas, val)[0])(w1)


def _alpha_grad(loss_fn: LossFn, w, alphas, batch):
    return jax.grad(lambda a: loss_fn(w, a, batch)[0])(alphas)


def mixed_term_exact(loss_fn: LossFn, w, alphas, v, train) -> Any:
    """M = d/dε ∇_α L_train(w + εv, α) at ε = 0."""
    return jax.jvp(lambda p: _alpha_grad(loss_fn, p, alphas, train), (w,), (v,))[1]


def mixed_term_fd(loss_fn: LossFn, w, alphas, v, train, eps_scale: float) -> Any:
    """DARTS's central difference of ∇_α L_train along v, ε = eps_scale / ‖v‖."""
    eps = eps_scale / tree_norm(v)
    plus = _alpha_grad(loss_fn, jax.tree.map(lambda p, d: p + eps * d, w, v), alphas, train)
    minus = _alpha_grad(loss_fn, jax.tree.map(lambda p, d: p - eps * d, w, v), alphas, train)
    return jax.tree.map(lambda a, b: (a - b) / (2 * eps), plus, minus)


def mixed_terms(loss_fn: LossFn, w, alphas, inner_opt, inner_state, train, val,
                eps_scales: Sequence[float]) -> tuple[Any, list[Any]]:
    """(exact M, [finite-difference M at each ε scale])."""
    v = val_direction(loss_fn, w, alphas, inner_opt, inner_state, train, val)
    return (mixed_term_exact(loss_fn, w, alphas, v, train),
            [mixed_term_fd(loss_fn, w, alphas, v, train, r) for r in eps_scales])

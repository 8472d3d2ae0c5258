"""Your own search loop around jaxnas's pieces: your data as numpy arrays, your optax optimizers,
your loop; jaxnas gives the DARTS supernet and the exact `unrolled` hypergradient.

    python examples/custom_loop.py [steps]
"""

import sys

import jax
import numpy as np
import optax
from sklearn.datasets import load_digits

import jaxnas as jn

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
BATCH, LR = 32, 0.05

# Any images (N, H, W, C) and integer labels; here scikit-learn's 8x8 digits, half for the weights
# (search-train) and half for the architecture (search-val), as DARTS splits its train set.
digits = load_digits()
x = ((digits.images[..., None] / 16.0 - 0.3) / 0.4).astype(np.float32)
y = digits.target.astype(np.int32)
x_train, y_train, x_val, y_val = x[:800], y[:800], x[800:1600], y[800:1600]

space = jn.get_space("darts", channels=4, layers=3)
net = space.supernet(num_classes=10)
alphas = space.init_alphas(jax.random.key(0))
variables = net.init(jax.random.key(1), x_train[:2], alphas, train=False)
params, batch_stats = variables["params"], variables["batch_stats"]

weight_opt = optax.sgd(LR, momentum=0.9)  # also the step the hypergradient differentiates through
alpha_opt = optax.adam(3e-3, b1=0.5)
weight_state, alpha_state = weight_opt.init(params), alpha_opt.init(alphas)


@jax.jit
def step(params, batch_stats, alphas, weight_state, alpha_state, train, val):
    loss_fn = jn.supernet_loss(net, batch_stats)  # (w, α, (x, y)) -> (loss, (logits, new BN stats))
    # dα of L_val(w'(α), α), w' = one step of weight_opt on the train batch, differentiated exactly.
    d_alpha, info = jn.unrolled(loss_fn, params, alphas, weight_opt, weight_state, (train,), val, xi=LR)
    updates, alpha_state = alpha_opt.update(d_alpha, alpha_state, alphas)
    alphas = optax.apply_updates(alphas, updates)
    (loss, (_, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, alphas, train)
    updates, weight_state = weight_opt.update(grads, weight_state, params)
    return optax.apply_updates(params, updates), batch_stats, alphas, weight_state, alpha_state, loss, info


rng = np.random.default_rng(0)
for i in range(STEPS):
    t, v = rng.choice(len(x_train), BATCH, replace=False), rng.choice(len(x_val), BATCH, replace=False)
    params, batch_stats, alphas, weight_state, alpha_state, loss, info = step(
        params, batch_stats, alphas, weight_state, alpha_state, (x_train[t], y_train[t]), (x_val[v], y_val[v]))
    if i % 50 == 0 or i == STEPS - 1:
        print(f"step {i:4d}  train loss {float(loss):.3f}  val loss {float(info['val_loss']):.3f}  "
              f"|dα| {float(info['hypergrad_norm']):.4f}")

print("derived cell:", space.derive(alphas))
